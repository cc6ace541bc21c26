package billing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// staticUsage serves a fixed usage snapshot. These tests are about the join;
// reading Redis is tested against a real server in internal/redis/read and collector.
type staticUsage struct {
	tenants map[string]usage.Counters
	err     error
}

func (s *staticUsage) ReadUsage(_ context.Context, _ usage.KeyPattern, periodID string) (*usage.Snapshot, error) {
	if s.err != nil {
		return nil, s.err
	}
	snap := usage.NewSnapshot(periodID)
	snap.Tenants = usage.TenantMap(maps.Clone(s.tenants))
	snap.Keys = len(s.tenants)
	return snap, nil
}

func (s *staticUsage) Info(context.Context) Info {
	if s.err != nil {
		return Info{Err: s.err}
	}
	return Info{Fields: map[string]string{"used_memory": "1024"}}
}

func (s *staticUsage) ReadTenant(_ context.Context, key string) (usage.Counters, bool, map[usage.Reason]int, error) {
	if s.err != nil {
		return nil, false, nil, s.err
	}
	tenant, _, err := usage.MustParseKeyPattern(usage.DefaultKeyPattern).Parse(key)
	if err != nil {
		return nil, false, nil, err
	}
	c, ok := s.tenants[tenant]
	return c, ok, map[usage.Reason]int{}, nil
}

// switchablePlans returns its catalog, or err when set.
type switchablePlans struct {
	cat *plans.Catalog
	err error
}

func (s *switchablePlans) Load(context.Context) (*plans.Catalog, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.cat, nil
}

var (
	now      = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	defaults = plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1}
)

func catalog() *plans.Catalog {
	c := plans.NewCatalog()
	c.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "storage": 1073741824, "users": 5, "whatsappSessions": 1}}
	c.Plans["2"] = plans.Plan{ID: "2", Name: `O'Brien "pro" ✓`, Limits: plans.Limits{"storage": 10737418240, "users": 25}} // messages unlimited
	c.Plans["9"] = plans.Plan{ID: "9", Name: "unused", Limits: plans.Limits{"messages": 1}}
	c.SetTenant(plans.Tenant{ID: "1", Plan: "1"})
	c.SetTenant(plans.Tenant{ID: "2", Plan: "1"}) // no usage this period
	c.SetTenant(plans.Tenant{ID: "3", Plan: ""})  // no active plan
	c.SetTenant(plans.Tenant{ID: "4", Plan: "2"})
	c.SetTenant(plans.Tenant{ID: "5", Plan: "1"})
	return c
}

// setPlan puts tenant id of cat on plan, keeping its name.
func setPlan(cat *plans.Catalog, id, plan string) {
	t, _ := cat.Tenant(id)
	t.ID, t.Plan = id, plan
	cat.SetTenant(t)
}

// setName names tenant id of cat, keeping its plan.
func setName(cat *plans.Catalog, id, name string) {
	t, _ := cat.Tenant(id)
	t.ID, t.Name = id, name
	cat.SetTenant(t)
}

func usageState() *staticUsage {
	return &staticUsage{tenants: map[string]usage.Counters{
		"1":  usage.CountersOf(map[string]int64{"messages": 4250, "storage": 1048576, "users": 3, "whatsappSessions": 1}),
		"3":  usage.CountersOf(map[string]int64{"messages": 10}),
		"4":  usage.CountersOf(map[string]int64{"messages": 123456, "storage": 5368709120, "apiCalls": 9}),
		"5":  usage.CountersOf(map[string]int64{"messages": 6000}),            // over the limit
		"77": usage.CountersOf(map[string]int64{"messages": 500, "users": 1}), // in Redis only
	}}
}

func newService(u Store, p plans.Source) *Service {
	c := Config{Defaults: defaults}
	if p != nil {
		c.Plans, c.PlansName = p, "postgres"
	}
	return New(u, WithClock(func() time.Time { return now }), WithConfig(c))
}

func tenant(t *testing.T, r *Report, id string) *TenantStatus {
	t.Helper()
	for i := range r.Tenants.Len() {
		if r.Tenants.At(i).ID == id {
			return r.Tenants.At(i)
		}
	}
	t.Fatalf("tenant %s not in report", id)
	return nil
}

func TestJoin(t *testing.T) {
	r := newService(usageState(), &switchablePlans{cat: catalog()}).testReport()
	if !r.UsageUp() || !r.Plans.Up {
		t.Fatalf("sources down: usage %v plans %v", r.UsageErr, r.Plans.Err)
	}
	type pct struct {
		limitType string
		want      float64
		limited   bool
	}
	cases := []struct {
		name          string
		tenant        string
		planID        string
		planName      string
		usingDefaults bool
		pcts          []pct
	}{
		{"plan with usage (the seed's 85%)", "1", "1", "starter", false, []pct{
			{"messages", 85, true}, {"storage", 100 * 1048576.0 / 1073741824, true}, {"users", 60, true}, {"whatsappSessions", 100, true}}},
		{"plan without usage this period", "2", "1", "starter", false, []pct{
			{"messages", 0, true}, {"storage", 0, true}, {"users", 0, true}, {"whatsappSessions", 0, true}}},
		{"known tenant without a plan", "3", NoPlanID, "", true, []pct{
			{"messages", 1, true}, {"users", 0, true}}},
		{"unlimited messages, unlimited extra type", "4", "2", `O'Brien "pro" ✓`, false, []pct{
			{"messages", 0, false}, {"storage", 50, true}, {"apiCalls", 0, false}, {"whatsappSessions", 0, false}}},
		{"over the limit", "5", "1", "starter", false, []pct{{"messages", 120, true}}},
		{"in Redis only", "77", NoPlanID, "", true, []pct{{"messages", 50, true}, {"users", 50, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := tenant(t, r, tc.tenant)
			if st.PlanID != tc.planID || st.PlanName != tc.planName || st.UsingDefaults != tc.usingDefaults || !st.LimitsKnown {
				t.Errorf("plan %q %q defaults=%v known=%v; want %q %q defaults=%v", st.PlanID, st.PlanName, st.UsingDefaults, st.LimitsKnown, tc.planID, tc.planName, tc.usingDefaults)
			}
			for _, p := range tc.pcts {
				got, ok := st.Percentage(p.limitType)
				if ok != p.limited || got != p.want {
					t.Errorf("percentage %s = %v (limited %v), want %v (limited %v)", p.limitType, got, ok, p.want, p.limited)
				}
			}
		})
	}
	if r.Tenants.Len() != 6 {
		t.Errorf("%d tenants, want 6 (usage ∪ plans)", r.Tenants.Len())
	}
	wantPerPlan := []PlanCount{{"1", "starter", 3}, {"2", `O'Brien "pro" ✓`, 1}, {"9", "unused", 0}, {NoPlanID, "", 2}}
	if len(r.PerPlan) != len(wantPerPlan) {
		t.Fatalf("per plan = %v, want %v", r.PerPlan, wantPerPlan)
	}
	for i := range wantPerPlan {
		if r.PerPlan[i] != wantPerPlan[i] {
			t.Errorf("per plan[%d] = %v, want %v", i, r.PerPlan[i], wantPerPlan[i])
		}
	}
	over := map[string]int{}
	for _, tc := range r.OverThreshold {
		over[tc.LimitType+"@"+formatThreshold(tc.Threshold)] = tc.Tenants
	}
	wantOver := map[string]int{
		// messages: 1 (85), 5 (120), 77 (50), 3 (1), 2 (0)
		"messages@50": 3, "messages@80": 2, "messages@90": 1, "messages@100": 1,
		// storage: 4 (50), 1 (0.1)
		"storage@50": 1, "storage@80": 0, "storage@90": 0, "storage@100": 0,
		// users: 1 (60), 77 (50)
		"users@50": 2, "users@80": 0, "users@90": 0, "users@100": 0,
		// whatsappSessions: 1 (100)
		"whatsappSessions@50": 1, "whatsappSessions@80": 1, "whatsappSessions@90": 1, "whatsappSessions@100": 1,
	}
	if !maps.Equal(over, wantOver) {
		t.Errorf("over threshold = %v\nwant %v", over, wantOver)
	}
}

func formatThreshold(f float64) string {
	return map[float64]string{50: "50", 80: "80", 90: "90", 100: "100"}[f]
}

func TestNoPlansSourceEveryoneOnDefaults(t *testing.T) {
	r := newService(usageState(), nil).testReport()
	for _, st := range r.Tenants.All() {
		if !st.UsingDefaults || st.PlanID != NoPlanID || !maps.Equal(st.Limits, defaults) {
			t.Errorf("tenant %s: %+v, want defaults", st.ID, st)
		}
	}
	if len(r.PerPlan) != 1 || r.PerPlan[0] != (PlanCount{NoPlanID, "", 5}) {
		t.Errorf("per plan = %v", r.PerPlan)
	}
}

func TestPlansDownKeepsLastCatalog(t *testing.T) {
	src := &switchablePlans{cat: catalog()}
	svc := newService(usageState(), src)
	fresh := svc.testReport()

	src.err = errors.New("connection refused")
	later := now.Add(10 * time.Minute)
	svc.now = func() time.Time { return later }
	stale := svc.testReport()
	if stale.Plans.Up || !stale.Plans.Stale() || stale.Plans.Err == nil {
		t.Fatalf("plans state = %+v, want stale", stale.Plans)
	}
	if age := stale.At.Sub(stale.Plans.LoadedAt); age != 10*time.Minute {
		t.Errorf("plans age = %v, want 10m", age)
	}
	for i := range fresh.Tenants.Len() {
		a, b := *fresh.Tenants.At(i), *stale.Tenants.At(i)
		if a.ID != b.ID || a.PlanID != b.PlanID || a.UsingDefaults != b.UsingDefaults || !maps.Equal(a.Limits, b.Limits) {
			t.Errorf("tenant %s changed while plans were down: %+v -> %+v", a.ID, a, b)
		}
	}
}

func TestPlansNeverRead(t *testing.T) {
	svc := newService(usageState(), &switchablePlans{err: errors.New("connection refused")})
	r := svc.testReport()
	if r.Plans.LimitsKnown() || r.PerPlan != nil || r.OverThreshold != nil {
		t.Errorf("limits reported without ever reading plans: %+v", r)
	}
	for _, st := range r.Tenants.All() {
		if st.LimitsKnown || st.UsingDefaults {
			t.Errorf("tenant %s flipped to defaults with plans never read", st.ID)
		}
		if _, ok := st.Percentage("messages"); ok {
			t.Errorf("tenant %s has a percentage with plans never read", st.ID)
		}
	}
	if r.Tenants.Len() != 5 {
		t.Errorf("usage tenants = %d, want 5 (usage is still reported)", r.Tenants.Len())
	}
}

func TestUsageDownReportsNoTenants(t *testing.T) {
	r := newService(&staticUsage{err: errors.New("redis down")}, &switchablePlans{cat: catalog()}).testReport()
	if r.UsageUp() || r.Tenants.Len() != 0 || r.PerPlan != nil || r.OverThreshold != nil {
		t.Errorf("report with Redis down has tenant data: %+v", r)
	}
	if !r.Plans.Up {
		t.Error("plans read skipped because Redis was down")
	}
}

func TestTenant(t *testing.T) {
	svc := newService(usageState(), &switchablePlans{cat: catalog()})
	cases := []struct {
		id      string
		wantErr error
		pct     float64
	}{
		{"1", nil, 85},
		{"2", nil, 0},
		{"77", nil, 50},
		{"999999", ErrUnknownTenant, 0},
	}
	for _, tc := range cases {
		tr, err := svc.Tenant(context.Background(), tc.id)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Tenant(%s) err = %v, want %v", tc.id, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got, _ := tr.Status.Percentage("messages"); got != tc.pct {
			t.Errorf("Tenant(%s) messages = %v%%, want %v", tc.id, got, tc.pct)
		}
	}
	if _, err := svc.Tenant(context.Background(), "1*"); err == nil {
		t.Error("Tenant accepted a glob id")
	}
	down := newService(&staticUsage{err: errors.New("down")}, &switchablePlans{cat: catalog()})
	if _, err := down.Tenant(context.Background(), "1"); !errors.Is(err, ErrUsageUnavailable) {
		t.Errorf("err = %v, want ErrUsageUnavailable", err)
	}
}

// TestJoinManyTenants: at scale, every tenant comes out once, in order,
// with its own numbers.
func TestJoinManyTenants(t *testing.T) {
	const n = 12345
	u := &staticUsage{tenants: map[string]usage.Counters{}}
	cat := catalog()
	for i := range n {
		id := fmt.Sprintf("m%06d", i)
		u.tenants[id] = usage.CountersOf(map[string]int64{"messages": int64(i % 5000)})
		if i%2 == 0 {
			cat.SetTenant(plans.Tenant{ID: id, Plan: "1"})
		}
	}
	r := newService(u, &switchablePlans{cat: cat}).testReport()
	seen := 0
	for i := range r.Tenants.Len() {
		st := r.Tenants.At(i)
		if i > 0 && r.Tenants.At(i-1).ID >= st.ID {
			t.Fatalf("tenants out of order at %d: %s then %s", i, r.Tenants.At(i-1).ID, st.ID)
		}
		var k int
		if _, err := fmt.Sscanf(st.ID, "m%06d", &k); err != nil {
			continue // the catalog's own tenants
		}
		seen++
		limit := 1000.0 // defaults
		if k%2 == 0 {
			limit = 5000 // starter
		}
		if got, want := mustPct(t, st, "messages"), 100*float64(k%5000)/limit; got != want {
			t.Fatalf("tenant %s: %v%%, want %v", st.ID, got, want)
		}
	}
	if seen != n {
		t.Errorf("%d generated tenants joined, want %d", seen, n)
	}
}

func mustPct(t *testing.T, st *TenantStatus, lt string) float64 {
	t.Helper()
	var got float64
	found := false
	st.EachLimit(func(limitType string, _ int64, pct float64) {
		if limitType == lt {
			got, found = pct, true
		}
	})
	if !found {
		t.Fatalf("tenant %s has no %s limit", st.ID, lt)
	}
	return got
}

// TestMergeSorted: the join sorts its parts apart and merges them; any
// number of parts, odd ones included, gives one sorted list of every id.
func TestMergeSorted(t *testing.T) {
	for _, tc := range []struct{ n, parts int }{
		{0, 1}, {1, 1}, {7, 2}, {10, 3}, {1000, 4}, {1001, 5}, {50, 7},
	} {
		t.Run(fmt.Sprintf("%d_in_%d", tc.n, tc.parts), func(t *testing.T) {
			s := make([]unlistedTenant, tc.n)
			for i := range s {
				s[i].id = fmt.Sprintf("t%05d", (i*7919)%tc.n) // a permutation
			}
			bounds := make([]int, tc.parts+1)
			for i := range bounds {
				bounds[i] = i * tc.n / tc.parts
			}
			eachPart(bounds, func(lo, hi int) { slices.SortFunc(s[lo:hi], compareUnlisted) })
			got := mergeSorted(s, bounds)
			if len(got) != tc.n {
				t.Fatalf("%d ids after the merge, want %d", len(got), tc.n)
			}
			for i := range got {
				if want := fmt.Sprintf("t%05d", i); got[i].id != want {
					t.Fatalf("position %d holds %s, want %s", i, got[i].id, want)
				}
			}
		})
	}
}

func TestSplitEven(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want []int
	}{
		{0, 4, []int{0, 0}},
		{4095, 2, []int{0, 4095}}, // too small to split
		{10000, 2, []int{0, 5000, 10000}},
		{10000, 8, []int{0, 5000, 10000}}, // parts of at least 4096
		{100000, 3, []int{0, 33333, 66666, 100000}},
	} {
		if got := splitEven(tc.n, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("splitEven(%d, %d) = %v, want %v", tc.n, tc.k, got, tc.want)
		}
	}
}

// testReport is one report under the Config in force.
func (s *Service) testReport() *Report {
	return s.report(context.Background(), s.config(), time.Time{})
}

// TestUnavailableYieldsNothingDerived: a usage field or a limit that could
// not be read gives no percentage, no threshold count and no pressure for
// that limit type of that tenant, in the full join and in the one-tenant
// read alike; the limit of an unreadable usage field stays; the tenant's
// other limit types are intact.
func TestUnavailableYieldsNothingDerived(t *testing.T) {
	cat := plans.NewCatalog()
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "users": 5}}
	cat.Plans["2"] = plans.Plan{ID: "2", Name: "broken", Limits: plans.Limits{"messages": 5000},
		Unreadable: map[string]string{"users": "negative_limit"}}
	for _, id := range []string{"field", "hash", "limit", "ok"} {
		cat.SetTenant(plans.Tenant{ID: id, Plan: "1"})
	}
	cat.SetTenant(plans.Tenant{ID: "limit", Plan: "2"})
	field := usage.CountersOf(map[string]int64{"users": 4, "messages": usage.UnreadableValue(usage.ReasonInvalidValue)})
	u := &staticUsage{tenants: map[string]usage.Counters{
		"field": field,
		"hash":  usage.UnreadableHash(usage.ReasonWrongType),
		"limit": usage.CountersOf(map[string]int64{"messages": 4500, "users": 4}),
		"ok":    usage.CountersOf(map[string]int64{"messages": 4500, "users": 4}),
	}}
	svc := New(u, WithClock(func() time.Time { return now }),
		WithConfig(Config{Plans: &switchablePlans{cat: cat}, PlansName: "postgres", Thresholds: []float64{0, 80}}))
	r := svc.testReport()

	cases := []struct {
		tenant      string
		unavailable map[string]Unavailable
		pct         map[string]float64
		knownLimits []string
		pressure    float64
	}{
		{"field", map[string]Unavailable{"messages": {"redis", "invalid_value"}}, map[string]float64{"users": 80}, []string{"messages", "users"}, 80},
		{"hash", map[string]Unavailable{"messages": {"redis", "wrong_type"}, "users": {"redis", "wrong_type"}}, nil, []string{"messages", "users"}, -1},
		{"limit", map[string]Unavailable{"users": {"postgres", "negative_limit"}}, map[string]float64{"messages": 90}, []string{"messages"}, 90},
		{"ok", nil, map[string]float64{"messages": 90, "users": 80}, []string{"messages", "users"}, 90},
	}
	byID := map[string]*TenantStatus{}
	for i := range r.Tenants.Len() {
		byID[r.Tenants.At(i).ID] = r.Tenants.At(i)
	}
	for _, tc := range cases {
		tr, err := svc.Tenant(context.Background(), tc.tenant)
		if err != nil {
			t.Fatal(err)
		}
		for path, st := range map[string]*TenantStatus{"Report": byID[tc.tenant], "Tenant": &tr.Status} {
			if st == nil {
				t.Fatalf("%s: tenant %s missing", path, tc.tenant)
			}
			for _, lt := range []string{"messages", "users"} {
				pct, ok := st.Percentage(lt)
				want, wantOK := tc.pct[lt]
				if ok != wantOK || pct != want {
					t.Errorf("%s %s: Percentage(%s) = %v, %v; want %v, %v", path, tc.tenant, lt, pct, ok, want, wantOK)
				}
				if got := st.Unavailable(lt); got != tc.unavailable[lt] {
					t.Errorf("%s %s: Unavailable(%s) = %+v, want %+v", path, tc.tenant, lt, got, tc.unavailable[lt])
				}
			}
			each := map[string]float64{}
			st.EachLimit(func(lt string, _ int64, pct float64) { each[lt] = pct })
			if len(tc.pct) > 0 && !maps.Equal(each, tc.pct) || len(tc.pct) == 0 && len(each) > 0 {
				t.Errorf("%s %s: EachLimit gives %v, want %v", path, tc.tenant, each, tc.pct)
			}
			var known []string
			st.EachKnownLimit(func(lt string, _ int64) { known = append(known, lt) })
			if !slices.Equal(known, tc.knownLimits) {
				t.Errorf("%s %s: EachKnownLimit gives %v, want %v", path, tc.tenant, known, tc.knownLimits)
			}
			if got := st.Pressure(); got != tc.pressure {
				t.Errorf("%s %s: Pressure = %v, want %v", path, tc.tenant, got, tc.pressure)
			}
		}
	}

	// Threshold 0 counts every tenant with a percentage: a skipped value
	// read as 0 % would be counted there.
	want := map[string]int{"messages": 2, "users": 2} // limit and ok; field and ok
	for _, c := range r.OverThreshold {
		if c.Tenants != want[c.LimitType] {
			t.Errorf("over threshold %s %v: %d tenants, want %d", c.LimitType, c.Threshold, c.Tenants, want[c.LimitType])
		}
	}

	// A TenantStatus built by hand computes the same.
	st := TenantStatus{ID: "x", Usage: field, Terms: &Terms{LimitsKnown: true, Limits: plans.Limits{"messages": 5000, "users": 5}}}
	st.ComputeChecks()
	if _, ok := st.Percentage("messages"); ok {
		t.Error("ComputeChecks: a percentage of an unreadable field")
	}
	if got := st.Pressure(); got != 80 {
		t.Errorf("ComputeChecks: pressure %v, want 80", got)
	}
}

// TestStatusesShareTheirTerms: a status is held per tenant, so what its
// plan gives it is one Terms per plan per join, and a status stays small.
func TestStatusesShareTheirTerms(t *testing.T) {
	if size := unsafe.Sizeof(TenantStatus{}); size > 32 {
		t.Errorf("a status is %d bytes, want at most 32 (one is held per tenant, twice during a read)", size)
	}
	r := newService(usageState(), &switchablePlans{cat: catalog()}).testReport()
	// Tenants 1 and 2 are on plan 1; the join is one part at this size,
	// so even a plan without a row has one Terms.
	if a, b := tenant(t, r, "1"), tenant(t, r, "2"); a.Terms != b.Terms {
		t.Errorf("tenants 1 and 2 are on plan %s with two Terms", a.PlanID)
	}
	byPlan := map[string]*Terms{}
	for i := range r.Tenants.Len() {
		st := r.Tenants.At(i)
		if st.Terms == nil {
			t.Fatalf("tenant %s joined without Terms", st.ID)
		}
		if seen, ok := byPlan[st.PlanID]; ok && seen != st.Terms {
			t.Errorf("tenant %s has Terms of its own for plan %s", st.ID, st.PlanID)
		}
		byPlan[st.PlanID] = st.Terms
	}
}

// TestUsedMessages: the messages usage of a status reads as its counters
// do, joined or built by hand.
func TestUsedMessages(t *testing.T) {
	cases := []struct {
		name   string
		usage  usage.Counters
		want   int64
		wantOK bool
	}{
		{"none", nil, 0, true},
		{"a value", usage.CountersOf(map[string]int64{"messages": 7}), 7, true},
		{"zero", usage.CountersOf(map[string]int64{"messages": 0}), 0, true},
		{"the largest", usage.CountersOf(map[string]int64{"messages": math.MaxInt64}), math.MaxInt64, true},
		{"unreadable", usage.CountersOf(map[string]int64{"messages": usage.UnreadableValue(usage.ReasonInvalidValue)}), 0, false},
		{"whole hash unreadable", usage.UnreadableHash(usage.ReasonWrongType), 0, false},
	}
	for _, tc := range cases {
		byHand := TenantStatus{ID: "x", Usage: tc.usage}
		if v, ok := byHand.Used("messages"); v != tc.want || ok != tc.wantOK {
			t.Errorf("%s, built by hand: Used = %d, %v; want %d, %v", tc.name, v, ok, tc.want, tc.wantOK)
		}
		joined := byHand
		joined.ComputeChecks()
		if v, ok := joined.Used("messages"); v != tc.want || ok != tc.wantOK {
			t.Errorf("%s, joined: Used = %d, %v; want %d, %v", tc.name, v, ok, tc.want, tc.wantOK)
		}
	}
}

// ComputeChecks gives a status built by hand the Terms a join would.
func (t *TenantStatus) ComputeChecks() {
	if t.Terms == nil {
		t.Terms = &Terms{}
	}
	t.Terms = NewTerms(*t.Terms, "")
}
