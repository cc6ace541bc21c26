package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// reloadWith triggers a reload by SIGHUP or POST /-/reload and waits until
// it has been done (the success timestamp moves, or the success gauge
// reads 0); it returns the HTTP answer (empty for SIGHUP).
func (e *exporter) reloadWith(trigger string) (status int, body string) {
	e.t.Helper()
	before := e.scrape().MustValue(e.t, "billing_exporter_config_last_reload_success_timestamp_seconds")
	reloadsBefore := strings.Count(e.Output(), "reload")
	switch trigger {
	case "SIGHUP":
		if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			e.t.Fatal(err)
		}
	case "http":
		resp, err := http.Post(e.URL+"/-/reload", "", nil)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, body = resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.scrape()
		if r.MustValue(e.t, "billing_exporter_config_last_reload_success_timestamp_seconds") != before ||
			(r.MustValue(e.t, "billing_exporter_config_last_reload_successful") == 0 && strings.Count(e.Output(), "reload") > reloadsBefore) {
			return status, body
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: no reload seen after 10s", trigger)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *exporter) alive() {
	e.t.Helper()
	select {
	case err := <-e.exited:
		e.exited <- err
		e.t.Fatalf("exporter exited: %v", err)
	default:
	}
}

func thresholdsOf(t *testing.T, r *scrapetest.Result) string {
	t.Helper()
	return strings.Join(r.LabelValues("billing_tenants_over_threshold", "threshold"), ",")
}

// TestReload: SIGHUP and POST /-/reload read the plans file and the config
// file again. A changed plans file gives new limits in the next scrape, a
// changed config file new thresholds; a broken file keeps the old
// configuration, says where it is broken (file:line), sets
// billing_exporter_config_last_reload_successful to 0, and the process
// serves on. Other methods than POST get 405.
func TestReload(t *testing.T) {
	redis := testserver.StartRedis(t)
	seedPlansIssueUsage(t, redis)
	for _, trigger := range []string{"SIGHUP", "http"} {
		t.Run(trigger, func(t *testing.T) {
			plansFile := writeFile(t, "plans.yml", plansYAML)
			configFile := writeFile(t, "config.yml", defaultsYAML+"thresholds: [50, 80, 90, 100]\n")
			e := startExporter(t, nil, "--redis.addr="+redis.Addr(), "--plans.file="+plansFile, "--config.file="+configFile)
			r := e.scrape()
			checkJoined(t, r)
			if got := r.MustValue(t, "billing_exporter_config_last_reload_successful"); got != 1 {
				t.Fatalf("reload successful = %v at start", got)
			}

			// A new limit.
			writeTo(t, plansFile, strings.Replace(plansYAML, "messages: 5000", "messages: 8500", 1))
			if status, body := e.reloadWith(trigger); trigger == "http" && status != http.StatusOK {
				t.Fatalf("POST /-/reload: %d %s", status, body)
			}
			r = e.scrape()
			for _, c := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"billing_usage_limit", []string{"tenant_id", "1", "limit_type", "messages"}, 8500},
				{"billing_usage_percentage", []string{"tenant_id", "1", "limit_type", "messages"}, 50},
				{"billing_exporter_config_last_reload_successful", nil, 1},
			} {
				if got := r.MustValue(t, c.name, c.labels...); got != c.want {
					t.Errorf("after the plans change: %s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}

			// New thresholds.
			writeTo(t, configFile, defaultsYAML+"thresholds: [45, 95]\n")
			e.reloadWith(trigger)
			if got := thresholdsOf(t, e.scrape()); got != "45,95" {
				t.Errorf("thresholds after the config change: %s, want 45,95", got)
			}

			// Broken files: the old configuration stays, the error names
			// the file and line, the gauge reads 0.
			for _, broken := range []struct {
				file, content, where string
			}{
				{plansFile, plansYAML + "  - {id: 9, plann: 1}\n", "plans.yml:8"},
				{configFile, defaultsYAML + "thresholds: [45, -1]\n", "config.yml:4"},
			} {
				good := readFile(t, broken.file)
				writeTo(t, broken.file, broken.content)
				status, body := e.reloadWith(trigger)
				e.alive()
				if trigger == "http" && (status != http.StatusInternalServerError || !strings.Contains(body, broken.where)) {
					t.Errorf("POST /-/reload with %s broken: %d %q; want 500 naming %s", broken.where, status, body, broken.where)
				}
				if !regexp.MustCompile(`reload failed.*` + regexp.QuoteMeta(broken.where)).MatchString(e.Output()) {
					t.Errorf("no log line naming %s:\n%s", broken.where, e.Output())
				}
				r = e.scrape()
				if got := r.MustValue(t, "billing_exporter_config_last_reload_successful"); got != 0 {
					t.Errorf("reload successful = %v with %s broken", got, broken.where)
				}
				if got := r.MustValue(t, "billing_usage_limit", "tenant_id", "1", "limit_type", "messages"); got != 8500 {
					t.Errorf("limit %v with %s broken: the old configuration was not kept", got, broken.where)
				}
				if got := thresholdsOf(t, r); got != "45,95" {
					t.Errorf("thresholds %s with %s broken: the old configuration was not kept", got, broken.where)
				}
				writeTo(t, broken.file, good)
				e.reloadWith(trigger)
				if got := e.scrape().MustValue(t, "billing_exporter_config_last_reload_successful"); got != 1 {
					t.Errorf("reload successful = %v after %s was fixed", got, broken.where)
				}
			}

			for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				req, _ := http.NewRequest(method, e.URL+"/-/reload", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
					t.Errorf("%s /-/reload: %d, Allow %q; want 405, POST", method, resp.StatusCode, resp.Header.Get("Allow"))
				}
			}
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeTo rewrites the file at path in place, as an operator's editor does.
func writeTo(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
