package reload

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestReloader: a failed reload sets the success gauge to 0 and leaves the
// timestamp alone; a good one sets it back to 1 and moves the timestamp.
// Only POST reloads.
func TestReloader(t *testing.T) {
	var fail error
	calls := 0
	reg := prometheus.NewRegistry()
	r := New(reg, slog.New(slog.DiscardHandler), func() error { calls++; return fail })
	start := value(t, r.timestamp)

	steps := []struct {
		method     string
		fail       error
		wantStatus int
		wantBody   string
		wantOK     float64
		wantMoved  bool // the timestamp moved
		wantCalls  int
	}{
		{http.MethodGet, nil, http.StatusMethodNotAllowed, "POST", 1, false, 0},
		{http.MethodPost, errors.New("plans.yml:3: bad"), http.StatusInternalServerError, "plans.yml:3: bad", 0, false, 1},
		{http.MethodPut, nil, http.StatusMethodNotAllowed, "POST", 0, false, 1},
		{http.MethodPost, nil, http.StatusOK, "OK", 1, true, 2},
	}
	for _, s := range steps {
		fail = s.fail
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(s.method, "/-/reload", nil))
		if rec.Code != s.wantStatus || !strings.Contains(rec.Body.String(), s.wantBody) {
			t.Errorf("%s: %d %q, want %d containing %q", s.method, rec.Code, rec.Body, s.wantStatus, s.wantBody)
		}
		if got := value(t, r.successful); got != s.wantOK {
			t.Errorf("%s: successful = %v, want %v", s.method, got, s.wantOK)
		}
		if moved := value(t, r.timestamp) != start; moved != s.wantMoved {
			t.Errorf("%s: timestamp moved %v, want %v", s.method, moved, s.wantMoved)
		}
		if calls != s.wantCalls {
			t.Errorf("%s: %d reloads run, want %d", s.method, calls, s.wantCalls)
		}
	}
}

func value(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := g.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
