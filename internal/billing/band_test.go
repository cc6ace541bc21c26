package billing

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// TestStanding: reached, the bands and the projected day agree with the
// shipped alerts' rules (BillingLimitReached, BillingUsageNearLimit,
// BillingUsagePredictedToExceed).
func TestStanding(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, sp), sp) // 30 days
	mid := nov.Start.Add(15 * 24 * time.Hour)
	firstDay := nov.Start.Add(12 * time.Hour)
	day := func(d int, h time.Duration) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, sp).Add(h) }
	cases := []struct {
		name        string
		limitType   string
		used, limit int64
		at          time.Time
		reached     bool
		band        Band
		reachesAt   time.Time
	}{
		{"messages at the limit", "messages", 1000, 1000, mid, true, BandReached, time.Time{}},
		{"messages over", "messages", 1500, 1000, mid, true, BandReached, time.Time{}},
		{"messages near, reached on day 19", "messages", 820, 1000, mid, false, BandNear, nov.Start.Add(15 * 24 * time.Hour * 1000 / 820)},
		{"messages at 80 % is not near", "messages", 800, 1000, firstDay, false, BandNone, time.Time{}},
		// 600 in 15 days: 1000 after 25 days, on 26 November.
		{"messages projected to run out", "messages", 600, 1000, mid, false, BandProjected, day(26, 0)},
		// 500 in 15 days: exactly 1000 at the end, which the alert does not count.
		{"messages projected to the limit exactly", "messages", 500, 1000, mid, false, BandNone, time.Time{}},
		{"no projection in the first day", "messages", 700, 1000, firstDay, false, BandNone, time.Time{}},
		{"storage full", "storage", 3 << 30, 3 << 30, mid, true, BandReached, time.Time{}},
		{"storage is not projected", "storage", 600, 1000, mid, false, BandNone, time.Time{}},
		{"seats at the limit are near", "users", 10, 10, mid, false, BandNear, time.Time{}},
		{"seats over the limit", "users", 11, 10, mid, true, BandReached, time.Time{}},
		{"sessions at the limit", "whatsappSessions", 1, 1, mid, false, BandNear, time.Time{}},
		{"a further type counts as consumption", "apiCalls", 150, 100, mid, true, BandReached, time.Time{}},
	}
	monthly := monthlyTypes(nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := standing(tc.limitType, tc.used, tc.limit, monthly[tc.limitType], nov, tc.at)
			if s.Reached != tc.reached || s.Band != tc.band {
				t.Errorf("reached %v, band %q; want %v, %q", s.Reached, s.Band, tc.reached, tc.band)
			}
			if !s.ReachesAt.Equal(tc.reachesAt) {
				t.Errorf("reaches the limit at %v, want %v", s.ReachesAt, tc.reachesAt)
			}
			if !s.ReachesAt.IsZero() && s.ReachesAt.Location() != sp {
				t.Errorf("reaches the limit at %v, not in the billing zone", s.ReachesAt)
			}
			// A shipped alert fires exactly when the limit is reached, or,
			// for messages, when it is in any band.
			if slices.Contains(append(slices.Clone(ConsumptionLimitTypes), SeatLimitTypes...), tc.limitType) {
				ts := TenantStatus{ID: "x", Usage: usage.CountersOf(map[string]int64{tc.limitType: tc.used}),
					Terms: NewTerms(Terms{LimitsKnown: true, Limits: plans.Limits{tc.limitType: tc.limit}}, "postgres")}
				want := s.Reached || tc.limitType == messagesType && s.Band != BandNone
				if got := ts.rankKey().alertingAt(ts.Terms, nov, tc.at); got != want {
					t.Errorf("an alert fires: %v, want %v (band %q); the ranking's rule and the bands disagree", got, want, s.Band)
				}
			}
		})
	}
}

func TestParseBand(t *testing.T) {
	for _, b := range Bands {
		if got, ok := ParseBand(b.String()); !ok || got != b {
			t.Errorf("ParseBand(%q) = %v, %v", b, got, ok)
		}
	}
	for _, s := range []string{"", "none", "Near", "reached "} {
		if _, ok := ParseBand(s); ok {
			t.Errorf("ParseBand(%q) accepted", s)
		}
	}
}

// TestRanking: one entry per tenant with a limit, by its most pressed
// limit, computed once per report and type set.
func TestRanking(t *testing.T) {
	used := map[string]usage.Counters{
		"low":      usage.CountersOf(map[string]int64{"messages": 10}),
		"msg-92":   usage.CountersOf(map[string]int64{"messages": 92, "storage": 300}),
		"users-10": usage.CountersOf(map[string]int64{"users": 10, "messages": 5}),
		"msg-100":  usage.CountersOf(map[string]int64{"messages": 100}),
		"store-95": usage.CountersOf(map[string]int64{"storage": 950, "messages": 60}),
		"nothing":  usage.CountersOf(map[string]int64{"other": 1}), // 0 of each limit
	}
	rows := []plans.Tenant{{ID: "unlimited"}}
	for id := range used {
		rows = append(rows, plans.Tenant{ID: id, Plan: "1"})
	}
	cat := plans.NewCatalog(rows...)
	cat.Plans["1"] = plans.Plan{ID: "1", Name: "starter", Limits: plans.Limits{"messages": 100, "storage": 1000, "users": 10}}
	nov := period.At(time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC), time.UTC)
	snap := usage.NewSnapshot(nov.ID)
	snap.Tenants = usage.TenantMap(used)
	r := &Report{At: nov.Start.Add(15 * 24 * time.Hour), Period: nov, Usage: snap,
		Plans: PlansState{Configured: true, Up: true, Catalog: cat}}
	r.join(plans.Limits{}, DefaultThresholds, nil)

	ids := func(rk []Ranked) []string {
		var out []string
		for _, e := range rk {
			out = append(out, r.Tenants.At(e.Index).ID+"/"+e.Top+"/"+e.Band.String())
		}
		return out
	}
	cases := []struct {
		types []string
		want  []string
	}{
		// users-10 and msg-100 are both at 100 %: the reached band first.
		{nil, []string{"msg-100/messages/reached", "users-10/users/near", "store-95/storage/near", "msg-92/messages/near", "low/messages/", "nothing/messages/"}},
		{[]string{"messages"}, []string{"msg-100/messages/reached", "msg-92/messages/near", "store-95/messages/projected", "low/messages/", "users-10/messages/", "nothing/messages/"}},
		{[]string{"users", "storage", "users"}, []string{"users-10/users/near", "store-95/storage/near", "msg-92/storage/", "low/storage/", "msg-100/storage/", "nothing/storage/"}},
		{[]string{"apiCalls"}, nil},
	}
	for _, tc := range cases {
		got := r.Ranking(tc.types)
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("Ranking(%v) = %v, want %v", tc.types, ids(got), tc.want)
		}
		if again := r.Ranking(tc.types); len(got) > 0 && &again[0] != &got[0] {
			t.Errorf("Ranking(%v) computed twice", tc.types)
		}
		for i, e := range got {
			if after := r.RankedAfter(got, e.Pressure, e.Band, r.Tenants.At(e.Index).ID); after != i+1 {
				t.Errorf("RankedAfter(%v #%d) = %d, want %d", tc.types, i, after, i+1)
			}
		}
	}
	// Views rank the same report at once: one computation, one order.
	fresh := &Report{At: r.At, Period: r.Period, Usage: usage.NewSnapshot(nov.ID), Plans: r.Plans}
	fresh.Usage.Tenants = usage.TenantMap(used)
	fresh.join(plans.Limits{}, DefaultThresholds, nil)
	var wg sync.WaitGroup
	orders := make([][]Ranked, 8)
	for i := range orders {
		wg.Go(func() { orders[i] = fresh.Ranking([]string{"users", "messages"}) })
	}
	wg.Wait()
	for _, o := range orders {
		if &o[0] != &orders[0][0] {
			t.Error("concurrent callers got orders computed apart")
		}
	}
	for i := range maxRankings + 2 { // past the memo's bound, still right
		types := []string{"messages", "t" + strconv.Itoa(i)}
		if got := ids(r.Ranking(types)); len(got) != 6 {
			t.Errorf("Ranking(%v) = %v", types, got)
		}
	}
}

// TestRenameIsACatalogChange: a tenant's new name installs a new catalog
// whose change set names the tenant, so the joins that follow carry it.
func TestRenameIsACatalogChange(t *testing.T) {
	cat := catalog()
	setName(cat, "1", "Padaria Estrela")
	src := &switchablePlans{cat: cat}
	s := newService(usageState(), src)
	first := s.testReport()
	if got := first.TenantName("1"); got != "Padaria Estrela" {
		t.Fatalf("name %q", got)
	}
	renamed := cat.Clone()
	setName(renamed, "1", "Padaria Estrela Ltda")
	src.cat = renamed
	next := s.testReport()
	if next.Plans.Seq != first.Plans.Seq+1 || !slices.Equal(next.Plans.Changed, []string{"1"}) {
		t.Errorf("plans seq %d → %d, changed %v; want a new catalog changing tenant 1", first.Plans.Seq, next.Plans.Seq, next.Plans.Changed)
	}
	if got := next.TenantName("1"); got != "Padaria Estrela Ltda" {
		t.Errorf("after the rename: %q", got)
	}
	if tr, err := s.Tenant(context.Background(), "1"); err != nil {
		t.Error(err)
	} else if tr.Name != "Padaria Estrela Ltda" {
		t.Errorf("Tenant: name %q", tr.Name)
	}
	src.cat = renamed.Clone() // equal: no new catalog
	if again := s.testReport(); again.Plans.Seq != next.Plans.Seq {
		t.Errorf("an equal catalog installed: seq %d → %d", next.Plans.Seq, again.Plans.Seq)
	}
}
