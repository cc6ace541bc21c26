package period

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// TestAtDSTGapAtMidnight covers zones whose clocks jumped forward at 00:00
// on the 1st: that midnight does not exist, and the month's ID and bounds
// must still be the calendar month's.
func TestAtDSTGapAtMidnight(t *testing.T) {
	cases := []struct {
		zone   string
		at     time.Time // noon UTC mid-month: that date in every zone
		wantID string
		start  string // first instant of the 1st, local RFC 3339
	}{
		{"America/Asuncion", time.Date(2023, 10, 15, 12, 0, 0, 0, time.UTC), "202310", "2023-10-01T01:00:00-03:00"},
		{"America/Havana", time.Date(2012, 4, 15, 12, 0, 0, 0, time.UTC), "201204", "2012-04-01T01:00:00-04:00"},
	}
	for _, tc := range cases {
		t.Run(tc.zone, func(t *testing.T) {
			loc, err := LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			p := At(tc.at, loc)
			if p.ID != tc.wantID || p.Start.Format(time.RFC3339) != tc.start {
				t.Errorf("At(%v) = %s from %s, want %s from %s", tc.at, p.ID, p.Start.Format(time.RFC3339), tc.wantID, tc.start)
			}
			if prev := p.Previous(); !prev.End.Equal(p.Start) {
				t.Errorf("Previous() = %s ending %v, want it to end at %v", prev.ID, prev.End, p.Start)
			}
		})
	}
}

// TestAtEveryZone checks every month from 1970 to 2040 in every zone of the
// system's tzdata: the ID is the calendar month, the period holds the
// instant, starts at the first instant of the local 1st and ends where the
// next period starts.
func TestAtEveryZone(t *testing.T) {
	zones := systemZones(t)
	if len(zones) < 300 {
		t.Fatalf("found %d zones under %s; is tzdata installed?", len(zones), zoneinfoDir)
	}
	for _, name := range zones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		failures := 0
		for y := 1970; y <= 2040 && failures < 3; y++ {
			for m := time.January; m <= time.December; m++ {
				if msg := checkMonth(y, m, loc); msg != "" {
					t.Errorf("%s %04d-%02d: %s", name, y, m, msg)
					failures++
				}
			}
		}
	}
	t.Logf("%d zones × %d months", len(zones), 71*12)
}

func checkMonth(y int, m time.Month, loc *time.Location) string {
	now := time.Date(y, m, 15, 12, 0, 0, 0, time.UTC) // the 15th in every zone (offsets are within ±14h)
	p := At(now, loc)
	if want := fmt.Sprintf("%04d%02d", y, m); p.ID != want {
		return fmt.Sprintf("ID %s, want %s", p.ID, want)
	}
	if now.Before(p.Start) || !now.Before(p.End) {
		return fmt.Sprintf("[%v, %v) does not hold %v", p.Start, p.End, now)
	}
	if sy, sm, sd := p.Start.In(loc).Date(); sy != y || sm != m || sd != 1 {
		return fmt.Sprintf("start %v is not on the 1st", p.Start.In(loc))
	}
	if _, _, d := p.Start.Add(-time.Nanosecond).In(loc).Date(); d == 1 {
		return fmt.Sprintf("start %v is not the first instant of the 1st", p.Start.In(loc))
	}
	next := At(p.End, loc)
	if !next.Start.Equal(p.End) || next.ID == p.ID {
		return fmt.Sprintf("end %v is not the next period's start (%s from %v)", p.End, next.ID, next.Start)
	}
	if last := At(p.End.Add(-time.Nanosecond), loc); last.ID != p.ID {
		return fmt.Sprintf("the last instant before the end is in %s", last.ID)
	}
	if prev := p.Previous(); !prev.End.Equal(p.Start) {
		return fmt.Sprintf("previous period %s ends %v, not at the start", prev.ID, prev.End)
	}
	return ""
}

const zoneinfoDir = "/usr/share/zoneinfo"

// systemZones lists the zone names of the system's tzdata: every TZif file
// outside the posix/ and right/ copies.
func systemZones(t *testing.T) []string {
	t.Helper()
	var zones []string
	err := filepath.WalkDir(zoneinfoDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(zoneinfoDir, path)
		if d.IsDir() {
			if rel == "posix" || rel == "right" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		magic := make([]byte, 4)
		if _, err := io.ReadFull(f, magic); err == nil && string(magic) == "TZif" && rel != "localtime" && rel != "posixrules" {
			zones = append(zones, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", zoneinfoDir, err)
	}
	return zones
}
