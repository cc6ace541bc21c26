package billing

import (
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
)

// The numbers of the shipped tenant alerts, as mixin/config.libsonnet sets
// them by default; a test in monitoring/ fails when the two disagree.
const (
	// NearLimitPercent of messages: BillingUsageNearLimit fires above it.
	NearLimitPercent = 80
	// LimitPercent: BillingLimitReached fires at it for a consumption
	// limit, above it for a seat limit.
	LimitPercent = 100
	// ProjectionMinElapsed must pass before a projection, as a few early
	// messages project to absurd figures.
	ProjectionMinElapsed = 24 * time.Hour
)

var (
	// ConsumptionLimitTypes are refused more at the limit.
	ConsumptionLimitTypes = []string{"messages", "storage"}
	// SeatLimitTypes count seats in use: at the limit is normal use.
	SeatLimitTypes = []string{"users", "whatsappSessions"}
)

// Projected returns used extrapolated at its pace so far to the end of p,
// and false until more than ProjectionMinElapsed of p has passed at at.
func Projected(used int64, p period.Period, at time.Time) (float64, bool) {
	elapsed := at.Sub(p.Start)
	if elapsed <= ProjectionMinElapsed {
		return 0, false
	}
	return float64(used) * float64(p.End.Sub(p.Start)) / float64(elapsed), true
}
