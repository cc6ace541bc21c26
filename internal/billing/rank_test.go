package billing

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

func TestMostPressed(t *testing.T) {
	limits := plans.Limits{"messages": 100, "storage": 1000, "users": 10, "whatsappSessions": 1}
	onPlan := func(id string, used usage.Counters) TenantStatus {
		return TenantStatus{ID: id, Usage: used, Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: limits}}
	}
	tenants := []TenantStatus{
		onPlan("low", usage.CountersOf(map[string]int64{"messages": 10})),
		// Consumption limits: at 100 % the backend refuses more.
		onPlan("messages-over", usage.CountersOf(map[string]int64{"messages": 150})),
		onPlan("storage-full", usage.CountersOf(map[string]int64{"storage": 1000})),
		// BillingUsageNearLimit: above 80 % of messages.
		onPlan("messages-85", usage.CountersOf(map[string]int64{"messages": 85})),
		onPlan("messages-80", usage.CountersOf(map[string]int64{"messages": 80})),
		// Seat limits: at the limit is normal use, over it the event.
		onPlan("one-session", usage.CountersOf(map[string]int64{"whatsappSessions": 1})),
		onPlan("users-full", usage.CountersOf(map[string]int64{"users": 10})),
		onPlan("users-over", usage.CountersOf(map[string]int64{"users": 12})),
		// BillingTenantWithoutPlan.
		{ID: "no-plan", Usage: usage.CountersOf(map[string]int64{"messages": 1}), Terms: &Terms{LimitsKnown: true, PlanID: NoPlanID, UsingDefaults: true, Limits: plans.Limits{"messages": 1000}}},
		{ID: "unlimited-big", Usage: usage.CountersOf(map[string]int64{"messages": 1e6}), Terms: &Terms{LimitsKnown: true, Limits: plans.Limits{}}},
		{ID: "unknown-limits", Usage: usage.CountersOf(map[string]int64{"messages": 5})},
	}
	for i := range tenants {
		tenants[i].ComputeChecks()
	}
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	firstDay := nov.Start.Add(12 * time.Hour) // no projection yet
	alerting := []string{"messages-over", "users-over", "storage-full", "messages-85", "no-plan"}
	cases := []struct {
		name string
		n    int
		at   time.Time
		want []string
	}{
		{"one", 1, firstDay, []string{"messages-over"}},
		// The alerting tenants first, by pressure: a tenant at its one
		// session (100 %) comes after one at 85 % of its messages.
		{"alerting first", 5, firstDay, alerting},
		{"then the others by pressure", 8, firstDay, append(slices.Clone(alerting), "one-session", "users-full", "messages-80")},
		{"all but one", 10, firstDay, append(slices.Clone(alerting), "one-session", "users-full", "messages-80", "low", "unlimited-big")},
		// Mid-month, "messages-80" and "low" are on course to exceed
		// their 100 messages (80 and 10 in half the period: 160 and 20);
		// only the first is over, and joins the alerting ones by pressure.
		{"projection mid-month", 6, nov.Start.Add(15 * 24 * time.Hour), []string{"messages-over", "users-over", "storage-full", "messages-85", "messages-80", "no-plan"}},
		{"no cap", 0, firstDay, ids(tenants)},
		{"cap above the count", 99, firstDay, ids(tenants)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(MostPressed(tenants, tc.n, nov, tc.at)); !slices.Equal(got, tc.want) {
				t.Errorf("n=%d: %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func ids(ts []TenantStatus) []string {
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = ts[i].ID
	}
	return out
}

// TestAlertingSkipsUnreadable checks that a figure that could not be read
// (an unreadable usage field or limit) makes no shipped alert fire, on its
// own or through a projection, while the tenant's readable limits still do.
func TestAlertingSkipsUnreadable(t *testing.T) {
	limits := plans.Limits{"messages": 100, "users": 10}
	unreadableMessages := func(other usage.Counters) usage.Counters {
		m := other.Map()
		m["messages"] = usage.UnreadableValue(usage.ReasonInvalidValue)
		return usage.CountersOf(m)
	}
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	midMonth := nov.Start.Add(15 * 24 * time.Hour)
	cases := []struct {
		name   string
		tenant TenantStatus
		want   bool
	}{
		{"messages unreadable", TenantStatus{ID: "a", Usage: unreadableMessages(nil), Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: limits}}, false},
		{"messages limit unreadable", TenantStatus{ID: "b", Usage: usage.CountersOf(map[string]int64{"messages": 95}), Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: plans.Limits{"users": 10}, UnreadableLimits: map[string]string{"messages": "invalid_value"}}}, false},
		{"readable seats still count", TenantStatus{ID: "c", Usage: unreadableMessages(usage.CountersOf(map[string]int64{"users": 11})), Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: limits}}, true},
		{"readable messages near the limit", TenantStatus{ID: "d", Usage: usage.CountersOf(map[string]int64{"messages": 85}), Terms: &Terms{LimitsKnown: true, PlanID: "1", Limits: limits}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.tenant.ComputeChecks()
			if got := tc.tenant.Alerting(nov, midMonth); got != tc.want {
				t.Errorf("Alerting = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTopN checks the bounded selection against a full sort, ties and all.
func TestTopN(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Any total order will do: topN is generic. Few distinct values below,
	// so most comparisons are ties broken by the index.
	cmpRanked := func(a, b ranked) int {
		return cmp.Or(cmp.Compare(b.pressure, a.pressure), cmp.Compare(b.messages, a.messages), cmp.Compare(a.i, b.i))
	}
	for _, size := range []int{1, 2, 3, 10, 100, 1000} {
		for _, n := range []int{1, 2, size / 2, size - 1, size} {
			if n < 1 || n > size {
				continue
			}
			rs := make([]ranked, size)
			for i := range rs {
				rs[i] = ranked{i: i, alerting: rng.IntN(4) == 0, pressure: float64(rng.IntN(5) * 25), messages: int64(rng.IntN(3))}
			}
			want := slices.SortedFunc(slices.Values(rs), cmpRanked)[:n]
			if got := topN(size, n, func(i int) ranked { return rs[i] }, cmpRanked); !slices.Equal(got, want) {
				t.Errorf("size %d, n %d: got %v, want %v", size, n, got, want)
			}
		}
	}
}

// TestMostPressedInParts: with enough tenants to be ranked in parts (one
// per core, at least two here), the n first are those a full sort of every
// tenant by the same order gives, across part boundaries, ties included.
func TestMostPressedInParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rng := rand.New(rand.NewPCG(3, 4))
	terms := []*Terms{
		{LimitsKnown: true, PlanID: "1", Limits: plans.Limits{"messages": 100, "users": 10}},
		{LimitsKnown: true, PlanID: NoPlanID, UsingDefaults: true, Limits: plans.Limits{"messages": 1000}},
		{LimitsKnown: true, PlanID: "2", Limits: plans.Limits{}},
	}
	for _, tm := range terms {
		tm.limits = sortedLimits(tm.Limits, nil, "")
	}
	const size = 30000
	tenants := make([]TenantStatus, size)
	for i := range tenants {
		tenants[i] = TenantStatus{
			ID:    fmt.Sprintf("t%05d", i),
			Usage: usage.CountersOf(map[string]int64{"messages": int64(rng.IntN(12) * 10), "users": int64(rng.IntN(12))}),
			Terms: terms[rng.IntN(len(terms))],
		}
	}
	if parts := splitEven(size, runtime.GOMAXPROCS(0)); len(parts) < 3 {
		t.Fatalf("%d tenants in %d part(s): the test needs several", size, len(parts)-1)
	}
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	at := nov.Start.Add(10 * 24 * time.Hour)
	byRank := slices.Clone(tenants)
	slices.SortStableFunc(byRank, func(a, b TenantStatus) int {
		aa, ap := a.Alerting(nov, at), a.Pressure()
		ba, bp := b.Alerting(nov, at), b.Pressure()
		am, _ := a.Used("messages")
		bm, _ := b.Used("messages")
		if aa != ba {
			if aa {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(bp, ap), cmp.Compare(bm, am), cmp.Compare(a.ID, b.ID))
	})
	for _, n := range []int{1, 7, 5000, 12000, size - 1} {
		got := MostPressed(tenants, n, nov, at)
		if !slices.Equal(ids(got), ids(byRank[:n])) {
			t.Errorf("n %d: the n first differ from a full sort's", n)
		}
	}
}

// TestOverThresholdInParts: counted in parts (one per core), the tenants
// over each threshold add up to what one pass over them all counts.
func TestOverThresholdInParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	defaults := plans.Limits{"messages": 10}
	used := map[string]usage.Counters{}
	var rows []plans.Tenant
	for i := range 30000 {
		id := fmt.Sprint(i)
		rows = append(rows, plans.Tenant{ID: id, Plan: []string{"1", "2", ""}[rng.IntN(3)]})
		used[id] = usage.CountersOf(map[string]int64{"messages": int64(rng.IntN(1200)), "users": int64(rng.IntN(12)), "storage": int64(rng.IntN(60))})
	}
	cat := plans.NewCatalog(rows...)
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 100, "users": 10}}
	cat.Plans["2"] = plans.Plan{ID: "2", Name: "pro", Limits: plans.Limits{"messages": 1000, "storage": 50}}
	join := func(procs int) []ThresholdCount {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		snap := usage.NewSnapshot("202611")
		snap.Tenants = usage.TenantMap(used)
		r := &Report{Usage: snap, Plans: PlansState{Configured: true, Source: "postgres", Up: true, Catalog: cat}}
		r.join(defaults, DefaultThresholds, nil)
		return r.OverThreshold
	}
	one, four := join(1), join(4)
	if !slices.Equal(one, four) {
		t.Errorf("counted in parts:\n%v\nin one pass:\n%v", four, one)
	}
	total := 0
	for _, c := range one {
		total += c.Tenants
	}
	if total == 0 {
		t.Error("no tenant over any threshold: the data does not test the counts")
	}
}
