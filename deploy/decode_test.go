package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one decoded Kubernetes object: the typed value and where it
// came from.
type object struct {
	Kind, Name, Source string
	Value              any
}

// types gives the API type of each kind the chart and the examples hold.
var types = map[string]func() any{
	"v1/ConfigMap":                        func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                           func() any { return new(corev1.Secret) },
	"v1/Service":                          func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                   func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                  func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                 func() any { return new(appsv1.StatefulSet) },
	"monitoring.coreos.com/v1/PodMonitor": func() any { return new(monitoringv1.PodMonitor) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any {
		return new(monitoringv1.ServiceMonitor)
	},
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
}

// decodeStrict decodes every YAML document of b into the API type of its
// apiVersion and kind, refusing duplicate keys, unknown fields and kinds
// without a type. source names b in errors.
func decodeStrict(source string, b []byte) ([]object, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // a document of comments only
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		newValue, ok := types[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: %s %s/%s: no API type known for it", source, head.Metadata.Name, head.APIVersion, head.Kind)
		}
		if head.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: a %s without a name", source, head.Kind)
		}
		// As the API server decodes: field names case-sensitive (encoding/json
		// would take servicename for serviceName), unknown and duplicate
		// fields refused.
		v := newValue()
		strict, err := kjson.UnmarshalStrict(js, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err = errors.Join(append([]error{err}, strict...)...); err != nil {
			return nil, fmt.Errorf("%s: %s/%s: %w", source, head.Kind, head.Metadata.Name, err)
		}
		objs = append(objs, object{Kind: head.Kind, Name: head.Metadata.Name, Source: source, Value: v})
	}
}

// repoPath is path, relative to the repository root, from this module.
func repoPath(path string) string {
	return filepath.Join("..", filepath.FromSlash(path))
}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// version is the repository's VERSION file.
func version(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(string(readRepoFile(t, "VERSION")))
}

// imageRepository is where the release image is published: the GitHub
// container registry path of the repository path in .promu.yml.
func imageRepository(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+path:\s*github\.com/(\S+)\s*$`).FindSubmatch(readRepoFile(t, ".promu.yml"))
	if m == nil {
		t.Fatal(".promu.yml: no repository path: github.com/...")
	}
	return "ghcr.io/" + string(m[1])
}

// mixinJob is the job the monitoring mixin's rules and dashboards select.
func mixinJob(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+exporterSelector: 'job="([^"]+)"',`).FindSubmatch(readRepoFile(t, "mixin/config.libsonnet"))
	if m == nil {
		t.Fatal("mixin/config.libsonnet: no exporterSelector: 'job=\"...\"'")
	}
	return string(m[1])
}

func TestDecodeStrictRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {portz: []}\n", `unknown field "spec.portz"`},
		{"field in another case", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: a}\nspec: {servicename: a}\n", `unknown field "spec.servicename"`},
		{"unknown nested field", "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: a}\nspec:\n  podMetricsEndpoints:\n    - {port: m, jobLabel: x}\n", `unknown field "spec.podMetricsEndpoints[0].jobLabel"`},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: a, k: b}\n", "already set"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", "no API type"},
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "without a name"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: one}\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeStrict("doc", []byte("# comment\n---\n"+tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decodeStrict: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
