package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
		path        string
		apiDisabled bool
		ok          bool
	}{
		{"/metrics", false, true},
		{"/", false, true},
		{"metrics", false, false},
		{"/-/ready", false, false},
		{"/api/metrics", false, false},
		{"/api/metrics", true, true},
		{"/me trics", false, false},
	}
	for _, tc := range cases {
		if err := CheckTelemetryPath(tc.path, tc.apiDisabled); (err == nil) != tc.ok {
			t.Errorf("CheckTelemetryPath(%q, %v) = %v, want ok %v", tc.path, tc.apiDisabled, err, tc.ok)
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
