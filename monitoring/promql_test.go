package monitoring

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckHistogramQuantile(t *testing.T) {
	tests := []struct {
		name    string
		expr    string
		wantErr string // substring of the error; "" means valid
	}{
		// Valid.
		{"no histogram_quantile", `billing_redis_up == 0`, ""},
		{"rate of buckets, no aggregation", `histogram_quantile(0.95, rate(x_bucket[5m]))`, ""},
		{"sum by le", `histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))`, ""},
		{"the shipped alert", `histogram_quantile(0.95, sum by (job, operation, le) (rate(billing_redis_operation_duration_seconds_bucket[5m]))) > 0.1`, ""},
		{"grouping after the argument", `histogram_quantile(0.9, sum(rate(x_bucket{job="a"}[5m])) by (le, operation))`, ""},
		{"sum without other labels", `histogram_quantile(0.9, sum without (instance, pod) (rate(x_bucket[5m])))`, ""},
		{"irate", `histogram_quantile(0.5, sum by (le) (irate(x_bucket[1m])))`, ""},
		{"increase", `histogram_quantile(0.99, sum by (le) (increase(x_bucket[1h])))`, ""},
		{"parenthesised", `histogram_quantile(0.95, (sum by (le) ((rate(x_bucket[5m])))))`, ""},
		{"label_replace keeps le", `histogram_quantile(0.95, label_replace(sum by (le, op) (rate(x_bucket[5m])), "o", "$1", "op", "(.*)"))`, ""},
		{"ratio of two bucket rates", `histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m])) + ignoring(x) sum by (le) (rate(b_bucket[5m])))`, ""},
		{"with a Grafana range", `histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))`, ""},

		// The seed's broken expression and its relatives.
		{"seed: bare histogram name", `histogram_quantile(0.95, billing_redis_operation_duration_seconds) > 0.1`, "not a rate of a _bucket series"},
		{"seed dashboard form", `histogram_quantile(0.95, billing_redis_operation_duration_seconds)`, "not a rate of a _bucket series"},
		{"bucket without rate", `histogram_quantile(0.95, x_bucket)`, "cumulative since the process started"},
		{"sum of buckets without rate", `histogram_quantile(0.95, sum by (le) (x_bucket))`, "cumulative"},
		{"rate of the histogram's _sum", `histogram_quantile(0.95, rate(x_sum[5m]))`, "not a rate of a _bucket series"},
		{"rate of the histogram's _count", `histogram_quantile(0.95, sum by (le) (rate(x_count[5m])))`, "not a rate of a _bucket series"},
		{"sum drops le", `histogram_quantile(0.95, sum(rate(x_bucket[5m])))`, "drops the le label"},
		{"sum by other labels", `histogram_quantile(0.95, sum by (operation) (rate(x_bucket[5m])))`, "drops the le label"},
		{"grouping after, without le", `histogram_quantile(0.95, sum(rate(x_bucket[5m])) by (operation))`, "drops the le label"},
		{"without le", `histogram_quantile(0.95, sum without (le) (rate(x_bucket[5m])))`, "drops the le label"},
		{"nested aggregation dropping le", `histogram_quantile(0.95, max by (le) (sum by (job) (rate(x_bucket[5m]))))`, "drops the le label"},
		{"range vector", `histogram_quantile(0.95, x_bucket[5m])`, "expected type instant vector"}, // the parser's own check
		{"delta of buckets", `histogram_quantile(0.95, delta(x_bucket[5m]))`, "not a rate of bucket series"},
		{"count over buckets", `histogram_quantile(0.95, count by (le) (rate(x_bucket[5m])))`, "does not give a histogram"},
		{"one argument", `histogram_quantile(rate(x_bucket[5m]))`, "expected 2 argument(s)"}, // the parser's own check
		{"second of two is bad", `histogram_quantile(0.5, rate(x_bucket[5m])) / histogram_quantile(0.5, x)`, "not a rate of a _bucket series"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHistogramQuantile(tt.expr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckHistogramQuantile(%q) = %v, want no error", tt.expr, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("CheckHistogramQuantile(%q) accepted it, want an error containing %q", tt.expr, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("CheckHistogramQuantile(%q) = %v, want an error containing %q", tt.expr, err, tt.wantErr)
			}
		})
	}
}

func TestParsePromQL(t *testing.T) {
	tests := []struct {
		name      string
		expr      string
		selectors []string // the selectors' names, in order
		wantErr   bool
	}{
		{"selector", `billing_usage{tenant_id="1",metric_type="messages"}`, []string{"billing_usage"}, false},
		{"name in braces", `{__name__="billing_usage", tenant_id="1"}`, []string{"billing_usage"}, false},
		{"comparison chain", `billing_usage_percentage{limit_type="messages"} > 80 < 100`, []string{"billing_usage_percentage"}, false},
		{"set operators and matching", `a * ignoring(tenant_id, metric_type) group_left() (b - c) > ignoring(x) d and on(job) (time() - c > 86400) unless e >= 100`,
			[]string{"a", "b", "c", "d", "c", "e"}, false},
		{"aggregation with parameter", `topk(10, billing_usage{metric_type="messages"})`, []string{"billing_usage"}, false},
		{"label_replace strings", `label_replace(billing_tenants_per_plan, "plan_name", "no plan", "plan_id", "none")`, []string{"billing_tenants_per_plan"}, false},
		{"absent or", `up{job="billing_exporter"} == 0 or absent(up{job="billing_exporter"})`, []string{"up", "up"}, false},
		{"subquery and offset", `max_over_time(rate(x_total[5m])[1h:1m] offset 1d)`, []string{"x_total"}, false},
		{"Grafana variables", `sum(rate(x{tenant_id="$tenant_id"}[$__rate_interval])) + increase(y[${__range}])`, []string{"x", "y"}, false},
		{"name regexp of alternatives", `label_values({__name__=~"a|b",job=~"$job"}, tenant_id)`, nil, true},
		{"selector of alternatives", `{__name__=~"a|b",job=~"$job"}`, []string{"a", "b"}, false},
		{"offset after a call", `max_over_time(rate(x_total[5m])[1h:1m]) offset 1d`, nil, true},
		{"unary and power", `-a ^ 2 + 1e3`, []string{"a"}, false},
		{"bool comparison", `a > bool 1`, []string{"a"}, false},

		{"unbalanced paren", `sum(rate(x[5m])`, nil, true},
		{"trailing garbage", `a b`, nil, true},
		{"bad matcher", `a{b}`, nil, true},
		{"unquoted label value", `a{b=c}`, nil, true},
		{"bad range", `rate(a[five])`, nil, true},
		{"range on a call", `rate(a[5m])[5m]`, nil, true},
		{"empty selector", `{}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParsePromQL(tt.expr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePromQL(%q) accepted it, want an error", tt.expr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePromQL(%q): %v", tt.expr, err)
			}
			var got []string
			for _, s := range Selectors(n) {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, tt.selectors) {
				t.Errorf("selectors of %q = %v, want %v", tt.expr, got, tt.selectors)
			}
		})
	}
}
