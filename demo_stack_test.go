package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"go.yaml.in/yaml/v3"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestDemoStack runs `make demo-stack` as a user would, for a bounded time,
// and checks through Prometheus's HTTP API that Prometheus loaded every
// rule group of alerts/ as shipped, scraped the demo exporter, and has the
// demo's tenant alerts pending (or firing); that Alertmanager is up; and
// that Ctrl-C (SIGINT to the process group, as a terminal sends it) stops
// every server the stack started and removes its directory.
func TestDemoStack(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed: the test runs `make demo-stack`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The duration bounds the stack should this test die before its
	// Ctrl-C; the test stops it long before.
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "demo-stack",
		"DEMO_STACK_DURATION=150s", "BILLING_EXPORTER="+binary)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testserver.LogBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	stdout := &testserver.LogBuffer{}
	urls := make(chan map[string]string, 1)
	go func() {
		found := map[string]string{}
		line := regexp.MustCompile(`^\s+(exporter|prometheus|alertmanager|logs)\s+(\S+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			stdout.Write([]byte(sc.Text() + "\n"))
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				found[m[1]] = m[2]
				if len(found) == 4 {
					urls <- found
				}
			}
		}
		done <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	var u map[string]string
	select {
	case u = <-urls:
	case err := <-done:
		stopped = true
		t.Fatalf("make demo-stack exited before printing its URLs (%v):\n%s\n%s", err, stdout.String(), stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("make demo-stack printed no URLs in 90 s:\n%s", stderr.String())
	}
	promURL := strings.TrimSuffix(u["prometheus"], "/alerts")
	for name, addr := range u {
		if name != "logs" && !strings.HasPrefix(addr, "http://127.0.0.1:") {
			t.Errorf("%s listens on %s, not on loopback", name, addr)
		}
	}

	client, err := api.NewClient(api.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(client)
	want := shippedRuleGroups(t)
	var last string
	ok := waitUntil(90*time.Second, func() bool {
		rules, err := prom.Rules(ctx, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		got := map[string]int{}
		for _, g := range rules.Groups {
			healthy := 0
			for _, r := range g.Rules {
				if ar, ok := r.(promv1.AlertingRule); ok && ar.Health == promv1.RuleHealthGood {
					healthy++
				}
				if rr, ok := r.(promv1.RecordingRule); ok && rr.Health == promv1.RuleHealthGood {
					healthy++
				}
			}
			got[filepath.Base(g.File)+":"+g.Name] = healthy
		}
		last = fmt.Sprint("rule groups with their healthy rules: ", got)
		return equalCounts(got, want)
	})
	if !ok {
		t.Errorf("Prometheus did not load and evaluate alerts/ as shipped (want %v): %s", want, last)
	}

	ok = waitUntil(60*time.Second, func() bool {
		targets, err := prom.Targets(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		for _, tg := range targets.Active {
			last = string(tg.Health) + " " + tg.LastError
			if string(tg.Labels["job"]) == "billing_exporter" && tg.Health == promv1.HealthGood {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Errorf("Prometheus has not scraped the demo exporter: %s", last)
	}

	// The demo's first scrapes already hold tenants at and over a limit.
	ok = waitUntil(60*time.Second, func() bool {
		alerts, err := prom.Alerts(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		names := map[string]bool{}
		for _, a := range alerts.Alerts {
			names[string(a.Labels["alertname"])] = true
		}
		last = fmt.Sprint(names)
		return names["BillingLimitReached"] && names["BillingUsageNearLimit"]
	})
	if !ok {
		t.Errorf("no BillingLimitReached and BillingUsageNearLimit alerts pending or firing: %s", last)
	}

	if resp, err := http.Get(strings.TrimSuffix(u["alertmanager"], "/") + "/-/ready"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("Alertmanager is not ready: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	// Ctrl-C stops everything.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		stopped = true
	case <-time.After(60 * time.Second):
		t.Fatalf("make demo-stack still running 60 s after Ctrl-C:\n%s", stdout.String())
	}
	for name, addr := range u {
		if name == "logs" {
			continue
		}
		host := strings.TrimPrefix(addr, "http://")
		host = host[:strings.IndexByte(host, '/')]
		if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s (%s) still listens after Ctrl-C", name, host)
		}
	}
	if _, err := os.Stat(u["logs"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stack's directory %s is left behind (%v)", u["logs"], err)
	}
	if !strings.Contains(stdout.String(), "demo-stack: stopped") {
		t.Errorf("the stack did not say it stopped:\n%s", stdout.String())
	}
}

// shippedRuleGroups counts the rules of every group in alerts/*.yml, by
// "file:group".
func shippedRuleGroups(t *testing.T) map[string]int {
	t.Helper()
	files, err := filepath.Glob("alerts/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in alerts/ (%v)", err)
	}
	out := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []any  `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			out[filepath.Base(f)+":"+g.Name] = len(g.Rules)
		}
	}
	return out
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// waitUntil polls cond every half second until it holds or d has passed.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(500 * time.Millisecond)
	}
}
