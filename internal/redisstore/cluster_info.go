package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// NodeInfo runs INFO memory and clients on every master, concurrently. The
// masters are those of the cluster's current view; when no node answers,
// the last masters seen (or else the seeds) are reported, each with its
// error.
func (c *Cluster) NodeInfo(ctx context.Context) []billing.NodeInfo {
	var addrs []string
	if lines, _, err := c.view(ctx); err == nil {
		addrs = masterAddrs(lines)
	}
	if len(addrs) == 0 {
		c.mu.Lock()
		addrs = slices.Clone(c.masters)
		c.mu.Unlock()
	}
	if len(addrs) == 0 {
		for _, s := range c.seeds {
			if !slices.Contains(addrs, s.Address) {
				addrs = append(addrs, s.Address)
			}
		}
		slices.Sort(addrs)
	}
	out := make([]billing.NodeInfo, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Node = addr
			p, err := c.pool(addr)
			if err == nil {
				out[i].Fields, err = c.readInfo(ctx, p, addr)
			}
			if err != nil {
				out[i].Fields, out[i].Err = nil, fmt.Errorf("redis node %s: %w", addr, err)
			}
		}()
	}
	wg.Wait()
	return out
}

// Info returns every master's INFO, and used_memory and connected_clients
// summed over the masters (see sumInfo), so that dashboards read a cluster
// as they read a single server.
func (c *Cluster) Info(ctx context.Context) billing.Info {
	nodes := c.NodeInfo(ctx)
	sum, err := sumInfo(nodes)
	return billing.Info{Fields: sum, Err: err, Nodes: nodes}
}

// summedInfoFields are the INFO fields sumInfo adds up.
var summedInfoFields = []string{"used_memory", "connected_clients"}

// sumInfo adds up used_memory and connected_clients over nodes. A total
// that would leave out a node (unreachable, or not reporting the field) is
// not a total: it fails when any node failed, and leaves out a field any
// node lacks.
func sumInfo(nodes []billing.NodeInfo) (map[string]string, error) {
	if len(nodes) == 0 {
		return nil, errors.New("redis cluster: no master node")
	}
	var errs []error
	for _, n := range nodes {
		if n.Err != nil {
			errs = append(errs, n.Err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sum := map[string]string{}
	for _, f := range summedInfoFields {
		var total int64
		ok := true
		for _, n := range nodes {
			v, present := billing.InfoInt(n.Fields, f)
			if !present {
				ok = false
				break
			}
			total += v
		}
		if ok {
			sum[f] = strconv.FormatInt(total, 10)
		}
	}
	return sum, nil
}
