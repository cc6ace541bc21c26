// Package yamlfile decodes the exporter's operator-written YAML files (the
// plans file and --config.file) strictly, and words every problem the way
// compilers do, "path:line: problem", so that an operator can go straight
// to the line.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Doc is a decoded document's node tree, kept to find the line of a value
// once decoding succeeded and a later check fails.
type Doc struct {
	name string
	root *yaml.Node // the document's content; nil for an empty document
}

// Decode decodes the single YAML document in data into v. Fields that v
// does not declare are rejected. An empty document (or only comments) is
// not an error: v is left untouched and Empty reports true. name is the
// file name used in errors.
func Decode(data []byte, name string, v any) (*Doc, error) {
	doc := &Doc{name: name}
	// First pass: the node tree, for positions, and to reject a second
	// document, which a strict reader would otherwise silently ignore.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return doc, nil
	case err != nil:
		return nil, doc.convert(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, doc.Errorf(next.Line, "only one YAML document is allowed")
	case !errors.Is(err, io.EOF):
		return nil, doc.convert(err)
	}
	if len(root.Content) == 0 || root.Content[0].ShortTag() == "!!null" {
		return doc, nil
	}
	doc.root = root.Content[0]

	// Second pass: the values, strictly. yaml.Node.Decode cannot reject
	// unknown fields, hence a decoder over the bytes again.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(v); err != nil {
		return nil, doc.convert(err)
	}
	return doc, nil
}

// Empty reports whether the document had no content.
func (d *Doc) Empty() bool { return d.root == nil }

// Errorf returns an error "name:line: problem"; line 0 (unknown) gives
// "name: problem".
func (d *Doc) Errorf(line int, format string, args ...any) error {
	return &Error{File: d.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Line returns the line of the value at path, a sequence of mapping keys
// (string) and sequence indexes (int) from the document root. When the path
// does not exist it returns the line of the deepest part that does, so that
// "missing" errors still point near the problem.
func (d *Doc) Line(path ...any) int {
	n := d.root
	if n == nil {
		return 0
	}
	line := n.Line
	for _, step := range path {
		n = child(n, step)
		if n == nil {
			break
		}
		line = n.Line
	}
	return line
}

func child(n *yaml.Node, step any) *yaml.Node {
	switch s := step.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == s {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && s >= 0 && s < len(n.Content) {
			return n.Content[s]
		}
	}
	return nil
}

// Error is a problem at a line of a file.
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

var (
	lineRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
	fieldRE    = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	intoTypeRE = regexp.MustCompile(`^(cannot unmarshal .*) into (\S+)$`)
)

// convert rewrites a yaml library error as one Error per problem. The
// library says "yaml: line 3: ..." and names Go types; operators should
// see neither.
func (d *Doc) convert(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		line, msg := syntaxLine(strings.TrimPrefix(err.Error(), "yaml: "))
		return d.Errorf(line, "%s", msg)
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		line, msg := splitLine(msg)
		errs = append(errs, d.Errorf(line, "%s", friendly(msg)))
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func splitLine(msg string) (int, string) {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, msg
}

// syntaxLine corrects the line of a syntax error. The library numbers
// parser errors from 0 (scanner errors from 1), and leaves the line out
// when it would be 0: without this, an unclosed "{" on line 2 is reported
// on line 1.
func syntaxLine(msg string) (int, string) {
	line, msg := splitLine(msg)
	switch {
	case parserProblems[msg]:
		line++
	case line == 0 && !readerProblem(msg):
		line = 1
	}
	return line, msg
}

// parserProblems are the messages of the library's parser (parserc.go), as
// opposed to its scanner and reader.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// readerProblem reports a problem with the bytes themselves (encoding),
// which the library gives no position for.
func readerProblem(msg string) bool {
	for _, p := range []string{"control characters", "input error", "invalid", "incomplete", "expected low surrogate", "unexpected low surrogate"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func friendly(msg string) string {
	if m := fieldRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown field %q", m[1])
	}
	if m := intoTypeRE.FindStringSubmatch(msg); m != nil {
		return m[1] + " into " + kind(m[2])
	}
	return msg
}

// kind names a Go type the way the file's reader thinks of it.
func kind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	default:
		return "a mapping"
	}
}

// ID is an identifier that the file may write as an integer (id: 1) or a
// string (id: "t-1"); either way it holds the decimal or literal text, as a
// database's integer or text column would read. The zero value means the
// field was absent or null.
type ID string

// UnmarshalYAML accepts an integer or a string scalar.
func (id *ID) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str":
			*id = ID(n.Value)
			return nil
		case "!!int":
			var v int64
			if err := n.Decode(&v); err != nil {
				return typeError(n, "id %s does not fit in 64 bits", n.Value)
			}
			*id = ID(strconv.FormatInt(v, 10)) // 0x1F, 1_000 and +5 become plain decimal
			return nil
		}
	}
	return typeError(n, "an id must be an integer or a string, not %s", describe(n))
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
}

// Int is an integer that the file must write as one: the yaml library
// would silently truncate 2.5 to 2 when decoding into an int64. Absent or
// null is 0.
type Int int64

// UnmarshalYAML accepts only an integer scalar.
func (i *Int) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return typeError(n, "expected an integer, found %s", describe(n))
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		return typeError(n, "integer %s does not fit in 64 bits", n.Value)
	}
	*i = Int(v)
	return nil
}

// Ints converts a mapping of Int to plain integers.
func Ints(m map[string]Int) map[string]int64 {
	if m == nil {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

// typeError is how an UnmarshalYAML reports a problem with its line: the
// decoder collects *yaml.TypeError and keeps going.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
