package read

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	slots     []string
	claims    [][2]int
	migrating map[int]string
	importing map[int]string
}

func (n *nodeLine) has(flag string) bool { return slices.Contains(n.flags, flag) }

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
		addr, _, _ := strings.Cut(f[1], ",")
		addr, _, _ = strings.Cut(addr, "@")
		if i := strings.LastIndexByte(addr, ':'); i > 0 && addr[i+1:] != "0" {
			n.addr = net.JoinHostPort(strings.Trim(addr[:i], "[]"), addr[i+1:])
		}
		epoch, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES: bad config epoch in %q", line)
		}
		n.epoch = epoch
		for _, tok := range f[8:] {
			if inner, ok := strings.CutPrefix(tok, "["); ok {
				inner = strings.TrimSuffix(inner, "]")
				sl, id, ok := strings.Cut(inner, "->-")
				marks := n.migrating
				if !ok {
					sl, id, ok = strings.Cut(inner, "-<-")
					marks = n.importing
				}
				slot, err := parseSlot(sl)
				if !ok || err != nil || !strings.HasSuffix(tok, "]") {
					return nil, fmt.Errorf("CLUSTER NODES: bad slot marker %q", tok)
				}
				marks[slot] = id
				continue
			}
			lo, hi, isRange := strings.Cut(tok, "-")
			if !isRange {
				hi = lo
			}
			a, errA := parseSlot(lo)
			b, errB := parseSlot(hi)
			if errA != nil || errB != nil || b < a {
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

type master struct {
	addr, name string
	self       nodeLine
}

func (m *master) fingerprint() string {
	return fmt.Sprintf("%s %s %s %d %s", m.addr, m.self.id, strings.Join(m.self.flags, ","), m.self.epoch, strings.Join(m.self.slots, " "))
}

// Topology is the layout of the masters.
type Topology struct {
	masters []*master
	levels  [][]*master // an importing node after its source
	byID    map[string]*master
	owner   [redisc.HashSlots]*master
}

// Node is one master of a Topology.
type Node struct {
	Addr string
	Name string // "" for a single server
}

// Nodes returns the masters.
func (t *Topology) Nodes() []Node {
	nodes := make([]Node, len(t.masters))
	for i, m := range t.masters {
		nodes[i] = Node{Addr: m.addr, Name: m.name}
	}
	return nodes
}

// Fingerprint identifies the layout; stable is false while a slot migrates.
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

func (r *Reader) view(ctx context.Context) ([]nodeLine, error) {
	r.mu.Lock()
	candidates := r.withSeeds(slices.Clone(r.masters))
	r.mu.Unlock()
	var errs []error
	for _, addr := range candidates {
		lines, err := r.clusterNodes(ctx, addr)
		if err == nil {
			return lines, nil
		}
		if errs = append(errs, err); ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no redis cluster node answered CLUSTER NODES: %w", errors.Join(errs...))
}

// withSeeds adds the seeds addrs lacks.
func (r *Reader) withSeeds(addrs []string) []string {
	for _, s := range r.seeds {
		if !slices.Contains(addrs, s.Address) {
			addrs = append(addrs, s.Address)
		}
	}
	return addrs
}

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

// masterAddrs leaves out failed masters without slots.
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
		addrs = append(addrs, n.addr)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

func (r *Reader) self(ctx context.Context, addr string) (nodeLine, error) {
	lines, err := r.clusterNodes(ctx, addr)
	if err != nil {
		return nodeLine{}, err
	}
	if i := slices.IndexFunc(lines, func(l nodeLine) bool { return l.has("myself") }); i >= 0 {
		return lines[i], nil
	}
	return nodeLine{}, fmt.Errorf("redis node %s: CLUSTER NODES has no myself line", addr)
}

// Topology returns the masters' own accounts of their slots.
func (r *Reader) Topology(ctx context.Context) (*Topology, error) {
	if r.single {
		m := &master{addr: r.seeds[0].Address}
		return &Topology{masters: []*master{m}, levels: [][]*master{{m}}}, nil
	}
	lines, err := r.view(ctx)
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
	// A migration's target is read after its source: MIGRATE writes the
	// target before it deletes the source.
	var edges [][2]*master
	for _, m := range t.masters {
		for slot, id := range m.self.migrating {
			if to := t.byID[id]; to == nil || t.owner[slot] != m {
				return nil, fmt.Errorf("%w: %s migrates slot %d to unknown node %s", ErrTopologyChanged, m.addr, slot, id)
			} else if to != m {
				edges = append(edges, [2]*master{m, to})
			}
		}
		for slot, id := range m.self.importing {
			if from := t.byID[id]; from == nil || t.owner[slot] != from {
				return nil, fmt.Errorf("%w: %s imports slot %d from %s, which does not serve it", ErrTopologyChanged, m.addr, slot, id)
			} else if from != m {
				edges = append(edges, [2]*master{from, m})
			}
		}
	}
	level := map[*master]int{}
	for changed, rounds := true, 0; changed; rounds++ {
		if rounds > len(t.masters) {
			return nil, fmt.Errorf("%w: slots migrate both ways between the same masters", ErrTopologyChanged)
		}
		changed = false
		for _, e := range edges {
			if level[e[1]] <= level[e[0]] {
				level[e[1]], changed = level[e[0]]+1, true
			}
		}
	}
	for _, m := range t.masters {
		for len(t.levels) <= level[m] {
			t.levels = append(t.levels, nil)
		}
		t.levels[level[m]] = append(t.levels[level[m]], m)
	}
	r.mu.Lock()
	r.masters = addrs
	for s, m := range t.owner {
		r.owners[s] = m.addr
	}
	r.mu.Unlock()
	return t, nil
}

// Verify checks that the layout is still t.
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
