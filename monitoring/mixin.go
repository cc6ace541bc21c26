package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-jsonnet"
	"go.yaml.in/yaml/v3"
)

// MixinEntry is the file of the monitoring mixin that lists every rendered
// file, relative to the repository root.
const MixinEntry = "mixin/generate.jsonnet"

// RenderMixin evaluates the monitoring mixin of the repository at root with
// go-jsonnet, its _config overridden by config (nil: the defaults), and
// returns the content of every file it renders by path from the root
// (alerts/*.yml, dashboards/*.json, examples/kubernetes/*.yaml).
func RenderMixin(root string, config map[string]any) (map[string][]byte, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("mixin config: %w", err)
	}
	if config == nil {
		cfg = []byte("{}")
	}
	return renderMixin(root, string(cfg))
}

// RenderMixinFile is RenderMixin with the _config overrides that the
// jsonnet file at path evaluates to (an object; nested objects merge field
// by field, so {'for': {BillingRedisDown: '2m'}} overrides that one).
func RenderMixinFile(root, path string) (map[string][]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("mixin config: %w", err)
	}
	quoted, err := json.Marshal(abs)
	if err != nil {
		return nil, fmt.Errorf("mixin config: %w", err)
	}
	return renderMixin(root, "import "+string(quoted))
}

// renderMixin evaluates the mixin with the jsonnet code config as its
// _config overrides.
func renderMixin(root, config string) (map[string][]byte, error) {
	entry := filepath.Join(root, filepath.FromSlash(MixinEntry))
	vm := jsonnet.MakeVM()
	// No library path: the mixin's imports are relative to their own files,
	// as they must be where jsonnet-bundler vendors it.
	vm.Importer(&jsonnet.FileImporter{})
	vm.TLACode("config", config)
	out, err := vm.EvaluateFile(entry)
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", MixinEntry, err)
	}
	var files map[string]struct {
		Format string          `json:"format"`
		Header []string        `json:"header"`
		Value  json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &files); err != nil {
		return nil, fmt.Errorf("%s: %w", MixinEntry, err)
	}
	rendered := make(map[string][]byte, len(files))
	for path, f := range files {
		var b bytes.Buffer
		for _, line := range f.Header {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		switch f.Format {
		case "json":
			if err := json.Indent(&b, f.Value, "", "  "); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			b.WriteByte('\n')
		case "yaml":
			if err := writeYAML(&b, f.Value); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		default:
			return nil, fmt.Errorf("%s: unknown format %q", path, f.Format)
		}
		rendered[path] = b.Bytes()
	}
	return rendered, nil
}

// yamlKeyOrder is the order of the keys people expect in Kubernetes objects
// and rule files (jsonnet sorts them); other keys follow, sorted.
var yamlKeyOrder = []string{"apiVersion", "kind", "metadata", "name", "alert", "record", "expr", "for",
	"keep_firing_for", "labels", "annotations", "summary", "description", "runbook_url", "dashboard_url",
	"spec", "data", "groups", "rules"}

// writeYAML writes JSON as block YAML: keys in yamlKeyOrder, strings plain
// where YAML allows, multi-line ones (expressions, dashboards) as literal
// blocks.
func writeYAML(b *bytes.Buffer, value json.RawMessage) error {
	var doc yaml.Node
	// JSON is YAML: the node tree keeps the keys in the order given.
	if err := yaml.Unmarshal(value, &doc); err != nil {
		return err
	}
	restyle(&doc)
	enc := yaml.NewEncoder(b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

func restyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
	}
	if n.Kind == yaml.MappingNode {
		type pair struct{ k, v *yaml.Node }
		pairs := make([]pair, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, pair{n.Content[i], n.Content[i+1]})
		}
		rank := func(k string) int {
			if i := slices.Index(yamlKeyOrder, k); i >= 0 {
				return i
			}
			return len(yamlKeyOrder)
		}
		sort.SliceStable(pairs, func(i, j int) bool {
			ri, rj := rank(pairs[i].k.Value), rank(pairs[j].k.Value)
			if ri != rj {
				return ri < rj
			}
			return pairs[i].k.Value < pairs[j].k.Value
		})
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p.k, p.v)
		}
	}
	for _, c := range n.Content {
		restyle(c)
	}
}
