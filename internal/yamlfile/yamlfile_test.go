package yamlfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type sample struct {
	Name  string         `yaml:"name"`
	Count int            `yaml:"count"`
	Items []sampleItem   `yaml:"items"`
	Ints  map[string]int `yaml:"ints"`
}

type sampleItem struct {
	Key string `yaml:"key"`
}

// TestDecodeErrors pins that every error names the file and the line, and
// an unknown field by its name; the rest of the message is the library's.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unclosed flow sequence", "name: x\nitems: [{key: a}\nid: 1\n", "f.yml:3: did not find expected ',' or ']'"},
		{"mapping value on line 3", "name: x\nid: 1\ncount: a: b\n", "f.yml:3: mapping values are not allowed in this context"},
		{"tab", "items:\n\t- key: a\n", "f.yml:2: found character that cannot start any token"},
		{"unknown field", "name: x\n\ncolour: red\n", "f.yml:3: field colour not found in type yamlfile.sample"},
		{"unknown nested field", "items:\n  - key: a\n  - kee: b\n", "f.yml:3: field kee not found in type yamlfile.sampleItem"},
		{"duplicate key", "name: x\nname: y\n", `f.yml:2: mapping key "name" already defined at line 1`},
		{"wrong kind", "items: 3\n", "f.yml:1: cannot construct !!int `3` into []yamlfile.sampleItem"},
		{"float for int", "count: 2.5\n", "f.yml:1: cannot construct !!float `2.5` into int"},
		{"unknown anchor", "name: x\nitems: *x\n", "f.yml:2: unknown anchor 'x' referenced"},
		{"second document", "name: x\n---\nname: y\n", "f.yml:2: only one YAML document is allowed"},
		{"two errors", "count: x\nitems: 3\n", "f.yml:1: cannot construct !!str `x` into int\nf.yml:2: cannot construct !!int `3` into []yamlfile.sampleItem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v sample
			_, err := Decode([]byte(tt.yaml), "f.yml", &v)
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got  %s\n want %s", err, tt.want)
			}
		})
	}
}

// TestDecodeRefusesAliasBombs: nine levels of nine aliases would expand
// to hundreds of millions of values.
func TestDecodeRefusesAliasBombs(t *testing.T) {
	text := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	for c := 'b'; c <= 'i'; c++ {
		p := "*" + string(c-1)
		text += string(c) + ": &" + string(c) + " [" + strings.Repeat(p+", ", 8) + p + "]\n"
	}
	var v map[string]any
	if _, err := Decode([]byte(text), "f.yml", &v); err == nil || !strings.Contains(err.Error(), "f.yml:1: document contains excessive aliasing") {
		t.Fatalf("error %v, want excessive aliasing", err)
	}
}

func TestDecode(t *testing.T) {
	const text = `# a comment
name: x
count: 1_000
items:
  - key: a
  - key: b
ints: {a: 1, b: -2, c: ~}
`
	var v sample
	doc, err := Decode([]byte(text), "f.yml", &v)
	if err != nil {
		t.Fatal(err)
	}
	if v.Count != 1000 || v.Ints["a"] != 1 || v.Ints["b"] != -2 || v.Ints["c"] != 0 {
		t.Errorf("decoded %+v", v)
	}
	lines := []struct {
		path []any
		want int
	}{
		{nil, 2},
		{[]any{"name"}, 2},
		{[]any{"items"}, 5},
		{[]any{"items", 1}, 6},
		{[]any{"items", 1, "key"}, 6},
		{[]any{"items", 5}, 5}, // missing: the nearest existing parent
		{[]any{"ints", "b"}, 7},
		{[]any{"nothing"}, 2},
	}
	for _, l := range lines {
		if got := doc.Line(l.path...); got != l.want {
			t.Errorf("Line(%v) = %d, want %d", l.path, got, l.want)
		}
	}
	if doc.Empty() {
		t.Error("Empty() on a document with content")
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, text := range []string{"", "# only a comment\n", "~\n", "---\n"} {
		v := sample{Name: "untouched"}
		doc, err := Decode([]byte(text), "f.yml", &v)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if !doc.Empty() || v.Name != "untouched" {
			t.Errorf("%q: Empty() = %v, value %+v", text, doc.Empty(), v)
		}
		if err := doc.Errorf(doc.Line("x"), "problem"); err.Error() != "f.yml: problem" {
			t.Errorf("%q: error on an empty document: %v", text, err)
		}
	}
}

func TestReadFileLimit(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		size, limit int64
		want        string
	}{
		{10, 10, ""},
		{11, 10, "file too large (limit 10 bytes)"},
		{1<<20 + 1, 1 << 20, "file too large (limit 1 MiB)"},
	} {
		path := filepath.Join(dir, "f.yml")
		if err := os.WriteFile(path, bytes.Repeat([]byte("#"), int(tt.size)), 0o600); err != nil {
			t.Fatal(err)
		}
		data, err := ReadFile(path, tt.limit)
		switch {
		case tt.want == "" && (err != nil || int64(len(data)) != tt.size):
			t.Errorf("%d bytes, limit %d: %d bytes, %v", tt.size, tt.limit, len(data), err)
		case tt.want != "" && (err == nil || err.Error() != path+": "+tt.want):
			t.Errorf("%d bytes, limit %d: error %v, want %s", tt.size, tt.limit, err, tt.want)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.yml"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
