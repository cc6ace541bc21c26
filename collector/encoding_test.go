package collector

import (
	"net/http"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	cases := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"x-gzip", true},
		{"deflate, gzip;q=1.0, *;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"gzip; q=0.00", false},
		{"gzip;Q=0", false},
		{"gzip ;q=0", false},
		{"gzip;q=0.001", true},
		{"gzip;q=1.", true},
		{"gzip;q=1.000", true},
		{"gzip;q=1.001", false},  // malformed weight: member ignored
		{"gzip;q=0.0001", false}, // more than three decimals
		{"gzip;q=abc", false},    // malformed
		{"gzip;q=-1", false},     // malformed
		{"gzip;q=0, *", false},   // gzip refused explicitly, * does not revive it
		{"*", true},              // any coding
		{"*;q=0", false},         // none but identity
		{"*;q=0.0, gzip", true},  // gzip listed
		{"identity;q=0", false},  // identity refused, gzip not offered: plain anyway
		{"identity;q=0, gzip", true},
		{"deflate, br", false},
		{"gzip;level=9", true},   // unknown parameter ignored
		{"gzip;q=0;q=1", true},   // the last weight counts
		{"gzip, gzip;q=0", true}, // the highest weight of a coding counts
		{" \tgzip\t ", true},
	}
	for _, tc := range cases {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// FuzzAcceptsGzip: never panics; never gzip unless gzip or * is named; a
// member refusing gzip with a zero weight, however written, wins over a
// bare *; and adding whitespace around members changes nothing.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0.0", "*;q=0.5", "identity;q=0, gzip;q=0.001", "x-gzip;q=1.", "gzip;q=1.0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := acceptsGzip(header)
		lower := strings.ToLower(header)
		if got && !strings.Contains(lower, "gzip") && !strings.Contains(lower, "*") {
			t.Errorf("acceptsGzip(%q) = true without gzip or *", header)
		}
		if acceptsGzip("gzip;q=0.000,"+header+",*") && !strings.Contains(lower, "gzip") {
			t.Errorf("gzip;q=0.000 then %q then * accepted gzip", header)
		}
		spaced := strings.ReplaceAll(header, ",", " , ")
		if acceptsGzip(spaced) != got && !strings.ContainsAny(header, "=") {
			t.Errorf("acceptsGzip(%q) = %v but %v with spaces around commas", header, got, !got)
		}
	})
}

// TestHandlerHonoursZeroWeights scrapes a real handler over a real Redis
// with zero weights spelled in every way RFC 9110 allows.
func TestHandlerHonoursZeroWeights(t *testing.T) {
	f := newFixture(t, nil)
	f.redis.HSet("usage:1:202611", "messages", 5)
	for _, tc := range []struct {
		header, wantEncoding string
	}{
		{"gzip", "gzip"},
		{"gzip;q=0", ""},
		{"gzip;q=0.0", ""},
		{"gzip;q=0.000", ""},
		{"gzip;q=0.000, identity", ""},
		{"*;q=0.0", ""},
		{"identity;q=0, gzip;q=0.5", "gzip"},
	} {
		req, _ := http.NewRequest(http.MethodGet, f.server.URL, nil)
		req.Header.Set("Accept-Encoding", tc.header)
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != tc.wantEncoding {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, want 200 %q", tc.header, resp.StatusCode, resp.Header.Get("Content-Encoding"), tc.wantEncoding)
		}
	}
}
