package billing

import (
	"context"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/plans"
)

// gatedPlans blocks Load until released, so that a read can be held in
// flight across a Reconfigure.
type gatedPlans struct {
	cat     *plans.Catalog
	entered chan struct{}
	release chan struct{}
}

func (g *gatedPlans) Load(ctx context.Context) (*plans.Catalog, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.cat, nil
}

func thresholdsOf(r *Report) map[float64]bool {
	seen := map[float64]bool{}
	for _, tc := range r.OverThreshold {
		seen[tc.Threshold] = true
	}
	return seen
}

// TestReconfigure: a read in flight finishes on the Config it started with;
// a read started after Reconfigure, scrape or API, uses the new one and
// never joins or reuses a read made under the old.
func TestReconfigure(t *testing.T) {
	old := &gatedPlans{cat: catalog(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	svc := New(usageState(), WithClock(func() time.Time { return now }), WithMaxAge(time.Hour),
		WithConfig(Config{Plans: old, PlansName: "file", Defaults: defaults, Thresholds: []float64{50}}))

	inFlight := make(chan *Read, 1)
	go func() {
		r, _ := svc.Read(context.Background())
		inFlight <- r
	}()
	<-old.entered // the old read is in its plans Load

	svc.Reconfigure(Config{Plans: &switchablePlans{cat: catalog()}, PlansName: "postgres",
		Defaults: defaults, Thresholds: []float64{75}})

	// A scrape after the reload starts its own read, under the new Config,
	// although the old read is still in flight.
	r, err := svc.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := thresholdsOf(r.Report); !got[75] || got[50] || r.Report.Plans.Source != "postgres" {
		t.Errorf("read after Reconfigure: thresholds %v, source %q; want 75 and postgres", got, r.Report.Plans.Source)
	}

	close(old.release)
	r = <-inFlight
	if got := thresholdsOf(r.Report); !got[50] || got[75] || r.Report.Plans.Source != "file" {
		t.Errorf("read in flight: thresholds %v, source %q; want its own 50 and file", got, r.Report.Plans.Source)
	}

	// The old read completed last, but the API must not reuse it.
	r, err = svc.Recent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := thresholdsOf(r.Report); !got[75] {
		t.Errorf("Recent after Reconfigure reused a read of the old Config: thresholds %v", got)
	}

	// Unset fields take the defaults, as in New.
	svc.Reconfigure(Config{})
	if len(svc.MetricTypes()) == 0 || svc.Defaults() == nil {
		t.Errorf("Reconfigure(Config{}): metric types %v, defaults %v", svc.MetricTypes(), svc.Defaults())
	}
}
