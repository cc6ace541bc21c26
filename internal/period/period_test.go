package period

import (
	"testing"
	"time"
)

func TestAt(t *testing.T) {
	saoPaulo, err := LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		at     time.Time
		loc    *time.Location
		wantID string
		start  time.Time
		end    time.Time
	}{
		{"utc last minute of november", time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), time.UTC, "202611",
			time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"utc first minute of december", time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC), time.UTC, "202612",
			time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"sao paulo last minute of november", time.Date(2026, 11, 30, 23, 59, 0, 0, saoPaulo), saoPaulo, "202611",
			time.Date(2026, 11, 1, 0, 0, 0, 0, saoPaulo), time.Date(2026, 12, 1, 0, 0, 0, 0, saoPaulo)},
		{"sao paulo first minute of december", time.Date(2026, 12, 1, 0, 1, 0, 0, saoPaulo), saoPaulo, "202612",
			time.Date(2026, 12, 1, 0, 0, 0, 0, saoPaulo), time.Date(2027, 1, 1, 0, 0, 0, 0, saoPaulo)},
		// 02:30 UTC on 1 December is still 23:30 on 30 November in São Paulo (UTC-3).
		{"utc december is sao paulo november", time.Date(2026, 12, 1, 2, 30, 0, 0, time.UTC), saoPaulo, "202611",
			time.Date(2026, 11, 1, 0, 0, 0, 0, saoPaulo), time.Date(2026, 12, 1, 0, 0, 0, 0, saoPaulo)},
		{"year rollover", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.UTC, "202612",
			time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := At(tc.at, tc.loc)
			if p.ID != tc.wantID || !p.Start.Equal(tc.start) || !p.End.Equal(tc.end) {
				t.Errorf("At(%v) = %s [%v, %v), want %s [%v, %v)", tc.at, p.ID, p.Start, p.End, tc.wantID, tc.start, tc.end)
			}
		})
	}
}

func TestPreviousAndElapsed(t *testing.T) {
	p := At(time.Date(2026, 1, 16, 12, 0, 0, 0, time.UTC), time.UTC)
	if got := p.Previous().ID; got != "202512" {
		t.Errorf("Previous = %s, want 202512", got)
	}
	if got := p.Elapsed(p.Start); got != 0 {
		t.Errorf("Elapsed(start) = %v", got)
	}
	if got := p.Elapsed(p.End.Add(time.Hour)); got != 1 {
		t.Errorf("Elapsed(after end) = %v", got)
	}
	if got := p.Elapsed(time.Date(2026, 1, 16, 12, 0, 0, 0, time.UTC)); got != 0.5 {
		t.Errorf("Elapsed(mid) = %v, want 0.5", got)
	}
}

func TestLoadLocationErrors(t *testing.T) {
	for _, name := range []string{"", "Mars/Olympus_Mons"} {
		if _, err := LoadLocation(name); err == nil {
			t.Errorf("LoadLocation(%q) succeeded", name)
		}
	}
}
