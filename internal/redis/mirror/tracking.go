package mirror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
)

// invalidateChannel is where Redis publishes key tracking invalidations to a
// RESP2 connection that another connection's tracking redirects to.
const invalidateChannel = "__redis__:invalidate"

// errTrackingRefused wraps a server's refusal of key tracking (Redis < 6, an
// ACL without client|tracking or subscribe, an unknown subcommand): reading
// in scan mode is the answer, not retrying.
var errTrackingRefused = errors.New("redis refused key tracking")

// Loss reasons: why a mirror could not be proven current. They are label
// values of billing_redis_full_reads_total.
const (
	reasonStart          = "start"           // no mirror yet
	reasonConnectionLost = "connection_lost" // a tracking connection failed or Redis restarted
	reasonRedirBroken    = "redir_broken"    // Redis reports the invalidation connection gone
	reasonFlush          = "flush"           // FLUSHALL/FLUSHDB: a null invalidation
	reasonPeriod         = "period_change"   // the billing period rolled over
	reasonReadError      = "read_error"      // a re-read failed part-way
	reasonResync         = "resync"          // the periodic self-check
	reasonTopology       = "topology_change" // Redis Cluster: slots moved, a failover, a master added or gone
)

// fullReadReasons lists every reason, so the counter reports zeros too.
var fullReadReasons = []string{reasonStart, reasonConnectionLost, reasonRedirBroken, reasonFlush, reasonPeriod, reasonReadError, reasonResync, reasonTopology}

// trackingPair is one tracking session with a Redis server: a subscribed
// connection that receives the invalidations of every key under a prefix,
// and a dedicated connection whose CLIENT TRACKING (BCAST, REDIRECT to the
// first) makes Redis send them. While both connections live and Redis has
// sent no null invalidation, the set of keys changed since the last take
// is known exactly; the moment either is in doubt, lost says why, and the
// pair is thrown away.
type trackingPair struct {
	sub, trk redis.Conn
	subID    int64
	// trackingInfo is false on Redis 6.0/6.1, which lack CLIENT
	// TRACKINGINFO; the barrier then PINGs the tracking connection.
	trackingInfo bool

	writeMu sync.Mutex // one writer on sub (barriers), the receiver reads
	seq     uint64     // barrier tags, under writeMu

	mu           sync.Mutex
	dirty        map[string]struct{} // keys invalidated since the last take
	touched      map[string]struct{} // keys invalidated since startTouch (resync), nil when off
	lost         string              // a loss reason once the pair cannot be trusted
	invalidated  *atomic.Uint64      // keys (and null invalidations) received, over every pair
	pongs        map[string]chan struct{}
	receiverDone chan struct{}
}

// openTracking dials the pair for prefix on the node at addr: the
// invalidation connection subscribes before tracking is turned on, so no
// invalidation goes to a connection not yet listening. A server's refusal
// is wrapped in errTrackingRefused.
func openTracking(ctx context.Context, s *conn.Settings, addr, prefix string, invalidated *atomic.Uint64) (*trackingPair, error) {
	sub, err := s.DialSubscriber(ctx, addr)
	if err != nil {
		return nil, err
	}
	p := &trackingPair{sub: sub, invalidated: invalidated, dirty: map[string]struct{}{}, pongs: map[string]chan struct{}{}, receiverDone: make(chan struct{})}
	fail := func(err error) (*trackingPair, error) {
		sub.Close()
		if p.trk != nil {
			p.trk.Close()
		}
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return nil, fmt.Errorf("%w: %w", errTrackingRefused, err)
		}
		return nil, err
	}
	if p.subID, err = redis.Int64(s.Do(ctx, sub, "client", "CLIENT", "ID")); err != nil {
		return fail(err)
	}
	if _, err := s.Do(ctx, sub, "subscribe", "SUBSCRIBE", invalidateChannel); err != nil {
		return fail(err)
	}
	if p.trk, err = s.Dial(ctx, addr); err != nil {
		sub.Close()
		return nil, err
	}
	if _, err := s.Do(ctx, p.trk, "client", "CLIENT", "TRACKING", "on", "REDIRECT", p.subID, "BCAST", "PREFIX", prefix); err != nil {
		return fail(err)
	}
	// CLIENT TRACKINGINFO (6.2) is the better barrier: it also reports a
	// broken redirection. Its absence, or an ACL without it, falls back
	// to PING.
	if _, err := s.Do(ctx, p.trk, "client", "CLIENT", "TRACKINGINFO"); err == nil {
		p.trackingInfo = true
	} else {
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			return fail(err)
		}
	}
	go p.receive()
	return p, nil
}

// close ends the pair; the receiver stops on the closed connection.
func (p *trackingPair) close() {
	p.sub.Close()
	p.trk.Close()
	<-p.receiverDone
}

// setLost records the first reason the pair cannot be trusted.
func (p *trackingPair) setLost(reason string) {
	p.mu.Lock()
	if p.lost == "" {
		p.lost = reason
	}
	p.mu.Unlock()
}

// lostReason returns why the pair cannot be trusted, or "".
func (p *trackingPair) lostReason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// receive reads the invalidation connection until it fails. Messages are
// handled in the order Redis sent them, so a barrier's PONG is handled
// after every invalidation queued before it.
func (p *trackingPair) receive() {
	defer close(p.receiverDone)
	defer func() {
		p.mu.Lock()
		for _, ch := range p.pongs {
			close(ch)
		}
		clear(p.pongs)
		p.mu.Unlock()
	}()
	for {
		// No timeout: invalidations come when keys change, which may be
		// never. A connection that silently died is found by the next
		// barrier, which is bounded by its read's deadline and closes the
		// pair.
		reply, err := redis.ReceiveWithTimeout(p.sub, 0)
		if err != nil {
			p.setLost(reasonConnectionLost)
			return
		}
		if !p.handle(reply) {
			return
		}
	}
}

// handle takes one message from the invalidation connection; false means
// the pair is lost.
func (p *trackingPair) handle(reply any) bool {
	parts, ok := reply.([]any)
	if !ok || len(parts) < 2 {
		p.setLost(reasonConnectionLost)
		return false
	}
	kind, _ := parts[0].([]byte)
	switch string(kind) {
	case "message":
		if len(parts) != 3 {
			p.setLost(reasonConnectionLost)
			return false
		}
		switch payload := parts[2].(type) {
		case nil:
			// FLUSHALL or FLUSHDB (of any database): every key is
			// invalid.
			p.invalidated.Add(1)
			p.setLost(reasonFlush)
			return false
		case []any:
			p.mu.Lock()
			for _, k := range payload {
				if b, ok := k.([]byte); ok {
					key := string(b)
					p.dirty[key] = struct{}{}
					if p.touched != nil {
						p.touched[key] = struct{}{}
					}
				}
			}
			p.mu.Unlock()
			p.invalidated.Add(uint64(len(payload)))
		default:
			p.setLost(reasonConnectionLost)
			return false
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
		p.setLost(reasonConnectionLost)
		return false
	}
	return true
}

// barrier proves the pair current as of its call: every write Redis
// acknowledged before it has had its invalidation received. First the
// tracking connection answers (so tracking was on, uninterrupted, since the
// pair opened: only closing the connection turns it off), with CLIENT
// TRACKINGINFO also saying whether the redirection still works; then a PING
// on the invalidation connection, answered in order after every
// invalidation Redis queued for it before the PING. It returns the loss
// reason, or an error when Redis could not be asked. Its span ("redis
// PING", the command of both variants) counts its round trips: two when it
// got as far as the invalidation connection's PING.
func (p *trackingPair) barrier(ctx context.Context, s *conn.Settings, node string) (_ string, err error) {
	if r := p.lostReason(); r != "" {
		return r, nil
	}
	ctx, rt := conn.StartRoundTrips(ctx, "PING", node)
	defer func() { rt.End(err) }()
	rt.Calls++
	if p.trackingInfo {
		info, err := redis.Values(s.Do(ctx, p.trk, "client", "CLIENT", "TRACKINGINFO"))
		if err != nil {
			p.setLost(reasonConnectionLost)
			return reasonConnectionLost, err
		}
		if r := trackingInfoLoss(info); r != "" {
			p.setLost(r)
			return r, nil
		}
	} else if _, err := s.Do(ctx, p.trk, "ping", "PING"); err != nil {
		p.setLost(reasonConnectionLost)
		return reasonConnectionLost, err
	}

	p.writeMu.Lock()
	p.seq++
	tag := strconv.FormatUint(p.seq, 10)
	ch := make(chan struct{})
	p.mu.Lock()
	p.pongs[tag] = ch
	p.mu.Unlock()
	err = ctx.Err()
	if err == nil {
		err = p.sub.Send("PING", tag)
	}
	if err == nil {
		err = p.sub.Flush()
	}
	p.writeMu.Unlock()
	if err != nil {
		p.setLost(reasonConnectionLost)
		return reasonConnectionLost, fmt.Errorf("PING: %w", err)
	}
	rt.Calls++
	start := time.Now()
	// Bounded by ctx and, like any call, the read timeout.
	var capped <-chan time.Time
	if s.ReadTimeout() > 0 {
		timer := time.NewTimer(s.ReadTimeout())
		defer timer.Stop()
		capped = timer.C
	}
	select {
	case <-ch:
	case <-capped:
		// The PONG may still come, after invalidations we would then
		// not wait for: the pair is no longer provably current.
		p.setLost(reasonConnectionLost)
		return reasonConnectionLost, fmt.Errorf("PING: %w", context.DeadlineExceeded)
	case <-ctx.Done():
		p.setLost(reasonConnectionLost)
		return reasonConnectionLost, fmt.Errorf("PING: %w", ctx.Err())
	}
	s.Observe("ping", time.Since(start))
	if r := p.lostReason(); r != "" {
		return r, nil
	}
	return "", nil
}

// trackingInfoLoss reads a CLIENT TRACKINGINFO reply: tracking off or a
// broken redirection make the pair unusable.
func trackingInfoLoss(info []any) string {
	for i := 0; i+1 < len(info); i += 2 {
		name, _ := info[i].([]byte)
		if string(name) != "flags" {
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

// take returns the keys invalidated since the last take, and starts a new
// set.
func (p *trackingPair) take() map[string]struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dirty
	p.dirty = make(map[string]struct{}, len(d)/2)
	return d
}

// startTouch starts recording every key invalidated from now on, besides
// the dirty set; stopTouch returns them and stops.
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
