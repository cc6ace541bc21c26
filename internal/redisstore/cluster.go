package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// ErrTopologyChanged reports that the cluster's slot layout changed while a
// read was under way (a slot finished or started migrating, a failover, a
// MOVED reply): the keys seen so far are no longer known to be complete and
// exactly once, so the read is discarded.
var ErrTopologyChanged = errors.New("redis cluster topology changed during the read")

// readAttempts is how many times ReadUsage reads the whole cluster again
// after ErrTopologyChanged before it reports the read failed.
const readAttempts = 3

// Cluster reads usage state from a Redis Cluster. It keeps one connection
// pool per node, with the same dial settings, timeouts, observer and limits
// as Store.
//
// A read of the usage state is exact or fails: every master is scanned
// (SCAN is per node in a cluster), a key is counted only on the master that
// serves its slot (or the node importing it during a migration), keys are
// counted once even when a migration briefly puts them on two nodes, and the
// read is discarded and done again when the slot layout changed under it.
//
// redisc provides the slot hashing and the parsing of MOVED, ASK and
// TRYAGAIN replies. Its Conn, RetryConn and Refresh are not used for the
// reads themselves because they take no context: every command here runs
// through settings.do on a pooled connection, as in Store, so a scrape's
// deadline bounds each round trip and a cancelled scrape sends no further
// command.
type Cluster struct {
	settings
	seeds []Target

	mu      sync.Mutex
	closed  bool
	pools   map[string]*redis.Pool
	masters []string                 // last master addresses seen, tried first for the topology
	owners  [redisc.HashSlots]string // last known master of each slot, for ReadTenant
}

// NewCluster returns a reader for the cluster that the seed nodes belong to.
// The seeds are only where the topology is first asked for; every master is
// found from the cluster itself. Like New it does not connect.
//
// Every seed must use the same scheme (redis or rediss) and credentials;
// WithPassword overrides the password as for a single server. Redis Cluster
// has only database 0.
func NewCluster(seeds []Target, opts ...Option) (*Cluster, error) {
	if len(seeds) == 0 {
		return nil, errors.New("redis cluster: no seed node")
	}
	base := Target{TLS: seeds[0].TLS, Username: seeds[0].Username}
	for _, s := range seeds {
		if s.DB != 0 {
			return nil, fmt.Errorf("redis cluster seed %s: Redis Cluster has only database 0", s)
		}
		if s.TLS != base.TLS || s.Username != base.Username {
			return nil, fmt.Errorf("redis cluster seed %s: every seed must use the same scheme and user as %s", s, seeds[0])
		}
		if s.Password != "" {
			if base.Password != "" && base.Password != s.Password {
				return nil, fmt.Errorf("redis cluster seed %s: its password differs from another seed's", s)
			}
			base.Password = s.Password
		}
	}
	st, err := newSettings(base, opts)
	if err != nil {
		return nil, err
	}
	return &Cluster{settings: st, seeds: slices.Clone(seeds), pools: map[string]*redis.Pool{}}, nil
}

// Seeds returns the seed nodes (for logs; Target.String hides passwords).
func (c *Cluster) Seeds() []Target { return slices.Clone(c.seeds) }

// String describes the cluster for logs and the landing page.
func (c *Cluster) String() string {
	names := make([]string, len(c.seeds))
	for i, s := range c.seeds {
		names[i] = s.String()
	}
	return "Redis Cluster (seeds " + strings.Join(names, ", ") + ")"
}

// Close releases the connections of every node.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, p := range c.pools {
		p.Close()
	}
	return nil
}

var errClosed = errors.New("redis cluster reader is closed")

// pool returns the connection pool of a node, creating it on first use.
func (c *Cluster) pool(addr string) (*redis.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	p := c.pools[addr]
	if p == nil {
		p = c.newPool(addr)
		c.pools[addr] = p
	}
	return p, nil
}

// conn returns a connection to a node.
func (c *Cluster) conn(ctx context.Context, addr string) (redis.Conn, error) {
	p, err := c.pool(addr)
	if err != nil {
		return nil, err
	}
	conn, err := p.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	return conn, nil
}

// ---------------------------------------------------------------------------
// Topology

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id, addr  string
	flags     []string
	epoch     uint64
	slots     []string // slot tokens as written: "0-5460", "42", "[42->-id]"
	claims    [][2]int // slot ranges the node serves
	migrating map[int]string
	importing map[int]string
}

func (n *nodeLine) has(flag string) bool { return slices.Contains(n.flags, flag) }

// parseClusterNodes reads the reply of CLUSTER NODES. A node whose address
// is not known yet (":0" or ":port") gets an empty addr.
func parseClusterNodes(text string) ([]nodeLine, error) {
	var out []nodeLine
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES: malformed line %q", line)
		}
		n := nodeLine{id: f[0], flags: strings.Split(f[2], ","), slots: f[8:],
			migrating: map[int]string{}, importing: map[int]string{}}
		addr, _, _ := strings.Cut(f[1], ",") // ip:port@cport[,hostname]
		addr, _, _ = strings.Cut(addr, "@")
		if i := strings.LastIndexByte(addr, ':'); i > 0 && addr[i+1:] != "0" {
			host := addr[:i]
			if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
				host = "[" + host + "]"
			}
			n.addr = host + addr[i:]
		}
		epoch, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES: bad config epoch in %q", line)
		}
		n.epoch = epoch
		for _, tok := range f[8:] {
			if strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]") {
				inner := tok[1 : len(tok)-1]
				if s, id, ok := strings.Cut(inner, "->-"); ok {
					slot, err := parseSlot(s)
					if err != nil {
						return nil, err
					}
					n.migrating[slot] = id
				} else if s, id, ok := strings.Cut(inner, "-<-"); ok {
					slot, err := parseSlot(s)
					if err != nil {
						return nil, err
					}
					n.importing[slot] = id
				} else {
					return nil, fmt.Errorf("CLUSTER NODES: unknown slot marker %q", tok)
				}
				continue
			}
			lo, hi, isRange := strings.Cut(tok, "-")
			if !isRange {
				hi = lo
			}
			a, err := parseSlot(lo)
			if err != nil {
				return nil, err
			}
			b, err := parseSlot(hi)
			if err != nil || b < a {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot range %q", tok)
			}
			n.claims = append(n.claims, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

func parseSlot(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= redisc.HashSlots {
		return 0, fmt.Errorf("CLUSTER NODES: bad slot %q", s)
	}
	return n, nil
}

// master is one master node as it describes itself.
type master struct {
	addr  string
	self  nodeLine
	level int // scan order: a node importing a slot is read after its source
}

// fingerprint is what must not change during a read: who the node is, its
// role, its config epoch (bumped when it takes a slot over), the slots it
// serves and its migrations.
func (m *master) fingerprint() string {
	return fmt.Sprintf("%s %s %s %d %s", m.addr, m.self.id, strings.Join(m.self.flags, ","), m.self.epoch, strings.Join(m.self.slots, " "))
}

// topology is the cluster's layout at the start of a read.
type topology struct {
	masters []*master // by address
	byID    map[string]*master
	owner   [redisc.HashSlots]*master
	levels  [][]*master
}

// view asks one node for CLUSTER NODES: a recently seen master first, then
// the seeds. It returns the lines and the address that answered.
func (c *Cluster) view(ctx context.Context) ([]nodeLine, string, error) {
	c.mu.Lock()
	candidates := slices.Clone(c.masters)
	c.mu.Unlock()
	for _, s := range c.seeds {
		if !slices.Contains(candidates, s.Address) {
			candidates = append(candidates, s.Address)
		}
	}
	var errs []error
	for _, addr := range candidates {
		if ctx.Err() != nil {
			break
		}
		lines, err := c.clusterNodes(ctx, addr)
		if err == nil {
			return lines, addr, nil
		}
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("no redis cluster node answered CLUSTER NODES: %w", errors.Join(errs...))
}

// clusterNodes runs CLUSTER NODES on the node at addr. The node's own line
// gets addr when the node does not know its address.
func (c *Cluster) clusterNodes(ctx context.Context, addr string) ([]nodeLine, error) {
	conn, err := c.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	text, err := redis.String(c.do(ctx, conn, "cluster_nodes", "CLUSTER", "NODES"))
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	lines, err := parseClusterNodes(text)
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	for i := range lines {
		if lines[i].has("myself") && lines[i].addr == "" {
			lines[i].addr = addr
		}
	}
	return lines, nil
}

// masterAddrs picks the masters to read out of a CLUSTER NODES view: every
// master with an address, except failed ones that serve no slot (a master
// without slots can still hold keys, when it is importing its first slot).
func masterAddrs(lines []nodeLine) []string {
	var addrs []string
	for i := range lines {
		n := &lines[i]
		if !n.has("master") || n.has("handshake") || n.has("noaddr") || n.addr == "" {
			continue
		}
		if len(n.claims) == 0 && (n.has("fail") || n.has("fail?")) {
			continue
		}
		if !slices.Contains(addrs, n.addr) {
			addrs = append(addrs, n.addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}

// self asks a master how it sees itself.
func (c *Cluster) self(ctx context.Context, addr string) (nodeLine, error) {
	lines, err := c.clusterNodes(ctx, addr)
	if err != nil {
		return nodeLine{}, err
	}
	for _, l := range lines {
		if l.has("myself") {
			return l, nil
		}
	}
	return nodeLine{}, fmt.Errorf("redis node %s: CLUSTER NODES has no myself line", addr)
}

// discover builds the topology of a read: the masters from one node's view,
// then each master's own account of the slots it serves and migrates. It
// fails with ErrTopologyChanged when the accounts do not add up to one
// master per slot (a migration being finalised, a failover under way).
func (c *Cluster) discover(ctx context.Context) (*topology, error) {
	lines, _, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	addrs := masterAddrs(lines)
	if len(addrs) == 0 {
		return nil, errors.New("redis cluster has no master node")
	}
	selves := make([]nodeLine, len(addrs))
	err = parallel(ctx, len(addrs), func(ctx context.Context, i int) error {
		var err error
		selves[i], err = c.self(ctx, addrs[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	t := &topology{byID: map[string]*master{}}
	for i, addr := range addrs {
		m := &master{addr: addr, self: selves[i]}
		if !m.self.has("master") {
			return nil, fmt.Errorf("%w: %s is no longer a master", ErrTopologyChanged, addr)
		}
		t.masters = append(t.masters, m)
		t.byID[m.self.id] = m
		for _, r := range m.self.claims {
			for s := r[0]; s <= r[1]; s++ {
				if other := t.owner[s]; other != nil {
					return nil, fmt.Errorf("%w: slot %d is served by both %s and %s", ErrTopologyChanged, s, other.addr, addr)
				}
				t.owner[s] = m
			}
		}
	}
	for s, m := range t.owner {
		if m == nil {
			return nil, fmt.Errorf("%w: slot %d is served by no reachable master", ErrTopologyChanged, s)
		}
	}
	// A migration is an edge source → target: the target is scanned after
	// the source has been, so that a key moving during the read is seen on
	// one or the other (MIGRATE writes the target before it deletes the
	// source, and keys only move from source to target).
	next := map[*master][]*master{}
	indeg := map[*master]int{}
	edge := func(from, to *master) {
		if from != to && !slices.Contains(next[from], to) {
			next[from] = append(next[from], to)
			indeg[to]++
		}
	}
	for _, m := range t.masters {
		for slot, id := range m.self.migrating {
			to := t.byID[id]
			if to == nil || t.owner[slot] != m {
				return nil, fmt.Errorf("%w: %s migrates slot %d to unknown node %s", ErrTopologyChanged, m.addr, slot, id)
			}
			edge(m, to)
		}
		for slot, id := range m.self.importing {
			from := t.byID[id]
			if from == nil || t.owner[slot] != from {
				return nil, fmt.Errorf("%w: %s imports slot %d from %s, which does not serve it", ErrTopologyChanged, m.addr, slot, id)
			}
			edge(from, m)
		}
	}
	ready := []*master{}
	for _, m := range t.masters {
		if indeg[m] == 0 {
			ready = append(ready, m)
		}
	}
	placed := 0
	for level := 0; len(ready) > 0; level++ {
		var after []*master
		for _, m := range ready {
			m.level = level
			for _, to := range next[m] {
				if indeg[to]--; indeg[to] == 0 {
					after = append(after, to)
				}
			}
		}
		slices.SortFunc(after, func(a, b *master) int { return strings.Compare(a.addr, b.addr) })
		t.levels = append(t.levels, ready)
		placed += len(ready)
		ready = after
	}
	if placed != len(t.masters) {
		return nil, fmt.Errorf("%w: slots migrate both ways between the same masters", ErrTopologyChanged)
	}

	c.mu.Lock()
	c.masters = addrs
	for s, m := range t.owner {
		c.owners[s] = m.addr
	}
	c.mu.Unlock()
	return t, nil
}

// verify checks that no master's account changed since t was discovered.
func (c *Cluster) verify(ctx context.Context, t *topology) error {
	return parallel(ctx, len(t.masters), func(ctx context.Context, i int) error {
		m := t.masters[i]
		self, err := c.self(ctx, m.addr)
		if err != nil {
			return err
		}
		now := master{addr: m.addr, self: self}
		if now.fingerprint() != m.fingerprint() {
			return fmt.Errorf("%w: the slots, migrations or role of %s changed", ErrTopologyChanged, m.addr)
		}
		return nil
	})
}

// parallel runs fn for 0..n-1 concurrently. The first failure cancels the
// others; the error returned prefers a real failure over a topology change
// and both over the cancellations they caused.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	rank := func(err error) int {
		switch {
		case err == nil:
			return 3
		case errors.Is(err, context.Canceled):
			return 2
		case errors.Is(err, ErrTopologyChanged):
			return 1
		}
		return 0
	}
	var best error
	for _, err := range errs {
		if err != nil && (best == nil || rank(err) < rank(best)) {
			best = err
		}
	}
	return best
}

// ---------------------------------------------------------------------------
// Usage

// ReadUsage reads the usage state of the whole cluster: SCAN with MATCH and
// COUNT on every master, pipelined HGETALLs in batches on the node that holds
// each key. It returns a complete snapshot (the same one a single server
// holding the same keys gives) or an error, never a partial one: a master
// that cannot be read fails the read, and a read during which the slot
// layout changed is done again, up to three times within ctx, then fails
// with ErrTopologyChanged.
func (c *Cluster) ReadUsage(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	var err error
	for attempt := 0; attempt < readAttempts; attempt++ {
		var snap *usage.Snapshot
		snap, err = c.readOnce(ctx, pattern, periodID)
		if err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrTopologyChanged) || ctx.Err() != nil {
			return nil, err
		}
		// Give a migration step or a failover a moment to settle.
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt+1) * 25 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%d reads in a row: %w", readAttempts, err)
}

// nodeRead is what one master contributed to a read.
type nodeRead struct {
	keys    []string // keys this node is authoritative for, in scan order
	usage   int      // how many of them parse as usage keys
	tenants map[string]usage.Counters
	skipped map[usage.Reason]int
}

func (c *Cluster) readOnce(ctx context.Context, pattern usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	t, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	snap := usage.NewSnapshot(periodID)
	seen := map[string]struct{}{}
	for _, level := range t.levels {
		reads := make([]*nodeRead, len(level))
		err := parallel(ctx, len(level), func(ctx context.Context, i int) error {
			var err error
			reads[i], err = c.readNode(ctx, t, level[i], pattern, periodID, seen)
			return err
		})
		if err != nil {
			return nil, err
		}
		// seen is only read while a level runs, and grows between levels.
		for _, r := range reads {
			for _, k := range r.keys {
				if _, dup := seen[k]; dup {
					// Two nodes of one level claimed a key: the layout
					// they were read under no longer holds.
					return nil, fmt.Errorf("%w: key %q on two masters", ErrTopologyChanged, k)
				}
				seen[k] = struct{}{}
			}
			snap.Keys += r.usage
			for reason, n := range r.skipped {
				snap.Skipped[reason] += n
			}
			for id, counters := range r.tenants {
				snap.Tenants[id] = counters
			}
		}
	}
	if err := c.verify(ctx, t); err != nil {
		return nil, err
	}
	return snap, nil
}

// pending is a usage key of the period waiting for its HGETALL.
type pending struct {
	key, tenant string
	asking      bool // the node is importing the key's slot: send ASKING first
}

// readNode scans one master and reads the hashes it is authoritative for:
// keys of slots it serves, and keys of slots it is importing. Keys it holds
// for any other slot are stale copies no client can reach, and are left out.
func (c *Cluster) readNode(ctx context.Context, t *topology, m *master, pattern usage.KeyPattern, periodID string, seen map[string]struct{}) (*nodeRead, error) {
	conn, err := c.conn(ctx, m.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	r := &nodeRead{tenants: map[string]usage.Counters{}, skipped: map[usage.Reason]int{}}
	mine := map[string]struct{}{}
	var batch []pending
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.readHashes(ctx, conn, t, m, batch, r)
		batch = batch[:0]
		return err
	}
	glob := pattern.Glob()
	cursor := "0"
	for {
		reply, err := redis.Values(c.do(ctx, conn, "scan", "SCAN", cursor, "MATCH", glob, "COUNT", c.scanCount))
		if err != nil {
			return nil, fmt.Errorf("redis node %s: %w", m.addr, err)
		}
		if len(reply) != 2 {
			return nil, fmt.Errorf("redis node %s: SCAN: unexpected reply of %d elements", m.addr, len(reply))
		}
		if cursor, err = redis.String(reply[0], nil); err != nil {
			return nil, fmt.Errorf("redis node %s: SCAN cursor: %w", m.addr, err)
		}
		keys, err := redis.Strings(reply[1], nil)
		if err != nil {
			return nil, fmt.Errorf("redis node %s: SCAN keys: %w", m.addr, err)
		}
		for _, key := range keys {
			if _, dup := seen[key]; dup {
				continue // read on a node of an earlier level
			}
			if _, dup := mine[key]; dup {
				continue // SCAN may return a key twice
			}
			slot := redisc.Slot(key)
			asking := false
			switch {
			case t.owner[slot] == m:
			case m.self.importing[slot] != "":
				asking = true
			default:
				continue
			}
			mine[key] = struct{}{}
			r.keys = append(r.keys, key)
			tenant, pid, err := pattern.Parse(key)
			if err != nil {
				r.skipped[usage.ReasonMalformedKey]++
				continue
			}
			r.usage++
			if pid != periodID {
				continue
			}
			batch = append(batch, pending{key: key, tenant: tenant, asking: asking})
			if len(batch) >= c.batchSize {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if cursor == "0" {
			break
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return r, nil
}

// readHashes sends one pipelined batch of HGETALLs to m and decodes the
// replies. A key that left m for the node importing its slot since the SCAN
// comes back as an ASK redirection and is read there.
func (c *Cluster) readHashes(ctx context.Context, conn redis.Conn, t *topology, m *master, batch []pending, r *nodeRead) error {
	replies, err := c.pipelineHGETALL(ctx, conn, batch)
	if err != nil {
		return fmt.Errorf("redis node %s: %w", m.addr, err)
	}
	asked := map[*master][]pending{}
	for i, reply := range replies {
		p := batch[i]
		if rerr, ok := reply.(redis.Error); ok {
			if re := redisc.ParseRedir(rerr); re != nil {
				to := t.byID[m.self.migrating[re.NewSlot]]
				if re.Type != "ASK" || to == nil || to.addr != re.Addr || p.asking {
					return fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, p.key, m.addr, rerr)
				}
				asked[to] = append(asked[to], pending{key: p.key, tenant: p.tenant, asking: true})
				continue
			}
		}
		if err := decodeInto(reply, p, r); err != nil {
			return fmt.Errorf("redis node %s: HGETALL %q: %w", m.addr, p.key, err)
		}
	}
	for to, ps := range asked {
		if err := c.readAsked(ctx, to, ps, r); err != nil {
			return err
		}
	}
	return nil
}

// readAsked reads keys that moved to the node importing their slot.
func (c *Cluster) readAsked(ctx context.Context, to *master, batch []pending, r *nodeRead) error {
	conn, err := c.conn(ctx, to.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	replies, err := c.pipelineHGETALL(ctx, conn, batch)
	if err != nil {
		return fmt.Errorf("redis node %s: %w", to.addr, err)
	}
	for i, reply := range replies {
		if rerr, ok := reply.(redis.Error); ok && redisc.ParseRedir(rerr) != nil {
			return fmt.Errorf("%w: HGETALL %q on %s: %v", ErrTopologyChanged, batch[i].key, to.addr, rerr)
		}
		if err := decodeInto(reply, batch[i], r); err != nil {
			return fmt.Errorf("redis node %s: HGETALL %q: %w", to.addr, batch[i].key, err)
		}
	}
	return nil
}

// pipelineHGETALL sends ASKING (where needed) and HGETALL for every key in
// one round trip and returns the HGETALL replies, one per key.
func (c *Cluster) pipelineHGETALL(ctx context.Context, conn redis.Conn, batch []pending) ([]any, error) {
	sent := 0
	for _, p := range batch {
		if p.asking {
			if err := conn.Send("ASKING"); err != nil {
				return nil, fmt.Errorf("ASKING: %w", err)
			}
			sent++
		}
		if err := conn.Send("HGETALL", p.key); err != nil {
			return nil, fmt.Errorf("HGETALL: %w", err)
		}
		sent++
	}
	all, err := redis.Values(c.do(ctx, conn, "hgetall", ""))
	if err != nil {
		return nil, err
	}
	if len(all) != sent {
		return nil, fmt.Errorf("HGETALL: %d replies for %d commands", len(all), sent)
	}
	replies := make([]any, 0, len(batch))
	i := 0
	for _, p := range batch {
		if p.asking {
			if rerr, ok := all[i].(redis.Error); ok {
				return nil, fmt.Errorf("ASKING: %w", rerr)
			}
			i++
		}
		replies = append(replies, all[i])
		i++
	}
	return replies, nil
}

// decodeInto decodes one HGETALL reply into r, like Store does.
func decodeInto(reply any, p pending, r *nodeRead) error {
	if rerr, ok := reply.(redis.Error); ok && redisc.IsTryAgain(rerr) {
		return fmt.Errorf("%w: %v", ErrTopologyChanged, rerr)
	}
	counters, found, err := decodeHGETALL(reply, r.skipped)
	if err != nil {
		return err
	}
	if found {
		r.tenants[p.tenant] = counters
	}
	return nil
}

// ReadTenant reads one usage hash from the master that serves the key's
// slot, following MOVED and ASK redirections.
func (c *Cluster) ReadTenant(ctx context.Context, key string) (counters usage.Counters, found bool, skipped map[usage.Reason]int, err error) {
	slot := redisc.Slot(key)
	c.mu.Lock()
	addr := c.owners[slot]
	c.mu.Unlock()
	if addr == "" {
		if addr, err = c.refreshOwner(ctx, slot); err != nil {
			return nil, false, nil, err
		}
	}
	asking := false
	for attempt := 0; attempt < 5; attempt++ {
		reply, err := c.hgetallOne(ctx, addr, key, asking)
		if err != nil {
			return nil, false, nil, err
		}
		if rerr, ok := reply.(redis.Error); ok {
			if re := redisc.ParseRedir(rerr); re != nil {
				addr, asking = re.Addr, re.Type == "ASK"
				if !asking {
					c.mu.Lock()
					c.owners[re.NewSlot] = re.Addr
					c.mu.Unlock()
				}
				continue
			}
			if redisc.IsTryAgain(rerr) {
				select {
				case <-ctx.Done():
					return nil, false, nil, ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
		}
		skipped = map[usage.Reason]int{}
		counters, found, err = decodeHGETALL(reply, skipped)
		if err != nil {
			return nil, false, nil, fmt.Errorf("redis node %s: HGETALL: %w", addr, err)
		}
		return counters, found, skipped, nil
	}
	return nil, false, nil, fmt.Errorf("HGETALL %q: too many cluster redirections", key)
}

// refreshOwner learns the slot layout from one node's view.
func (c *Cluster) refreshOwner(ctx context.Context, slot int) (string, error) {
	lines, _, err := c.view(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.masters = masterAddrs(lines)
	for _, n := range lines {
		if !n.has("master") || n.addr == "" {
			continue
		}
		for _, r := range n.claims {
			for s := r[0]; s <= r[1]; s++ {
				c.owners[s] = n.addr
			}
		}
	}
	if c.owners[slot] == "" {
		return "", fmt.Errorf("redis cluster: slot %d is served by no master", slot)
	}
	return c.owners[slot], nil
}

func (c *Cluster) hgetallOne(ctx context.Context, addr, key string, asking bool) (any, error) {
	conn, err := c.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	replies, err := c.pipelineHGETALL(ctx, conn, []pending{{key: key, asking: asking}})
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	return replies[0], nil
}

// ---------------------------------------------------------------------------
// INFO

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
				out[i].Fields, err = c.readInfo(ctx, p)
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
