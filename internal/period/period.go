// Package period computes billing periods: calendar months in the billing
// time zone, identified as YYYYMM.
package period

import (
	"fmt"
	"time"
)

// Period is one billing month, from Start to End exclusive, the instant the
// counters reset.
type Period struct {
	ID         string // YYYYMM
	Start, End time.Time
}

// At returns the period that contains t in loc.
func At(t time.Time, loc *time.Location) Period {
	y, m, _ := t.In(loc).Date()
	return month(y, m, loc)
}

func month(y int, m time.Month, loc *time.Location) Period {
	ny, nm := y, m+1
	if nm > time.December {
		ny, nm = y+1, time.January
	}
	return Period{
		ID:    fmt.Sprintf("%04d%02d", y, int(m)),
		Start: firstInstant(y, m, loc),
		End:   firstInstant(ny, nm, loc),
	}
}

// firstInstant returns the first instant of the 1st of the month in loc,
// which is not midnight where the clocks skip or repeat it.
func firstInstant(y int, m time.Month, loc *time.Location) time.Time {
	want := dayNumber(y, m, 1)
	t := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	// Midnight fell in a gap, normalised to the day before: the 1st starts
	// at the transition.
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

// dayNumber orders calendar dates.
func dayNumber(y int, m time.Month, d int) int { return (y*100+int(m))*100 + d }

func localDay(t time.Time, loc *time.Location) int {
	y, m, d := t.In(loc).Date()
	return dayNumber(y, m, d)
}

// Previous returns the period just before p.
func (p Period) Previous() Period {
	loc := p.Start.Location()
	y, m, _ := p.Start.In(loc).Date()
	if m == time.January {
		return month(y-1, time.December, loc)
	}
	return month(y, m-1, loc)
}

// Elapsed returns the fraction of the period passed at t, in [0, 1].
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

// LoadLocation resolves an IANA zone name.
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
