package read

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
)

func parseInfo(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k != "" && k[0] != '#' {
			fields[k] = v
		}
	}
	return fields
}

// Info runs INFO, on every master of a cluster with sums.
func (r *Reader) Info(ctx context.Context) billing.Info {
	if r.single {
		fields, err := r.readInfo(ctx, r.seeds[0].Address)
		return billing.Info{Fields: fields, Err: err}
	}
	nodes := r.nodeInfo(ctx)
	sum, err := sumInfo(nodes)
	return billing.Info{Fields: sum, Err: err, Nodes: nodes}
}

func (r *Reader) nodeInfo(ctx context.Context) []billing.NodeInfo {
	var addrs []string
	if lines, err := r.view(ctx); err == nil {
		addrs = masterAddrs(lines)
	}
	if len(addrs) == 0 {
		r.mu.Lock()
		addrs = slices.Clone(r.masters)
		r.mu.Unlock()
	}
	if len(addrs) == 0 {
		addrs = r.withSeeds(nil)
		slices.Sort(addrs)
	}
	out := make([]billing.NodeInfo, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			fields, err := r.readInfo(ctx, addr)
			if err != nil {
				err = fmt.Errorf("redis node %s: %w", addr, err)
			}
			out[i] = billing.NodeInfo{Node: addr, Fields: fields, Err: err}
		})
	}
	wg.Wait()
	return out
}

// sumInfo fails with any node, and leaves out a field any node lacks.
func sumInfo(nodes []billing.NodeInfo) (map[string]string, error) {
	if len(nodes) == 0 {
		return nil, errors.New("redis cluster: no master node")
	}
	var errs []error
	for _, n := range nodes {
		errs = append(errs, n.Err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sum := map[string]string{}
	for _, f := range []string{"used_memory", "connected_clients"} {
		var total int64
		ok := true
		for _, n := range nodes {
			v, present := billing.InfoInt(n.Fields, f)
			ok = ok && present
			total += v
		}
		if ok {
			sum[f] = strconv.FormatInt(total, 10)
		}
	}
	return sum, nil
}

// readInfo leaves out a section refused, and fails when all are.
func (r *Reader) readInfo(ctx context.Context, addr string) (_ map[string]string, err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "INFO", r.name(addr))
	defer func() { rt.End(err) }()
	c, err := r.Conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	for _, sec := range []string{"memory", "clients", "replication"} {
		if err := c.Send("INFO", sec); err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
	}
	rt.Calls++
	replies, err := redis.Values(r.set.Do(ctx, c, "info", ""))
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	var refused error
	for _, reply := range replies {
		if conn.IsOversized(reply) {
			return nil, fmt.Errorf("INFO: %w", reply.(redis.Error))
		}
		if e, isErr := reply.(redis.Error); isErr {
			refused = e
			continue
		}
		text, err := redis.String(reply, nil)
		if err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
		maps.Copy(fields, parseInfo(text))
	}
	if len(fields) == 0 && refused != nil {
		return nil, fmt.Errorf("INFO: %w", refused)
	}
	return fields, nil
}
