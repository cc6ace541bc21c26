package billing

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// Band is how pressed a limit is, in the terms of the shipped alerts;
// a higher Band is more pressed.
type Band int

// The bands, least pressed first.
const (
	// BandNone: no band applies.
	BandNone Band = iota
	// BandProjected: on course to reach the limit before the period ends,
	// as BillingUsagePredictedToExceed projects.
	BandProjected
	// BandNear: above NearLimitPercent, not reached.
	BandNear
	// BandReached: at or over the limit, as BillingLimitReached counts it.
	BandReached
)

// Bands lists the bands that need attention, most pressed first.
var Bands = []Band{BandReached, BandNear, BandProjected}

var bandNames = []string{"", "projected", "near", "reached"}

// String is the band's name in URLs, JSON and CSV; "" for BandNone.
func (b Band) String() string {
	if b < 0 || int(b) >= len(bandNames) {
		return fmt.Sprintf("Band(%d)", int(b))
	}
	return bandNames[b]
}

// ParseBand parses a band name other than BandNone's.
func ParseBand(s string) (Band, bool) {
	i := slices.Index(bandNames, s)
	return Band(i), i > 0
}

// ParseBands parses a comma list of band names (reached, near, projected).
func ParseBands(s string) ([]Band, error) {
	var out []Band
	for name := range strings.SplitSeq(s, ",") {
		b, ok := ParseBand(name)
		if !ok {
			return nil, fmt.Errorf("%.32q is not a band; use reached, near or projected", name)
		}
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out, nil
}

// Reached reports whether pct of a limitType limit counts as reached: for
// a seat limit over LimitPercent, for any other at it.
func Reached(limitType string, pct float64) bool {
	if slices.Contains(SeatLimitTypes, limitType) {
		return pct > LimitPercent
	}
	return pct >= LimitPercent
}

// LimitStanding is one limit of one tenant at one time.
type LimitStanding struct {
	Type       string
	Used       int64
	Limit      int64
	Percentage float64
	Reached    bool
	Band       Band
	// ReachesAt is when the limit is reached at the pace so far, in the
	// billing time zone; zero when reached or not reached this period.
	ReachesAt time.Time
	// Projected is the end-of-period usage at that pace; ProjectedOK is
	// false for a type that does not reset monthly or too early to tell.
	Projected   float64
	ProjectedOK bool
}

// ProjectedPercentage is 100 × Projected / Limit.
func (l LimitStanding) ProjectedPercentage() float64 {
	return 100 * l.Projected / float64(l.Limit)
}

// monthlyTypes are the metric types that reset each period, and so have a
// projection; nil types mean usage.DefaultMetricTypes.
func monthlyTypes(types []usage.MetricType) map[string]bool {
	if types == nil {
		types = usage.DefaultMetricTypes
	}
	out := map[string]bool{}
	for _, mt := range types {
		if mt.MonthlyReset {
			out[mt.Name] = true
		}
	}
	return out
}

// standing judges one limit at at; monthly says whether it is projected.
func standing(limitType string, used, limit int64, monthly bool, p period.Period, at time.Time) LimitStanding {
	s := LimitStanding{Type: limitType, Used: used, Limit: limit, Percentage: percentage(used, limit)}
	s.Reached = Reached(limitType, s.Percentage)
	if monthly {
		s.Projected, s.ProjectedOK = Projected(used, p, at)
	}
	switch {
	case s.Reached:
		s.Band = BandReached
	case s.Percentage > NearLimitPercent:
		s.Band = BandNear
	case s.ProjectedOK && s.Projected > float64(limit):
		s.Band = BandProjected
	}
	if s.ProjectedOK && !s.Reached && s.Projected > float64(limit) && used > 0 {
		// The pace so far reaches limit after elapsed × limit / used.
		elapsed := at.Sub(p.Start)
		s.ReachesAt = p.Start.Add(time.Duration(float64(elapsed) * float64(limit) / float64(used))).In(p.Start.Location())
	}
	return s
}

// Standings returns each limit with a percentage, by type, at at; monthly
// types are those of the Report's or TenantReport's configuration.
func (t *TenantStatus) Standings(p period.Period, at time.Time, monthly map[string]bool) []LimitStanding {
	var out []LimitStanding
	t.EachLimit(func(lt string, limit int64, _ float64) {
		used, _ := t.Usage.Value(lt)
		out = append(out, standing(lt, used, limit, monthly[lt], p, at))
	})
	return out
}

// MostPressedLimit returns the index in s of the most pressed limit, as
// Ranked.Top; -1 for none.
func MostPressedLimit(s []LimitStanding) int {
	top := -1
	for i := range s {
		if top < 0 || morePressed(s[i].Band, s[i].Percentage, s[top].Band, s[top].Percentage) {
			top = i
		}
	}
	return top
}

// morePressed reports whether a limit in band at pct is more pressed than
// one in than at thanPct: the higher band, then the higher percentage.
func morePressed(band Band, pct float64, than Band, thanPct float64) bool {
	return band > than || band == than && pct > thanPct
}

// Standing judges one limit of the tenant; false without a percentage.
func (t *TenantStatus) Standing(limitType string, monthly bool, p period.Period, at time.Time) (LimitStanding, bool) {
	if _, ok := t.Percentage(limitType); !ok {
		return LimitStanding{}, false
	}
	used, _ := t.Usage.Value(limitType)
	return standing(limitType, used, t.Limits[limitType], monthly, p, at), true
}

// Standings returns the limits of Tenants[i] at the report's time.
func (r *Report) Standings(i int) []LimitStanding {
	return r.Tenants.At(i).Standings(r.Period, r.At, r.monthly)
}

// Standings returns the tenant's limits at the report's time.
func (tr *TenantReport) Standings() []LimitStanding {
	return tr.Status.Standings(tr.Period, tr.At, tr.monthly)
}

// Monthly reports whether metricType resets each period in this report.
func (tr *TenantReport) Monthly(metricType string) bool { return tr.monthly[metricType] }

// Monthly reports whether metricType resets each period in this report.
func (r *Report) Monthly(metricType string) bool { return r.monthly[metricType] }
