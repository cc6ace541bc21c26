// Package yamlfile decodes YAML strictly, with "file:line: problem" errors.
package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"go.yaml.in/yaml/v4"
)

// Doc keeps a document's nodes for their lines.
type Doc struct {
	name string
	root *yaml.Node
}

// ReadFile returns the file at path, refusing one over limit bytes unread: a
// parse takes many times a file's size in memory.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		size := strconv.FormatInt(limit, 10) + " bytes"
		if limit%(1<<20) == 0 {
			size = strconv.FormatInt(limit>>20, 10) + " MiB"
		}
		return nil, fmt.Errorf("%s: file too large (limit %s)", path, size)
	}
	return data, nil
}

// Decode decodes one document into v strictly; an empty one leaves v as is.
func Decode(data []byte, name string, v any) (*Doc, error) {
	doc := &Doc{name: name}
	var root, next yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&root)
	if err == nil {
		// The library would ignore a second document.
		if err = dec.Decode(&next); err == nil {
			return nil, doc.Errorf(next.Line, "only one YAML document is allowed")
		}
	}
	if !errors.Is(err, io.EOF) {
		return nil, doc.wrap(err)
	}
	if len(root.Content) == 0 || root.Content[0].ShortTag() == "!!null" {
		return doc, nil
	}
	doc.root = root.Content[0]
	if err := doc.root.Load(v, yaml.WithKnownFields()); err != nil {
		return nil, doc.wrap(err)
	}
	return doc, nil
}

// Empty reports an empty document.
func (d *Doc) Empty() bool { return d.root == nil }

// Errorf returns "name:line: problem"; line 0 omits the line.
func (d *Doc) Errorf(line int, format string, args ...any) error {
	pos := d.name
	if line > 0 {
		pos += ":" + strconv.Itoa(line)
	}
	return errors.New(pos + ": " + fmt.Sprintf(format, args...))
}

func (d *Doc) wrap(err error) error {
	var list []*yaml.LoadError
	if all, ok := err.(*yaml.LoadErrors); ok {
		list = all.Errors
	} else if one, ok := err.(*yaml.LoadError); ok {
		list = []*yaml.LoadError{one}
	} else {
		return d.Errorf(0, "%v", err)
	}
	errs := make([]error, len(list))
	for i, e := range list {
		errs[i] = d.Errorf(e.Mark.Line, "%s", e.Message)
	}
	return errors.Join(errs...)
}

// Line returns the line of path's deepest existing part.
func (d *Doc) Line(path ...any) int {
	n := d.root
	if n == nil {
		return 0
	}
	line := n.Line
	for _, step := range path {
		if n = child(n, step); n == nil {
			break
		}
		line = n.Line
	}
	return line
}

func child(n *yaml.Node, step any) *yaml.Node {
	switch s := step.(type) {
	case string:
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
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
