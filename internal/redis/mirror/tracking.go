package mirror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
)

const invalidateChannel = "__redis__:invalidate"

// errTrackingRefused wraps a server's refusal of key tracking: scan mode.
var errTrackingRefused = errors.New("redis refused key tracking")

// Why a full read was needed (billing_redis_full_reads_total).
const (
	reasonStart          = "start"
	reasonConnectionLost = "connection_lost"
	reasonRedirBroken    = "redir_broken"
	reasonFlush          = "flush"
	reasonPeriod         = "period_change"
	reasonReadError      = "read_error"
	reasonResync         = "resync"
	reasonTopology       = "topology_change"
	reasonSwapdb         = "swapdb"
)

var fullReadReasons = []string{reasonStart, reasonConnectionLost, reasonRedirBroken, reasonFlush, reasonPeriod, reasonReadError, reasonResync, reasonTopology, reasonSwapdb}

// trackingPair is a subscribed connection that receives the invalidations
// of every key under a prefix, and the connection whose tracking sends
// them. While both live, the keys changed since the last take are known.
type trackingPair struct {
	sub, trk     redis.Conn
	trackingInfo bool   // else the barrier PINGs trk
	seq          uint64 // barrier tags, under the Mirror's lock
	swaps        int64  // SWAPDB calls at the last check, likewise

	mu           sync.Mutex
	dirty        map[string]struct{}
	touched      map[string]struct{} // since startTouch; nil when off
	lost         string
	invalidated  *atomic.Uint64
	pongs        map[string]chan struct{}
	receiverDone chan struct{}
}

// openTracking opens a pair for prefix on the node at addr.
func openTracking(ctx context.Context, s *conn.Settings, addr, prefix string, invalidated *atomic.Uint64) (*trackingPair, error) {
	p := &trackingPair{invalidated: invalidated, dirty: map[string]struct{}{}, pongs: map[string]chan struct{}{}, receiverDone: make(chan struct{})}
	var err error
	if p.sub, err = s.DialSubscriber(ctx, addr); err != nil {
		return nil, err
	}
	if p.trk, err = s.Dial(ctx, addr); err != nil {
		p.sub.Close()
		return nil, err
	}
	if err := p.start(ctx, s, prefix); err != nil {
		p.sub.Close()
		p.trk.Close()
		if _, refused := errors.AsType[redis.Error](err); refused {
			return nil, fmt.Errorf("%w: %w", errTrackingRefused, err)
		}
		return nil, err
	}
	go p.receive()
	return p, nil
}

func (p *trackingPair) start(ctx context.Context, s *conn.Settings, prefix string) error {
	id, err := redis.Int64(s.Do(ctx, p.sub, "client", "CLIENT", "ID"))
	if err != nil {
		return err
	}
	if _, err := s.Do(ctx, p.sub, "subscribe", "SUBSCRIBE", invalidateChannel); err != nil {
		return err
	}
	if _, err := s.Do(ctx, p.trk, "client", "CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", prefix); err != nil {
		return err
	}
	_, err = s.Do(ctx, p.trk, "client", "CLIENT", "TRACKINGINFO")
	if _, refused := errors.AsType[redis.Error](err); err != nil && !refused {
		return err
	}
	p.trackingInfo = err == nil
	p.swaps, err = swapdbCalls(s.Do(ctx, p.trk, "info", "INFO", "commandstats"))
	return err
}

func (p *trackingPair) close() {
	p.sub.Close()
	p.trk.Close()
	<-p.receiverDone
}

// lose records the first reason the pair is lost, and returns it.
func (p *trackingPair) lose(reason string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost == "" {
		p.lost = reason
	}
	return p.lost
}

func (p *trackingPair) lostReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// receive handles the messages in order, a barrier's PONG after the
// invalidations before it, with no timeout: a barrier finds a dead one.
func (p *trackingPair) receive() {
	defer close(p.receiverDone)
	for {
		reply, err := redis.ReceiveWithTimeout(p.sub, 0)
		reason := reasonConnectionLost
		if err == nil {
			reason = p.handle(reply)
		}
		if reason != "" {
			p.lose(reason)
			p.mu.Lock()
			for _, ch := range p.pongs {
				close(ch)
			}
			clear(p.pongs)
			p.mu.Unlock()
			return
		}
	}
}

// handle returns why the pair is lost, or "".
func (p *trackingPair) handle(reply any) string {
	parts, _ := reply.([]any)
	if len(parts) < 2 {
		return reasonConnectionLost
	}
	kind, _ := parts[0].([]byte)
	switch string(kind) {
	case "message":
		if len(parts) != 3 {
			return reasonConnectionLost
		}
		switch keys := parts[2].(type) {
		case nil: // a flush
			p.invalidated.Add(1)
			return reasonFlush
		case []any:
			p.mu.Lock()
			for _, k := range keys {
				if b, ok := k.([]byte); ok {
					p.dirty[string(b)] = struct{}{}
					if p.touched != nil {
						p.touched[string(b)] = struct{}{}
					}
				}
			}
			p.mu.Unlock()
			p.invalidated.Add(uint64(len(keys)))
		default:
			return reasonConnectionLost
		}
	case "pong":
		tag, _ := parts[1].([]byte)
		p.mu.Lock()
		if ch, ok := p.pongs[string(tag)]; ok {
			close(ch)
			delete(p.pongs, string(tag))
		}
		p.mu.Unlock()
	case "subscribe", "unsubscribe":
	default:
		return reasonConnectionLost
	}
	return ""
}

// barrier proves the pair current: tracking is still on, no SWAPDB (which
// tracking does not announce) since the last check, and a PING on the
// invalidation connection came back after every invalidation before it.
// It returns why the read must be full, or an error when Redis could not be asked.
func (p *trackingPair) barrier(ctx context.Context, s *conn.Settings, node string) (_ string, err error) {
	if r := p.lostReason(); r != "" {
		return r, nil
	}
	ctx, rt := conn.StartRoundTrips(ctx, "PING", node)
	defer func() { rt.End(err) }()
	rt.Calls++
	op, check := "ping", []any{"PING"}
	if p.trackingInfo {
		op, check = "client", []any{"CLIENT", "TRACKINGINFO"}
	}
	err = p.trk.Send(check[0].(string), check[1:]...)
	if err == nil {
		err = p.trk.Send("INFO", "commandstats")
	}
	var replies []any
	if err == nil {
		replies, err = redis.Values(s.Do(ctx, p.trk, op, ""))
	}
	if err == nil {
		for _, r := range replies {
			if e, isErr := r.(redis.Error); isErr {
				err = e
			}
		}
	}
	if err != nil {
		return p.lose(reasonConnectionLost), err
	}
	if info, _ := replies[0].([]any); p.trackingInfo {
		if r := trackingInfoLoss(info); r != "" {
			return p.lose(r), nil
		}
	}
	swaps, err := swapdbCalls(replies[1], nil)
	if err != nil {
		return p.lose(reasonConnectionLost), err
	}
	if swaps != p.swaps {
		p.swaps = swaps
		return reasonSwapdb, nil
	}

	p.seq++
	tag := strconv.FormatUint(p.seq, 10)
	ch := make(chan struct{})
	p.mu.Lock()
	p.pongs[tag] = ch
	p.mu.Unlock()
	if err = p.sub.Send("PING", tag); err == nil {
		err = p.sub.Flush()
	}
	if err != nil {
		return p.lose(reasonConnectionLost), fmt.Errorf("PING: %w", err)
	}
	rt.Calls++
	start := time.Now()
	wait, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := s.ReadTimeout(); d > 0 {
		wait, cancel = context.WithTimeout(wait, d)
		defer cancel()
	}
	select {
	case <-ch:
	case <-wait.Done():
		return p.lose(reasonConnectionLost), fmt.Errorf("PING: %w", wait.Err())
	}
	s.Observe("ping", time.Since(start))
	return p.lostReason(), nil
}

// swapdbCalls counts the SWAPDB calls that did not fail in INFO commandstats.
func swapdbCalls(reply any, err error) (int64, error) {
	text, err := redis.String(reply, err)
	if err != nil {
		return 0, fmt.Errorf("INFO commandstats: %w", err)
	}
	var calls, failed int64
	for line := range strings.Lines(text) {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_swapdb:")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			name, v, _ := strings.Cut(field, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch name {
			case "calls":
				calls = n
			case "failed_calls":
				failed = n
			}
		}
	}
	return calls - failed, nil
}

func trackingInfoLoss(info []any) string {
	for i := 0; i+1 < len(info); i += 2 {
		if name, _ := info[i].([]byte); string(name) != "flags" {
			continue
		}
		flags, _ := redis.Strings(info[i+1], nil)
		for _, f := range flags {
			switch f {
			case "off":
				return reasonConnectionLost
			case "broken_redirect":
				return reasonRedirBroken
			}
		}
	}
	return ""
}

func (p *trackingPair) take() map[string]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dirty
	p.dirty = make(map[string]struct{}, len(d)/2)
	return d
}

// startTouch records invalidated keys until stopTouch returns them.
func (p *trackingPair) startTouch() {
	p.mu.Lock()
	p.touched = map[string]struct{}{}
	p.mu.Unlock()
}

func (p *trackingPair) stopTouch() map[string]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.touched
	p.touched = nil
	return t
}
