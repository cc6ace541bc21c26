package config_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/billing-exporter/billing_exporter/config"
	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/usage"
)

func TestParse(t *testing.T) {
	defaultTypes := config.Default().MetricTypes
	tests := []struct {
		name string
		yaml string
		want *config.Config
	}{
		{
			name: "empty file means defaults",
			yaml: "# nothing set\n",
			want: config.Default(),
		},
		{
			name: "the documented example",
			yaml: `
plans_query: |          # optional, replaces the default query
  SELECT id AS tenant_id, plan_id, plan_name FROM v_tenants
defaults:
  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
metric_types:           # optional; default below
  - {name: messages, monthly_reset: true}   # accumulates over the period and resets: projections apply
  - {name: storage}
  - {name: users}
  - {name: whatsappSessions}
thresholds: [50, 80, 90, 100]   # optional; percentages, > 0, sorted & deduplicated
`,
			want: &config.Config{
				PlansQuery:  "SELECT id AS tenant_id, plan_id, plan_name FROM v_tenants\n",
				Defaults:    plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1},
				MetricTypes: defaultTypes,
				Thresholds:  []float64{50, 80, 90, 100},
			},
		},
		{
			name: "thresholds sorted and deduplicated",
			yaml: "thresholds: [100, 75.5, 50, 100, 120]\n",
			want: &config.Config{MetricTypes: defaultTypes, Thresholds: []float64{50, 75.5, 100, 120}},
		},
		{
			name: "extra metric type, zero default is unlimited",
			yaml: "metric_types:\n  - {name: messages, monthly_reset: true}\n  - {name: apiCalls, monthly_reset: true}\ndefaults:\n  limits: {messages: 0, apiCalls: 10}\n",
			want: &config.Config{
				Defaults:    plans.Limits{"apiCalls": 10},
				MetricTypes: []usage.MetricType{{Name: "messages", MonthlyReset: true}, {Name: "apiCalls", MonthlyReset: true}},
				Thresholds:  []float64{50, 80, 90, 100},
			},
		},
		{
			name: "defaults with no limits: present, all unlimited",
			yaml: "defaults: {}\n",
			want: &config.Config{Defaults: plans.Limits{}, MetricTypes: defaultTypes, Thresholds: []float64{50, 80, 90, 100}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Parse([]byte(tt.yaml), "config.yml")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("config:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"invalid YAML", "thresholds: [50, 80\nmetric_types: []\n", "config.yml:2: did not find expected ',' or ']'"},
		{"unknown field", "plans_query: SELECT 1\nthreshold: [50]\n", "config.yml:2: field threshold not found in type config.rawConfig"},
		{"unknown metric type field", "metric_types:\n  - {name: messages}\n  - {name: users, reset: true}\n", "config.yml:3: field reset not found in type config.rawMetricType"},
		{"unknown defaults field", "defaults:\n  messages: 5\n", "config.yml:2: field messages not found in type plans.FileDefaults"},
		{"empty plans query", "plans_query: \"  \"\n", "config.yml:1: plans_query is empty; leave it out for the default query"},
		{"negative default", "defaults:\n  limits:\n    users: 2\n    messages: -5\n", `config.yml:4: limit "messages": -5 is negative (use 0 or leave it out for unlimited)`},
		{"non-integer default", "defaults:\n  limits: {users: 1.5}\n", "config.yml:2: cannot construct !!float `1.5` into int64"},
		{"empty metric type name", "metric_types:\n  - {name: messages}\n  - {monthly_reset: true}\n", `config.yml:3: metric type "": field name is empty`},
		{"duplicate metric type", "metric_types:\n  - {name: users}\n  - {name: storage}\n  - {name: users}\n", "config.yml:4: metric type users listed twice (first on line 2)"},
		{"empty metric types", "metric_types: []\n", "config.yml:1: metric_types is empty; leave it out for the default list"},
		{"zero threshold", "thresholds:\n  - 50\n  - 0\n", "config.yml:3: threshold 0: must be a positive percentage"},
		{"negative threshold", "thresholds: [50, -10]\n", "config.yml:1: threshold -10: must be a positive percentage"},
		{"infinite threshold", "thresholds:\n  - .inf\n", "config.yml:2: threshold +Inf: must be a positive percentage"},
		{"NaN threshold", "thresholds:\n  - 80\n  - .nan\n", "config.yml:3: threshold NaN: must be a positive percentage"},
		{"text threshold", "thresholds: [high]\n", "config.yml:1: cannot construct !!str `high` into float64"},
		{"empty thresholds", "thresholds: []\n", "config.yml:1: thresholds is empty; leave it out for the defaults"},
		{"monthly_reset not a bool", "metric_types:\n  - {name: messages, monthly_reset: yes please}\n", "config.yml:2: cannot construct !!str `yes please` into bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), "config.yml")
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got  %s\n want %s", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "billing.yml")
	if err := os.WriteFile(path, []byte("thresholds: [90]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Thresholds, []float64{90}) {
		t.Errorf("thresholds %v", c.Thresholds)
	}

	if err := os.WriteFile(path, []byte("thresholds: [90]\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || err.Error() != path+":2: field bogus not found in type config.rawConfig" {
		t.Errorf("error %v, want it to start with the path and line", err)
	}

	if err := os.WriteFile(path, append([]byte("thresholds: [90]\n"), bytes.Repeat([]byte("#"), 1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), path+": file too large (limit 1 MiB)") {
		t.Errorf("a file over 1 MiB: error %v", err)
	}

	_, err = config.Load(filepath.Join(dir, "missing.yml"))
	if err == nil || !strings.HasPrefix(err.Error(), "config file: ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v", err)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	c := config.Default()
	c.MetricTypes[0].Name = "changed"
	c.Thresholds[0] = 1
	d := config.Default()
	if d.MetricTypes[0].Name != "messages" || d.Thresholds[0] != 50 {
		t.Errorf("Default() shares state between calls: %+v", d)
	}
	if got, want := d.MetricTypeNames(), []string{"messages", "storage", "users", "whatsappSessions"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MetricTypeNames() = %v, want %v", got, want)
	}
	if d.Defaults != nil || d.PlansQuery != "" {
		t.Errorf("Default() sets defaults or a query: %+v", d)
	}
}
