package billing

import (
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
)

// Alerting is standing's first result.
func (t *TenantStatus) Alerting(p period.Period, at time.Time) bool {
	return t.rankKey().alertingAt(t.Terms, p, at)
}

// Pressure is the tenant's highest percentage of any limit, -1 without one.
func (t *TenantStatus) Pressure() float64 {
	top := -1.0
	t.EachLimit(func(_ string, _ int64, pct float64) { top = max(top, pct) })
	return top
}

// Used is the tenant's usage of metricType.
func (t *TenantStatus) Used(metricType string) (int64, bool) {
	return t.Usage.Value(metricType)
}
