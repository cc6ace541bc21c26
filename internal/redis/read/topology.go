package read

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
	"github.com/mna/redisc"
	"golang.org/x/sync/errgroup"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
)

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
	addr, name string
	self       nodeLine
}

// fingerprint is what must not change during a read: who the node is, its
// role, its config epoch (bumped when it takes a slot over), the slots it
// serves and its migrations.
func (m *master) fingerprint() string {
	return fmt.Sprintf("%s %s %s %d %s", m.addr, m.self.id, strings.Join(m.self.flags, ","), m.self.epoch, strings.Join(m.self.slots, " "))
}

// Topology is the layout of the masters at the start of a read. A node
// importing a slot is on a later level than the node it imports from.
type Topology struct {
	masters []*master // by address
	byID    map[string]*master
	owner   [redisc.HashSlots]*master
	levels  [][]*master
}

// Node is one master of a Topology.
type Node struct {
	Addr string // host:port
	Name string // how errors and spans name it: Addr in a cluster, "" for a single server
}

// Nodes returns the masters.
func (t *Topology) Nodes() []Node {
	nodes := make([]Node, len(t.masters))
	for i, m := range t.masters {
		nodes[i] = Node{Addr: m.addr, Name: m.name}
	}
	return nodes
}

// Fingerprint identifies the layout: each master's identity, role, epoch,
// slots and migrations. stable is false while a slot migrates.
func (t *Topology) Fingerprint() (fp string, stable bool) {
	var b strings.Builder
	stable = true
	for _, m := range t.masters {
		b.WriteString(m.fingerprint())
		b.WriteByte('\n')
		if len(m.self.migrating) > 0 || len(m.self.importing) > 0 {
			stable = false
		}
	}
	return b.String(), stable
}

// view asks one node for CLUSTER NODES: a recently seen master first, then
// the seeds. It returns the lines and the address that answered.
func (r *Reader) view(ctx context.Context) ([]nodeLine, string, error) {
	r.mu.Lock()
	candidates := slices.Clone(r.masters)
	r.mu.Unlock()
	for _, s := range r.seeds {
		if !slices.Contains(candidates, s.Address) {
			candidates = append(candidates, s.Address)
		}
	}
	var errs []error
	for _, addr := range candidates {
		if ctx.Err() != nil {
			break
		}
		lines, err := r.clusterNodes(ctx, addr)
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
func (r *Reader) clusterNodes(ctx context.Context, addr string) (_ []nodeLine, err error) {
	ctx, rt := conn.StartRoundTrips(ctx, "CLUSTER NODES", addr)
	defer func() { rt.End(err) }()
	c, err := r.Conn(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("redis node %s: %w", addr, err)
	}
	defer c.Close()
	rt.Calls++
	text, err := redis.String(r.set.Do(ctx, c, "cluster_nodes", "CLUSTER", "NODES"))
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
func (r *Reader) self(ctx context.Context, addr string) (nodeLine, error) {
	lines, err := r.clusterNodes(ctx, addr)
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

// Topology returns the layout of a read: the masters from one node's view,
// then each master's own account of its slots and migrations; a single
// server is one master. It fails with ErrTopologyChanged when the accounts
// do not add up to one master per slot.
func (r *Reader) Topology(ctx context.Context) (*Topology, error) {
	if r.single {
		m := &master{addr: r.seeds[0].Address}
		return &Topology{masters: []*master{m}, levels: [][]*master{{m}}}, nil
	}
	lines, _, err := r.view(ctx)
	if err != nil {
		return nil, err
	}
	addrs := masterAddrs(lines)
	if len(addrs) == 0 {
		return nil, errors.New("redis cluster has no master node")
	}
	selves := make([]nodeLine, len(addrs))
	g, gctx := errgroup.WithContext(ctx)
	for i, addr := range addrs {
		g.Go(func() (err error) { selves[i], err = r.self(gctx, addr); return err })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	t := &Topology{byID: map[string]*master{}}
	for i, addr := range addrs {
		m := &master{addr: addr, name: addr, self: selves[i]}
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
	for len(ready) > 0 {
		var after []*master
		for _, m := range ready {
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

	r.mu.Lock()
	r.masters = addrs
	for s, m := range t.owner {
		r.owners[s] = m.addr
	}
	r.mu.Unlock()
	return t, nil
}

// Verify checks that no master's account changed since t.
func (r *Reader) Verify(ctx context.Context, t *Topology) error {
	if r.single {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range t.masters {
		g.Go(func() error {
			self, err := r.self(gctx, m.addr)
			if err != nil {
				return err
			}
			if now := (&master{addr: m.addr, self: self}); now.fingerprint() != m.fingerprint() {
				return fmt.Errorf("%w: the slots, migrations or role of %s changed", ErrTopologyChanged, m.addr)
			}
			return nil
		})
	}
	return g.Wait()
}
