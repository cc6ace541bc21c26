package monitoring

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-jsonnet"
	"go.yaml.in/yaml/v3"
)

// readmeScrapeMarker precedes the README's scrape_configs snippet.
const readmeScrapeMarker = "<!-- scrape-config:"

// readmeScrapeConfig returns the YAML block that follows the marker in
// README.md.
func readmeScrapeConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), readmeScrapeMarker)
	if !ok {
		t.Fatalf("README.md has no %q marker before its scrape_configs snippet", readmeScrapeMarker)
	}
	m := regexp.MustCompile("(?s)\\A[^\n]*-->\n```yaml\n(.*?)\n```").FindStringSubmatch(after)
	if m == nil {
		t.Fatalf("README.md: no ```yaml block right after the %q marker line", readmeScrapeMarker)
	}
	return m[1]
}

// TestReadmeScrapeConfig: the README's scrape_configs snippet is a
// configuration promtool accepts, and its job is the one the mixin's
// exporterSelector selects.
func TestReadmeScrapeConfig(t *testing.T) {
	snippet := readmeScrapeConfig(t)
	file := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(file, []byte(snippet+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, "promtool", "check", "config", file); err != nil {
		t.Fatalf("promtool check config of the README's snippet: %v\n%s\n%s", err, out, snippet)
	}

	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(snippet), &cfg); err != nil {
		t.Fatal(err)
	}
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	js, err := vm.EvaluateAnonymousSnippet("selector.jsonnet",
		"(import '"+repoPath(t, "mixin/mixin.libsonnet")+"')._config.exporterSelector")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\bjob="([^"]+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the mixin's exporterSelector %s has no job matcher", out)
	}
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != m[1] {
		t.Errorf("README scrape_configs jobs %+v, want one job %q (the mixin's exporterSelector %s)", cfg.ScrapeConfigs, m[1], out)
	}
}
