package yamlfile

import (
	"testing"
)

type sample struct {
	Name  string         `yaml:"name"`
	ID    ID             `yaml:"id"`
	Count Int            `yaml:"count"`
	Items []sampleItem   `yaml:"items"`
	Ints  map[string]Int `yaml:"ints"`
}

type sampleItem struct {
	Key string `yaml:"key"`
}

// TestDecodeErrorLines pins the line of each kind of error, including the
// syntax errors whose line the yaml library gets wrong by one.
func TestDecodeErrorLines(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unclosed flow mapping", "name: x\nitems:\n  - {key: a\n", "f.yml:3: did not find expected ',' or '}'"},
		{"unclosed flow sequence", "name: x\nitems: [{key: a}\nid: 1\n", "f.yml:2: did not find expected ',' or ']'"},
		{"bad indentation", "items:\n  - key: a\n key: b\n", "f.yml:3: did not find expected key"},
		{"bad indentation deeper", "name: x\nints:\n  a: 1\n b: 2\n", "f.yml:4: did not find expected key"},
		{"mapping value on line 1", "name: a: b\n", "f.yml:1: mapping values are not allowed in this context"},
		{"mapping value on line 3", "name: x\nid: 1\ncount: a: b\n", "f.yml:3: mapping values are not allowed in this context"},
		{"tab", "items:\n\t- key: a\n", "f.yml:2: found character that cannot start any token"},
		{"unterminated quote", "name: 'x\nid: 1\n", "f.yml:3: found unexpected end of stream"},
		{"unknown field", "name: x\n\ncolour: red\n", `f.yml:3: unknown field "colour"`},
		{"unknown nested field", "items:\n  - key: a\n  - kee: b\n", `f.yml:3: unknown field "kee"`},
		{"duplicate key", "name: x\nname: y\n", `f.yml:2: mapping key "name" already defined at line 1`},
		{"wrong kind", "items: 3\n", "f.yml:1: cannot unmarshal !!int `3` into a list"},
		{"wrong kind of document", "- a\n- b\n", "f.yml:1: cannot unmarshal !!seq into a mapping"},
		{"float for Int", "count: 2.5\n", `f.yml:1: expected an integer, found float "2.5"`},
		{"huge Int", "count: 99999999999999999999\n", `f.yml:1: expected an integer, found float "99999999999999999999"`},
		{"bool for ID", "id: true\n", `f.yml:1: an id must be an integer or a string, not bool "true"`},
		{"mapping for ID", "id: {a: 1}\n", "f.yml:1: an id must be an integer or a string, not a mapping"},
		{"second document", "name: x\n---\nname: y\n", "f.yml:2: only one YAML document is allowed"},
		{"two errors", "count: x\nid: [1]\n", "f.yml:1: expected an integer, found str \"x\"\nf.yml:2: an id must be an integer or a string, not a list"},
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

func TestDecode(t *testing.T) {
	const text = `# a comment
name: x
id: 0x1F
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
	if v.ID != "31" || v.Count != 1000 || v.Ints["a"] != 1 || v.Ints["b"] != -2 || v.Ints["c"] != 0 {
		t.Errorf("decoded %+v", v)
	}
	lines := []struct {
		path []any
		want int
	}{
		{nil, 2},
		{[]any{"name"}, 2},
		{[]any{"items"}, 6},
		{[]any{"items", 1}, 7},
		{[]any{"items", 1, "key"}, 7},
		{[]any{"items", 5}, 6}, // missing: the nearest existing parent
		{[]any{"ints", "b"}, 8},
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
