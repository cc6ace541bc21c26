package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

func TestHealth(t *testing.T) {
	cases := []struct {
		method string
		code   int
		body   string
	}{
		{http.MethodGet, http.StatusOK, "OK\n"},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "method not allowed\n"},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Health(rec, httptest.NewRequest(tc.method, "/-/healthy", nil))
			if rec.Code != tc.code || rec.Body.String() != tc.body {
				t.Errorf("%d %q, want %d %q", rec.Code, rec.Body.String(), tc.code, tc.body)
			}
		})
	}
}

func TestCheckTelemetryPath(t *testing.T) {
	cases := []struct {
		path                      string
		apiDisabled, pprofEnabled bool
		ok                        bool
	}{
		{"/metrics", false, false, true},
		{"/", false, false, true},
		{"metrics", false, false, false},
		{"/-/ready", false, false, false},
		{"/api/metrics", false, false, false},
		{"/api/metrics", true, false, true},
		{"/me trics", false, false, false},
		{"/debug/pprof/", false, true, false},
		{"/debug/pprof", false, true, false},
		{"/debug/pprof/metrics", false, true, false},
		{"/debug/pprof/metrics", false, false, true},
		{"/debug/pprofile", false, true, true},
		{"/metrics", false, true, true},
	}
	for _, tc := range cases {
		if err := CheckTelemetryPath(tc.path, tc.apiDisabled, tc.pprofEnabled); (err == nil) != tc.ok {
			t.Errorf("CheckTelemetryPath(%q, api off %v, pprof on %v) = %v, want ok %v", tc.path, tc.apiDisabled, tc.pprofEnabled, err, tc.ok)
		}
	}
}

func TestCPUProfileSeconds(t *testing.T) {
	for _, tc := range []struct {
		maxTimeout time.Duration
		want       int
	}{
		{100 * time.Millisecond, 1},
		{500 * time.Millisecond, 1},
		{10 * time.Second, 20},
		{time.Hour, 30},
	} {
		got := CPUProfileSeconds(tc.maxTimeout)
		if got != tc.want {
			t.Errorf("CPUProfileSeconds(%v) = %d, want %d", tc.maxTimeout, got, tc.want)
		}
		// pprof refuses a profile at least as long as the write timeout.
		if float64(got) >= writeTimeout(tc.maxTimeout).Seconds() {
			t.Errorf("CPUProfileSeconds(%v) = %d, not under the write timeout %v", tc.maxTimeout, got, writeTimeout(tc.maxTimeout))
		}
	}
}

func TestListenPort(t *testing.T) {
	cases := []struct {
		addrs []string
		want  string
	}{
		{nil, ""},
		{[]string{":9866"}, ":9866"},
		{[]string{"127.0.0.1:9100", ":9200"}, ":9100"},
		{[]string{"localhost"}, ""},
	}
	for _, tc := range cases {
		addrs := tc.addrs
		if got := ListenPort(&web.FlagConfig{WebListenAddresses: &addrs}); got != tc.want {
			t.Errorf("ListenPort(%v) = %q, want %q", tc.addrs, got, tc.want)
		}
	}
}
