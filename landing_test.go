package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// pageLinks returns every href, src and form action of an HTML page.
func pageLinks(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("landing page is not HTML: %v", err)
	}
	var links []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "href" || a.Key == "src" || (n.Data == "form" && a.Key == "action") {
					links = append(links, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return links
}

// TestLandingPageLinksAnswer: with each web flag on and off, every link on
// the landing page points into the exporter and answers 200, and the Go
// profiles are linked and served only with --web.enable-pprof.
func TestLandingPageLinksAnswer(t *testing.T) {
	redis := testserver.StartRedis(t)
	redis.HSet("usage:1:"+period.At(time.Now(), time.UTC).ID, "messages", 5)
	cases := []struct {
		name  string
		args  []string
		pprof bool
	}{
		{"defaults", nil, false},
		{"API off", []string{"--web.disable-api"}, false},
		{"pprof on", []string{"--web.enable-pprof"}, true},
		{"pprof on, API off", []string{"--web.enable-pprof", "--web.disable-api"}, true},
		{"telemetry path moved", []string{"--web.telemetry-path=/billing/metrics"}, false},
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// A short scrape budget keeps the linked CPU profile at a second.
			args := append([]string{"--redis.addr=" + redis.Addr(), "--scrape.max-timeout=500ms"}, c.args...)
			e := startExporter(t, nil, args...)
			base, err := url.Parse(e.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			links := pageLinks(t, get(t, base.String()))
			if len(links) == 0 {
				t.Fatal("the landing page has no links")
			}
			profiles := false
			for _, link := range links {
				u, err := base.Parse(link)
				if err != nil {
					t.Errorf("link %q: %v", link, err)
					continue
				}
				if u.Scheme != base.Scheme || u.Host != base.Host {
					t.Errorf("link %q points outside the exporter", link)
					continue
				}
				profiles = profiles || strings.HasPrefix(u.Path, "/debug/pprof/")
				f := fetch(client, u.String(), nil)
				if f.err != nil || f.status != http.StatusOK {
					t.Errorf("link %q: status %d, %v: %.200s", link, f.status, f.err, f.body)
				}
			}
			if profiles != c.pprof {
				t.Errorf("profiles linked: %v, want %v (links %q)", profiles, c.pprof, links)
			}
			want := http.StatusNotFound
			if c.pprof {
				want = http.StatusOK
			}
			if f := fetch(client, e.URL+"/debug/pprof/heap", nil); f.status != want {
				t.Errorf("/debug/pprof/heap: status %d, %v; want %d", f.status, f.err, want)
			}
		})
	}
}
