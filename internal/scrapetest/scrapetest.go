// Package scrapetest reads a Prometheus text exposition in tests: fetch a
// scrape, find a sample by its labels, run promtool over it.
package scrapetest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Result is one parsed scrape.
type Result struct {
	Status   int
	Body     []byte
	Families map[string]*dto.MetricFamily
}

// Get scrapes url with the given headers and parses the text exposition.
func Get(t testing.TB, client *http.Client, url string, headers map[string]string) *Result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read scrape: %v", err)
	}
	r := &Result{Status: resp.StatusCode, Body: body}
	if resp.StatusCode == http.StatusOK {
		r.Families = Parse(t, body)
	}
	return r
}

// Parse parses a text exposition.
func Parse(t testing.TB, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams
}

// Value returns the value of the sample of family name whose labels include
// all of labels (name=value pairs), and whether exactly one matched.
func (r *Result) Value(name string, labels ...string) (float64, bool) {
	ms := r.Samples(name, labels...)
	if len(ms) != 1 {
		return 0, false
	}
	return sampleValue(ms[0]), true
}

// Samples returns the samples of family name whose labels include labels.
func (r *Result) Samples(name string, labels ...string) []*dto.Metric {
	fam, ok := r.Families[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.Metric {
		if hasLabels(m, labels) {
			out = append(out, m)
		}
	}
	return out
}

// LabelValues returns the sorted distinct values of label in family name.
func (r *Result) LabelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, m := range r.Samples(name) {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				seen[lp.GetValue()] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// MustValue is Value that fails the test when the sample is missing.
func (r *Result) MustValue(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := r.Value(name, labels...)
	if !ok {
		t.Fatalf("no single sample %s%v in scrape:\n%s", name, labels, r.Body)
	}
	return v
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// PromtoolCheck runs `promtool check metrics` over an exposition and fails
// the test on any finding.
func PromtoolCheck(t testing.TB, body []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install the Debian package prometheus (make test does)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Lines returns the exposition lines that start with prefix, sorted (the
// order of series within a family is not part of the format), for messages
// and comparisons.
func (r *Result) Lines(prefix string) string {
	var lines []string
	for _, l := range strings.Split(string(r.Body), "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintln(&b, l)
	}
	return b.String()
}
