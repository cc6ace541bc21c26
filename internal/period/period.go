// Package period computes billing months.
package period

import (
	"fmt"
	"time"
)

// Period is a billing month, [Start, End).
type Period struct {
	ID         string // YYYYMM
	Start, End time.Time
}

// At returns t's period in loc.
func At(t time.Time, loc *time.Location) Period {
	y, m, _ := t.In(loc).Date()
	next := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	return Period{
		ID:    fmt.Sprintf("%04d%02d", y, int(m)),
		Start: firstInstant(y, m, loc),
		End:   firstInstant(next.Year(), next.Month(), loc),
	}
}

// firstInstant is not midnight where the clocks skip or repeat it.
func firstInstant(y int, m time.Month, loc *time.Location) time.Time {
	want := dayNumber(y, m, 1)
	t := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	// Midnight fell in a gap: the 1st starts at the transition.
	for i := 0; i < 4 && localDay(t, loc) < want; i++ {
		_, end := t.ZoneBounds()
		if end.IsZero() {
			break
		}
		t = end
	}
	// Midnight exists twice: take the first.
	if start, _ := t.ZoneBounds(); !start.IsZero() {
		_, offset := start.Add(-time.Nanosecond).Zone()
		early := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(offset) * time.Second)
		if early.Before(t) && localDay(early, loc) == want {
			t = early
		}
	}
	return t.In(loc)
}

func dayNumber(y int, m time.Month, d int) int { return (y*100+int(m))*100 + d }

func localDay(t time.Time, loc *time.Location) int {
	y, m, d := t.In(loc).Date()
	return dayNumber(y, m, d)
}

// Previous returns the prior period.
func (p Period) Previous() Period { return At(p.Start.Add(-time.Nanosecond), p.Start.Location()) }

// Elapsed returns the share of p past at t.
func (p Period) Elapsed(t time.Time) float64 {
	return min(max(float64(t.Sub(p.Start))/float64(p.End.Sub(p.Start)), 0), 1)
}

// LoadLocation loads a billing time zone.
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
