package main

import (
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/period"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// artifactsEnv names the directory where the pages tests keep their
// screenshots; unset, a temporary directory.
const artifactsEnv = "BILLING_EXPORTER_TEST_ARTIFACTS"

const pagesSQL = `
INSERT INTO plans VALUES (1, 'pro', 5000, 10737418240, 25, 5);
INSERT INTO tenants VALUES
  (42, 'Padaria Estrela', 1), (7, 'Sete Mares', 1), (8, 'Oito & Filhos', 1), (9, 'Nove', 1),
  (10, '<script>alert("name")</script>', 1);
`

// startPagesExporter runs the acceptance scenario: tenant 42 ("Padaria
// Estrela") at 92 % of its messages with 3 GiB stored, 7 at 82 %, 8 over
// its limit, 9 at 2 %, and 10 with markup for a name at 90 %.
func startPagesExporter(t *testing.T) *exporter {
	t.Helper()
	redis := testserver.StartRedis(t)
	cur := period.At(time.Now(), time.UTC)
	redis.HSet("usage:42:"+cur.ID, "messages", 4600, "storage", 3<<30, "users", 3, "whatsappSessions", 1)
	redis.HSet("usage:7:"+cur.ID, "messages", 4100)
	redis.HSet("usage:8:"+cur.ID, "messages", 6000)
	redis.HSet("usage:9:"+cur.ID, "messages", 100)
	redis.HSet("usage:10:"+cur.ID, "messages", 4500)
	pg := testserver.StartPostgres(t)
	testserver.LoadSchema(t, pg, "examples/schema.sql")
	pg.Exec(pagesSQL)
	return startExporter(t, []string{"BILLING_EXPORTER_POSTGRES_DSN=" + pg.DSN()},
		"--redis.addr="+redis.Addr(), "--web.grafana-url=https://grafana.example.com")
}

type pageResponse struct {
	status int
	header http.Header
	body   string
}

func fetchPage(t *testing.T, url string, header http.Header) pageResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return pageResponse{resp.StatusCode, resp.Header, string(b)}
}

var rowRE = regexp.MustCompile(`data-tenant-id="([^"]*)"`)

// listed returns the tenant ids of a /tenants page, in order.
func listed(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestPagesAcceptance: the pages answer "who is about to hit a limit?" and
// "how much has tenant 42 used?" from a real exporter on Redis and PostgreSQL.
func TestPagesAcceptance(t *testing.T) {
	e := startPagesExporter(t)
	cases := []struct {
		name, path  string
		accept      string
		status      int
		contentType string
		check       func(t *testing.T, body string)
	}{
		{"the list: most pressed first, tenant 9 left out", "/tenants", "", 200, "text/html", func(t *testing.T, body string) {
			if got, want := listed(body), []string{"8", "42", "10", "7"}; !slices.Equal(got, want) {
				t.Errorf("listed %v, want %v", got, want)
			}
			for _, s := range []string{"Padaria Estrela", "Oito &amp; Filhos", `href="/tenants?format=csv"`, "band-reached", "band-near"} {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in the list", s)
				}
			}
		}},
		{"the list filtered by band", "/tenants?band=reached", "", 200, "text/html", func(t *testing.T, body string) {
			if got := listed(body); !slices.Equal(got, []string{"8"}) {
				t.Errorf("listed %v, want [8]", got)
			}
		}},
		{"the list searched by name", "/tenants?q=estrela", "", 200, "text/html", func(t *testing.T, body string) {
			if got := listed(body); !slices.Equal(got, []string{"42"}) {
				t.Errorf("listed %v, want [42]", got)
			}
		}},
		{"tenant 42's month", "/tenants/42", "", 200, "text/html", func(t *testing.T, body string) {
			for _, s := range []string{"Padaria Estrela", "92%", "3 GiB", "4,600", "5,000", "10 GiB", "pro (plan 1)",
				"https://grafana.example.com/d/billing-tenant/billing-per-tenant?var-tenant_id=42", "Usage resets on"} {
				if !strings.Contains(body, s) {
					t.Errorf("no %q on the page", s)
				}
			}
		}},
		{"the CSV", "/tenants?format=csv", "", 200, "text/csv", func(t *testing.T, body string) {
			rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 5 || rows[0][0] != "tenant_id" || rows[0][1] != "name" {
				t.Fatalf("CSV %q", rows)
			}
			if i := slices.IndexFunc(rows, func(r []string) bool { return r[0] == "42" }); i < 0 || rows[i][1] != "Padaria Estrela" ||
				rows[i][4] != "near" || rows[i][8] != "92.00" {
				t.Errorf("tenant 42 in the CSV: %q", rows)
			}
		}},
		{"the CSV of one limit type", "/tenants?format=csv&limit_type=messages", "", 200, "text/csv", func(t *testing.T, body string) {
			rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 5 || rows[2][0] != "42" || rows[2][10] != "" {
				t.Errorf("messages only, no other limits: %q", rows)
			}
		}},
		{"nobody pressed for storage", "/tenants?limit_type=storage", "", 200, "text/html", func(t *testing.T, body string) {
			if got := listed(body); len(got) != 0 {
				t.Errorf("listed %v", got)
			}
		}},
		{"the CSV by Accept", "/tenants", "text/csv", 200, "text/csv", func(t *testing.T, body string) {
			if !strings.HasPrefix(body, "tenant_id,name,") || !strings.Contains(body, "\n42,Padaria Estrela,") {
				t.Errorf("CSV:\n%s", body)
			}
		}},
		{"the landing page links the list", "/", "", 200, "text/html", func(t *testing.T, body string) {
			if !strings.Contains(body, `href="/tenants"`) {
				t.Error("the landing page does not link /tenants")
			}
		}},
		{"a name with markup is text", "/tenants/10", "", 200, "text/html", func(t *testing.T, body string) {
			if strings.Contains(body, `<script>alert("name")`) || !strings.Contains(body, "&lt;script&gt;alert(&#34;name&#34;)") {
				t.Error("the name's markup is not escaped")
			}
		}},
		{"markup in an id is never reflected", "/tenants/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", 404, "text/html", func(t *testing.T, body string) {
			if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)") {
				t.Errorf("the id is reflected as markup:\n%s", body)
			}
		}},
		{"markup in a search is never reflected", "/tenants?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E", "", 200, "text/html", func(t *testing.T, body string) {
			if strings.Contains(body, "<script>alert(1)") {
				t.Error("the search is reflected as markup")
			}
		}},
		{"an unknown tenant", "/tenants/404", "", 404, "text/html", nil},
		{"a hostile parameter", "/tenants?band=over", "", 400, "text/html", nil},
		{"an unknown parameter", "/tenants?sort=name", "", 400, "text/html", nil},
		{"a malformed id", "/tenants/a*b", "", 400, "text/html", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var h http.Header
			if tc.accept != "" {
				h = http.Header{"Accept": {tc.accept}}
			}
			r := fetchPage(t, e.URL+tc.path, h)
			if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), tc.contentType) {
				t.Fatalf("status %d, Content-Type %q; want %d, %s\n%s", r.status, r.header.Get("Content-Type"), tc.status, tc.contentType, r.body)
			}
			if tc.check != nil {
				tc.check(t, r.body)
			}
		})
	}
}

// TestPagesDisabled: --web.disable-pages takes the pages and their link away.
func TestPagesDisabled(t *testing.T) {
	redis := testserver.StartRedis(t)
	e := startExporter(t, nil, "--redis.addr="+redis.Addr(), "--web.disable-pages")
	if r := fetchPage(t, e.URL+"/tenants", nil); strings.Contains(r.body, "data-tenant-id") || strings.Contains(r.body, "Download CSV") {
		t.Errorf("/tenants served with --web.disable-pages: %d", r.status)
	}
	if body := get(t, e.URL+"/"); strings.Contains(body, `href="/tenants"`) {
		t.Error("the landing page links /tenants with --web.disable-pages")
	}
}

// TestPagesInChromium renders both pages in headless Chromium: the DOM it
// builds carries the figures, and a screenshot of each is kept.
func TestPagesInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install the Debian package chromium (scripts/install-test-deps.sh does)")
	}
	e := startPagesExporter(t)
	artifacts := os.Getenv(artifactsEnv)
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"tenants", "/tenants", []string{`data-tenant-id="42"`, `data-tenant-id="7"`, `data-tenant-id="8"`, "Padaria Estrela", "Download CSV"}},
		{"tenant-42", "/tenants/42", []string{"Padaria Estrela", "92%", "3 GiB", "4,600"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dom := runChromium(t, chromium, "--dump-dom", e.URL+tc.path)
			for _, s := range tc.want {
				if !strings.Contains(dom, s) {
					t.Errorf("the rendered DOM has no %q", s)
				}
			}
			if strings.Contains(dom, `data-tenant-id="9"`) {
				t.Error("tenant 9 rendered in the list")
			}
			shot := filepath.Join(artifacts, "pages-"+tc.name+".png")
			runChromium(t, chromium, "--screenshot="+shot, "--window-size=1280,1400", e.URL+tc.path)
			if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
				t.Errorf("no screenshot at %s: %v", shot, err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

// runChromium runs headless Chromium once, with a fresh profile, and
// returns its standard output.
func runChromium(t *testing.T, chromium string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, chromium, argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}
