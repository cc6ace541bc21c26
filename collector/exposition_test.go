package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/billing-exporter/billing_exporter/internal/billing"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/scrapetest"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

// referenceCollector emits the per-tenant families through client_golang.
type referenceCollector struct{ tenants []billing.TenantStatus }

func familyDesc(f *family) *prometheus.Desc { return prometheus.NewDesc(f.name, f.help, f.labels, nil) }

func (c referenceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range tenantFamilies {
		ch <- familyDesc(f)
	}
}

func (c referenceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range tenantFamilies {
		desc := familyDesc(f)
		var lv labelValues
		for i := range c.tenants {
			t := &c.tenants[i]
			lv[0] = t.ID
			f.tenant(t, &lv, func(value float64, lv *labelValues) {
				ch <- gauge(desc, value, lv[:len(f.labels)]...)
			})
		}
	}
}

func oddTenants() []billing.TenantStatus {
	limits := plans.Limits{"messages": 5000, "storage": 1073741824, "users": 5, "whatsappSessions": 1}
	tenants := []billing.TenantStatus{
		{ID: "1", Usage: usage.CountersOf(map[string]int64{"messages": 4250, "storage": 1048576, "users": 3, "whatsappSessions": 1}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")},
		{ID: `quo"te`, Usage: usage.CountersOf(map[string]int64{"messages": 1, "apiCalls": math.MaxInt64}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "2", PlanName: `O'Brien "pro" \ ✓`, Limits: plans.Limits{"messages": 3}}, "")},
		{ID: "ação ✓", Usage: usage.CountersOf(map[string]int64{"messages": 0}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: billing.NoPlanID, UsingDefaults: true, Limits: plans.Limits{"messages": 1000}}, "")},
		{ID: "plans-only", Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")},
		{ID: "limits-unknown", Usage: usage.CountersOf(map[string]int64{"messages": 7}), Terms: billing.NewTerms(billing.Terms{}, "")},
		{ID: "no-fields", Usage: usage.CountersOf(map[string]int64{}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")},
		{ID: "skipped-field", Usage: unreadable(usage.CountersOf(map[string]int64{"users": 4}), "messages"), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")},
		{ID: "wrong-type", Usage: usage.UnreadableHash(usage.ReasonWrongType), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")},
		{ID: "unreadable-limit", Usage: usage.CountersOf(map[string]int64{"messages": 10, "storage": 5}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "3", PlanName: "broken", Limits: plans.Limits{"messages": 100}, UnreadableLimits: map[string]string{"storage": "negative_limit"}}, "")},
	}
	return tenants
}

// unreadable marks fields of c as skipped invalid values.
func unreadable(c usage.Counters, fields ...string) usage.Counters {
	m := c.Map()
	for _, f := range fields {
		m[f] = usage.UnreadableValue(usage.ReasonInvalidValue)
	}
	return usage.CountersOf(m)
}

// canonical renders families as sorted "name{labels} value" lines plus
// their HELP and TYPE, for comparing two expositions.
func canonical(t *testing.T, fams map[string]*dto.MetricFamily) []string {
	t.Helper()
	var lines []string
	for name, mf := range fams {
		lines = append(lines, fmt.Sprintf("%s HELP %q TYPE %v", name, mf.GetHelp(), mf.GetType()))
		for _, m := range mf.Metric {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			slices.Sort(ls)
			lines = append(lines, fmt.Sprintf("%s{%s} %v", name, strings.Join(ls, ","), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(lines)
	return lines
}

func TestFastExpositionMatchesClientGolang(t *testing.T) {
	tenants := oddTenants()

	reg := prometheus.NewRegistry()
	reg.MustRegister(referenceCollector{tenants})
	var want bytes.Buffer
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&want, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}

	got := renderAll(t, tenants, false)

	wantLines, gotLines := canonical(t, scrapetest.Parse(t, want.Bytes())), canonical(t, scrapetest.Parse(t, got.Bytes()))
	if !slices.Equal(wantLines, gotLines) {
		t.Errorf("fast exposition differs from client_golang's\nfast:\n%s\nclient_golang:\n%s", strings.Join(gotLines, "\n"), strings.Join(wantLines, "\n"))
	}
	if len(gotLines) < 30 {
		t.Errorf("only %d lines: the test data does not exercise the writer", len(gotLines))
	}
	scrapetest.PromtoolCheck(t, got.Bytes())
	// Nothing derived from what could not be read: no value, no
	// percentage; the limit stays where only the usage is unknown.
	parsed := scrapetest.Parse(t, got.Bytes())
	r := &scrapetest.Result{Families: parsed, Body: got.Bytes()}
	for _, c := range []struct {
		name   string
		labels []string
		want   bool
	}{
		{"billing_usage", []string{"tenant_id", "skipped-field", "metric_type", "messages"}, false},
		{"billing_usage_percentage", []string{"tenant_id", "skipped-field", "limit_type", "messages"}, false},
		{"billing_usage_limit", []string{"tenant_id", "skipped-field", "limit_type", "messages"}, true},
		{"billing_usage_percentage", []string{"tenant_id", "skipped-field", "limit_type", "users"}, true},
		{"billing_usage", []string{"tenant_id", "wrong-type"}, false},
		{"billing_usage_percentage", []string{"tenant_id", "wrong-type"}, false},
		{"billing_usage_limit", []string{"tenant_id", "wrong-type", "limit_type", "users"}, true},
		{"billing_usage_limit", []string{"tenant_id", "unreadable-limit", "limit_type", "storage"}, false},
		{"billing_usage_percentage", []string{"tenant_id", "unreadable-limit", "limit_type", "storage"}, false},
		{"billing_usage", []string{"tenant_id", "unreadable-limit", "metric_type", "storage"}, true},
		{"billing_usage_percentage", []string{"tenant_id", "unreadable-limit", "limit_type", "messages"}, true},
	} {
		if got := len(r.Samples(c.name, c.labels...)) > 0; got != c.want {
			t.Errorf("%s%v present %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Each family's samples stand together under one HELP and TYPE.
	if n := strings.Count(got.String(), "# TYPE billing_usage gauge"); n != 1 {
		t.Errorf("billing_usage has %d TYPE lines", n)
	}
}

func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 85, 0.1, 1e-9, 1048576, 1 << 53, 9.223372036854776e18, 100.0 / 3, -7, math.Inf(1), math.Inf(-1), math.NaN()} {
		// Whatever the spelling, the text parser must read back the value.
		line := "x " + string(appendFloat(nil, f)) + "\n"
		fams := scrapetest.Parse(t, []byte(line))
		got := fams["x"].GetMetric()[0].GetUntyped().GetValue()
		if got != f && !(math.IsNaN(f) && math.IsNaN(got)) {
			t.Errorf("appendFloat(%v) wrote %q, which reads as %v", f, line, got)
		}
	}
}

func TestHandlerGzipAndTenantControls(t *testing.T) {
	f := newFixture(t, nil)
	for i := range 5 {
		f.redis.HSet(fmt.Sprintf("usage:%d:202611", i), "messages", 100*(i+1))
	}
	// Defaults make tenant 4 (500 of 500) the most pressed, then 3, ...
	svcDefaults := plans.Limits{"messages": 500}
	f = newFixtureOnRedis(t, f, []billing.Option{billing.WithConfig(billing.Config{Defaults: svcDefaults})})

	t.Run("gzip", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.server.URL, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		fams := scrapetest.Parse(t, body)
		if n := len(fams["billing_usage"].GetMetric()); n != 5 {
			t.Errorf("%d billing_usage series in the gzip body, want 5", n)
		}
		scrapetest.PromtoolCheck(t, body)
	})

	cases := []struct {
		name        string
		opts        []HandlerOption
		wantTenants []string
		omitted     float64
	}{
		{"all", nil, []string{"0", "1", "2", "3", "4"}, 0},
		{"capped", []HandlerOption{WithMaxTenants(2)}, []string{"3", "4"}, 3},
		{"off", []HandlerOption{WithTenantSeries(false)}, nil, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHandler(f.handler.service, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), tc.opts...)
			ts := httptest.NewServer(h)
			defer ts.Close()
			r := scrapetest.Get(t, nil, ts.URL, nil)
			for _, name := range []string{"billing_usage", "billing_usage_percentage", "billing_usage_limit", "billing_tenant_plan_info"} {
				if got := r.LabelValues(name, "tenant_id"); !slices.Equal(got, tc.wantTenants) {
					t.Errorf("%s tenants = %v, want %v", name, got, tc.wantTenants)
				}
			}
			if got := r.MustValue(t, "billing_exporter_tenants_omitted"); got != tc.omitted {
				t.Errorf("tenants omitted = %v, want %v", got, tc.omitted)
			}
			// The fleet families stay exact whatever is cut.
			if got := r.MustValue(t, "billing_tenants_over_threshold", "limit_type", "messages", "threshold", "80"); got != 2 {
				t.Errorf("over 80%% = %v, want 2 (tenants 3 and 4)", got)
			}
			if got := r.MustValue(t, "billing_tenants_per_plan", "plan_id", "none"); got != 5 {
				t.Errorf("tenants per plan none = %v, want 5", got)
			}
			scrapetest.PromtoolCheck(t, r.Body)
		})
	}
}

// TestFastExpositionManyTenants crosses chunk boundaries: the parallel
// chunks must come out complete and in one group per family.
func TestFastExpositionManyTenants(t *testing.T) {
	limits := plans.Limits{"messages": 5000, "users": 5}
	var tenants []billing.TenantStatus
	for i := range 3*chunkTenants + 17 {
		st := billing.TenantStatus{ID: fmt.Sprintf("t%05d", i), Usage: usage.CountersOf(map[string]int64{"messages": int64(i), "users": int64(i % 9)}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")}
		tenants = append(tenants, st)
	}
	got := renderAll(t, tenants, false)
	fams := scrapetest.Parse(t, got.Bytes())
	want := map[string]int{"billing_usage": 2 * len(tenants), "billing_usage_limit": 2 * len(tenants),
		"billing_usage_percentage": 2 * len(tenants), "billing_tenant_using_defaults": len(tenants), "billing_tenant_plan_info": len(tenants)}
	for name, n := range want {
		if got := len(fams[name].GetMetric()); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
		if c := strings.Count(got.String(), "# TYPE "+name+" gauge"); c != 1 {
			t.Errorf("%s: %d TYPE lines", name, c)
		}
	}
	// Every tenant once per family, none lost at a chunk edge.
	seen := map[string]int{}
	for _, m := range fams["billing_tenant_plan_info"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "tenant_id" {
				seen[lp.GetValue()]++
			}
		}
	}
	if len(seen) != len(tenants) {
		t.Errorf("%d distinct tenants in plan_info, want %d", len(seen), len(tenants))
	}
	scrapetest.PromtoolCheck(t, got.Bytes())
}

// renderAll runs writeTenants into a buffer, gzip compressed or not.
func renderAll(t *testing.T, tenants []billing.TenantStatus, gz bool) *bytes.Buffer {
	t.Helper()
	out := &stream{gzip: gz}
	writeTenants(out, billing.StatusesOf(tenants), nil, nil)
	return streamBody(out)
}

// streamBody closes s and returns the body it holds.
func streamBody(s *stream) *bytes.Buffer {
	s.close()
	var b bytes.Buffer
	if s.gzip {
		b.Write(gzipHeader)
	}
	for _, p := range s.parts {
		b.Write(p)
	}
	return &b
}

// TestParallelGzipIsOneGzipStream: the chunk-wise compressed body is a
// valid gzip file whose content is exactly the plain rendering.
func TestParallelGzipIsOneGzipStream(t *testing.T) {
	for _, n := range []int{0, 1, 6, chunkTenants + 1, 3*chunkTenants + 17} {
		var tenants []billing.TenantStatus
		for i := range n {
			st := billing.TenantStatus{ID: fmt.Sprintf("t%d", i), Usage: usage.CountersOf(map[string]int64{"messages": int64(i)}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: `star"ter`, Limits: plans.Limits{"messages": 100}}, "")}
			tenants = append(tenants, st)
		}
		plain := renderAll(t, tenants, false)
		compressed := renderAll(t, tenants, true)
		zr, err := gzip.NewReader(compressed)
		if err != nil {
			t.Fatalf("%d tenants: %v", n, err)
		}
		zr.Multistream(false) // one member, as a strict reader expects
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%d tenants: gunzip: %v", n, err) // also checks the CRC and size
		}
		if !bytes.Equal(got, plain.Bytes()) {
			t.Errorf("%d tenants: gunzipped body differs from the plain one (%d vs %d bytes)", n, len(got), plain.Len())
		}
		if n > 0 && compressed.Len()*4 > plain.Len() {
			t.Errorf("%d tenants: %d bytes compressed from %d: not compressing", n, compressed.Len(), plain.Len())
		}
	}
}

// BenchmarkWriteTenants renders the per-tenant families of 100k tenants on
// four limits each (1.4 million series), plain and gzip, to nowhere: the
// part of a scrape after the join.
func BenchmarkWriteTenants(b *testing.B) {
	limits := plans.Limits{"messages": 5000, "storage": 1 << 30, "users": 5, "whatsappSessions": 1}
	tenants := make([]billing.TenantStatus, 100000)
	for i := range tenants {
		tenants[i] = billing.TenantStatus{ID: fmt.Sprint(i), Usage: usage.CountersOf(map[string]int64{"messages": int64(i % 6000), "storage": int64(i) << 12, "users": int64(i % 7), "whatsappSessions": int64(i % 3)}), Terms: billing.NewTerms(billing.Terms{LimitsKnown: true, PlanID: "1", PlanName: "starter", Limits: limits}, "")}
	}
	all := billing.StatusesOf(tenants)
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			for b.Loop() {
				writeTenants(&stream{gzip: gz}, all, nil, nil)
			}
		})
	}
}
