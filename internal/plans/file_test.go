package plans_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/plans"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name         string
		yaml         string
		want         *testserver.CatalogView
		wantDefaults plans.Limits // nil: no defaults in the file
	}{
		{
			name: "the documented example",
			yaml: `
plans:
  - {id: 1, name: starter, limits: {messages: 5000, storage: 1073741824, users: 5, whatsappSessions: 1}}
tenants:
  - {id: 1, name: Padaria Estrela, plan: 1}
  - {id: 3}            # no active plan
defaults:
  limits: {messages: 1000, storage: 104857600, users: 2, whatsappSessions: 1}
`,
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{"1": {ID: "1", Name: "starter", Limits: plans.Limits{"messages": 5000, "storage": 1073741824, "users": 5, "whatsappSessions": 1}}},
				Tenants: map[string]string{"1": "1", "3": ""},
				Names:   map[string]string{"1": "Padaria Estrela"},
				Invalid: map[string]int{},
			},
			wantDefaults: plans.Limits{"messages": 1000, "storage": 104857600, "users": 2, "whatsappSessions": 1},
		},
		{
			name: "string ids, block style, 0 and null plan mean what SQL means",
			yaml: `
plans:
  - id: "gold"
    name: Gold ✓
    limits:
      messages: 0        # unlimited
      users: 10
      apiCalls: 99       # a further metric type
  - id: 0x10             # an integer, written in hex
    name: hex
tenants:
  - id: acme-1
    plan: gold
  - id: 7
    plan: 16
  - id: "8"
    name: "<b>Café & Co</b>"
    plan: null
`,
			want: &testserver.CatalogView{
				Plans: map[string]plans.Plan{
					"gold": {ID: "gold", Name: "Gold ✓", Limits: plans.Limits{"users": 10, "apiCalls": 99}},
					"16":   {ID: "16", Name: "hex", Limits: plans.Limits{}},
				},
				Tenants: map[string]string{"acme-1": "gold", "7": "16", "8": ""},
				Names:   map[string]string{"8": "<b>Café & Co</b>"},
				Invalid: map[string]int{},
			},
		},
		{
			name: "defaults with every limit unlimited",
			yaml: "defaults: {limits: {messages: 0}}\n",
			want: &testserver.CatalogView{
				Plans:   map[string]plans.Plan{},
				Tenants: map[string]string{},
				Names:   map[string]string{},
				Invalid: map[string]int{},
			},
			wantDefaults: plans.Limits{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := plans.ParseFile([]byte(tt.yaml), "plans.yml")
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(testserver.ViewCatalog(got), tt.want) {
				t.Errorf("catalog:\n got  %+v\n want %+v", got, tt.want)
			}
			defaults, ok := src.Defaults()
			if ok != (tt.wantDefaults != nil) || !reflect.DeepEqual(defaults, tt.wantDefaults) {
				t.Errorf("Defaults() = %v, %v; want %v, %v", defaults, ok, tt.wantDefaults, tt.wantDefaults != nil)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unclosed flow mapping", "plans:\n  - {id: 1, name: x\n", "plans.yml:3: did not find expected ',' or '}'"},
		{"tab indentation", "plans:\n\t- {id: 1}\n", "plans.yml:2: found character that cannot start any token"},
		{"unknown top-level field", "plans: []\ntenant:\n  - {id: 1}\n", "plans.yml:2: field tenant not found in type plans.fileDoc"},
		{"unknown plan field", "plans:\n  - {id: 1, name: x}\n  - {id: 2, name: y, limit: {users: 1}}\n", "plans.yml:3: field limit not found in type plans.filePlan"},
		{"unknown tenant field", "plans: [{id: 1, name: x}]\ntenants:\n  - {id: 1, plan_id: 1}\n", "plans.yml:3: field plan_id not found in type plans.fileTenant"},
		{"unknown defaults field", "defaults:\n  limit: {users: 1}\n", "plans.yml:2: field limit not found in type plans.FileDefaults"},
		{"duplicate key", "plans: []\nplans: []\n", `plans.yml:2: mapping key "plans" already defined at line 1`},
		{"duplicate plan id", "plans:\n  - {id: 1, name: a}\n  - {id: 2, name: b}\n  - {id: \"1\", name: c}\n", "plans.yml:4: duplicate plan id 1 (first defined on line 2)"},
		{"plan without id", "plans:\n  - {id: 1, name: a}\n  - {name: b}\n", "plans.yml:3: plan has no id"},
		{"plan without name", "plans:\n  - {id: 1}\n", "plans.yml:2: plan 1 has no name"},
		{"plan id with glob character", "plans:\n  - {id: 'a*', name: a}\n", `plans.yml:2: invalid plan id "a*": plan id contains a glob character`},
		{"float id", "plans:\n  - {id: 1.5, name: a}\n", "plans.yml:2: an id must be an integer or a string, not !!float"},
		{"list as id", "tenants:\n  - id: [1, 2]\n", "plans.yml:2: an id must be an integer or a string, not !!seq"},
		{"tenant name with a control character", "tenants:\n  - {id: 1, name: \"a\\u0007b\"}\n", `plans.yml:2: tenant 1: tenant name contains the non-printable character U+0007`},
		{"tenant name too long", "tenants:\n  - {id: 1, name: " + strings.Repeat("x", 257) + "}\n", "plans.yml:2: tenant 1: tenant name is longer than 256 bytes"},
		{"tenant name not a string", "tenants:\n  - {id: 1, name: [a]}\n", "plans.yml:2: cannot construct !!seq into string"},
		{"tenant on unknown plan", "plans:\n  - {id: 1, name: a}\ntenants:\n  - {id: 1, plan: 1}\n  - {id: 2,\n     plan: 9}\n", "plans.yml:6: tenant 2 is on plan 9, which the file does not define"},
		{"tenant listed twice", "tenants:\n  - {id: 1}\n  - {id: 2}\n  - {id: 1}\n", "plans.yml:4: tenant 1 listed twice (first on line 2)"},
		{"tenant without id", "tenants:\n  - {plan: 1}\n", "plans.yml:2: tenant has no id"},
		{"invalid tenant id", "tenants:\n  - {id: 1}\n  - {id: \"t[1]\"}\n", `plans.yml:3: invalid tenant id "t[1]": tenant id contains a glob character`},
		{"negative limit", "plans:\n  - id: 1\n    name: a\n    limits:\n      users: 5\n      messages: -1\n", `plans.yml:6: limit "messages": -1 is negative (use 0 or leave it out for unlimited)`},
		{"negative default", "defaults:\n  limits:\n    storage: -100\n", `plans.yml:3: limit "storage": -100 is negative (use 0 or leave it out for unlimited)`},
		{"non-integer limit", "plans:\n  - {id: 1, name: a, limits: {users: 2.5}}\n", "plans.yml:2: cannot construct !!float `2.5` into int64"},
		{"text limit", "plans:\n  - {id: 1, name: a, limits: {users: many}}\n", "plans.yml:2: cannot construct !!str `many` into int64"},
		{"plans not a list", "plans: {id: 1}\n", "plans.yml:1: cannot construct !!map into []plans.filePlan"},
		{"two documents", "plans: []\n---\ntenants: []\n", "plans.yml:2: only one YAML document is allowed"},
		{"empty file", "# nothing here\n", "plans.yml: no plans, tenants or defaults"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plans.ParseFile([]byte(tt.yaml), "plans.yml")
			if err == nil {
				t.Fatal("ParseFile succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got  %s\n want %s", err, tt.want)
			}
		})
	}
}

func TestParseFileReportsEveryTypeError(t *testing.T) {
	_, err := plans.ParseFile([]byte("plans:\n  - {id: 1, name: a, limits: {users: x}}\n  - {id: 2, name: b, limits: {users: y}}\n"), "p.yml")
	want := "p.yml:2: cannot construct !!str `x` into int64\np.yml:3: cannot construct !!str `y` into int64"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got  %v\n want %s", err, want)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(path, []byte("tenants:\n  - {id: 1, plan: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := plans.LoadFile(path)
	if want := path + ":2: tenant 1 is on plan 2, which the file does not define"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}

	if err := os.WriteFile(path, append([]byte("tenants: []\n"), bytes.Repeat([]byte("#"), 16<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := plans.LoadFile(path); err == nil || !strings.Contains(err.Error(), path+": file too large (limit 16 MiB)") {
		t.Errorf("a file over 16 MiB: error %v", err)
	}

	_, err = plans.LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "plans file: ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v", err)
	}
}

// TestFileLoadReturnsCopies: a caller that changes a catalog must not
// change what the next Load returns.
func TestFileLoadReturnsCopies(t *testing.T) {
	src, err := plans.ParseFile([]byte("plans: [{id: 1, name: a, limits: {users: 1}}]\ntenants: [{id: 1, plan: 1}]\ndefaults: {limits: {users: 3}}\n"), "p.yml")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := src.Load(context.Background())
	first.Plans["1"].Limits["users"] = 100
	d, _ := src.Defaults()
	d["users"] = 100

	second, _ := src.Load(context.Background())
	if got := second.Plans["1"].Limits["users"]; got != 1 {
		t.Errorf("plan limit after a caller changed it: %d, want 1", got)
	}
	if got, _ := second.Tenant("1"); got.Plan != "1" {
		t.Error("a tenant's plan changed by a caller shows up in the next Load")
	}
	if d2, _ := src.Defaults(); d2["users"] != 3 {
		t.Errorf("defaults after a caller changed them: %v", d2)
	}
}
