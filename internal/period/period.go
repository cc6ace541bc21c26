// Package period computes billing periods: calendar months in the billing
// time zone, identified as YYYYMM the way the backend names its usage keys.
package period

import (
	"fmt"
	"time"
)

// Period is one billing month. Start is inclusive, End exclusive: End is the
// instant the usage counters reset (midnight of the first day of the next
// month in the billing time zone).
type Period struct {
	ID    string // YYYYMM, as in usage:{tenant_id}:{period}
	Start time.Time
	End   time.Time
}

// At returns the period that contains t in loc.
func At(t time.Time, loc *time.Location) Period {
	local := t.In(loc)
	start := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc)
	end := start.AddDate(0, 1, 0)
	return Period{
		ID:    fmt.Sprintf("%04d%02d", start.Year(), int(start.Month())),
		Start: start,
		End:   end,
	}
}

// Previous returns the period just before p.
func (p Period) Previous() Period {
	return At(p.Start.Add(-time.Nanosecond), p.Start.Location())
}

// Elapsed returns the fraction of the period that has passed at t, clamped
// to [0, 1].
func (p Period) Elapsed(t time.Time) float64 {
	total := p.End.Sub(p.Start)
	done := t.Sub(p.Start)
	switch {
	case done <= 0:
		return 0
	case done >= total:
		return 1
	}
	return float64(done) / float64(total)
}

// LoadLocation resolves an IANA zone name, with an error that names it.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" {
		return nil, fmt.Errorf("billing time zone is empty")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("billing time zone %q: %w", name, err)
	}
	return loc, nil
}
