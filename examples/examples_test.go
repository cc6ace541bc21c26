package examples

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/billing-exporter/billing_exporter/config"
)

func tool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make test does)", name, debianPackage)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustExist(t *testing.T, path, why string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s (%s) does not exist: %v", path, why, err)
	}
}

func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	out := run(t, promtool, "check", "config", "prometheus.yml")
	if !strings.Contains(out, "2 rule files found") {
		t.Errorf("promtool did not load both rule files:\n%s", out)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			ScrapeTimeout  string `yaml:"scrape_timeout"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &cfg)
	for _, f := range cfg.RuleFiles {
		mustExist(t, f, "rule file")
	}
	var found bool
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "billing_exporter" {
			found = true
			if sc.ScrapeInterval != "15s" || sc.ScrapeTimeout == "" {
				t.Errorf("billing_exporter job: interval %q timeout %q, want the seed's 15s and an explicit timeout", sc.ScrapeInterval, sc.ScrapeTimeout)
			}
		}
	}
	if !found {
		t.Error("no billing_exporter scrape job (the alerts' up{job=\"billing_exporter\"} needs it)")
	}
}

type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []yaml.Node       `yaml:"secrets"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func TestDockerCompose(t *testing.T) {
	compose := tool(t, "docker-compose", "docker-compose")
	run(t, compose, "-f", "docker-compose.yml", "config", "-q")

	var c composeFile
	readYAML(t, "docker-compose.yml", &c)
	mounts := map[string]string{} // container path -> host path
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if strings.HasPrefix(parts[0], ".") {
				mustExist(t, parts[0], "volume of "+name)
				mounts[parts[1]] = parts[0]
			}
		}
		if svc.Build != nil {
			mustExist(t, filepath.Join(svc.Build.Context, svc.Build.Dockerfile), "Dockerfile of "+name)
		}
		for k, v := range svc.Environment {
			if strings.Contains(strings.ToLower(k), "password") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("service %s sets %s=%q: secrets go in files", name, k, v)
			}
		}
	}
	for name, s := range c.Secrets {
		mustExist(t, s.File, "secret "+name)
	}

	// Prometheus loads alerts/ as they are; Grafana loads dashboards/ as they are.
	if mounts["/etc/alerts"] != "../alerts" || mounts["/etc/prometheus/prometheus.yml"] != "./prometheus.yml" {
		t.Errorf("Prometheus mounts = %v, want prometheus.yml and ../alerts at /etc/alerts (rule_files are ../alerts/*.yml)", mounts)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/billing.yml", &provider)
	for _, p := range provider.Providers {
		host, ok := mounts[p.Options.Path]
		if !ok {
			t.Errorf("dashboard provider path %s is not mounted", p.Options.Path)
			continue
		}
		jsons, _ := filepath.Glob(filepath.Join(host, "*.json"))
		if len(jsons) != 3 {
			t.Errorf("%s holds %d dashboards, want the 3 shipped ones", host, len(jsons))
		}
	}
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !strings.Contains(ds.Datasources[0].URL, "prometheus:9090") {
		t.Errorf("datasources = %+v, want the compose Prometheus", ds.Datasources)
	}

	// The exporter's own files parse with the exporter's loader.
	exporter := c.Services["billing-exporter"]
	var sawDSN bool
	for _, arg := range exporter.Command {
		switch {
		case strings.HasPrefix(arg, "--config.file="):
			host := mounts[strings.TrimPrefix(arg, "--config.file=")]
			if _, err := config.Load(host); err != nil {
				t.Errorf("exporter config %s: %v", host, err)
			}
		case strings.HasPrefix(arg, "--postgres.dsn-file=/run/secrets/"):
			sawDSN = true
		case strings.Contains(arg, "password") || strings.Contains(arg, "postgres://"):
			t.Errorf("exporter argument %q carries a secret", arg)
		}
	}
	if !sawDSN {
		t.Error("the exporter does not read its DSN from a compose secret")
	}

	// Traces go to the stack's Jaeger, over OTLP/HTTP (port 4318).
	if img := c.Services["jaeger"].Image; !strings.HasPrefix(img, "jaegertracing/jaeger:2.") {
		t.Errorf("jaeger image = %q, want the Jaeger v2 all-in-one", img)
	}
	if ep := exporter.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; ep != "http://jaeger:4318" {
		t.Errorf("exporter OTEL_EXPORTER_OTLP_ENDPOINT = %q, want the jaeger service's OTLP/HTTP port", ep)
	}
}

// k8sObject is the part of a Kubernetes object the checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       struct {
		Selector yaml.Node `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		JobLabel            string `yaml:"jobLabel"`
		PodMetricsEndpoints []struct {
			Port      string `yaml:"port"`
			BasicAuth struct {
				Username secretKeyRef `yaml:"username"`
				Password secretKeyRef `yaml:"password"`
			} `yaml:"basicAuth"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

type secretKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name  string   `yaml:"name"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name string `yaml:"name"`
		} `yaml:"ports"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		LivenessProbe   map[string]any `yaml:"livenessProbe"`
		ReadinessProbe  map[string]any `yaml:"readinessProbe"`
		SecurityContext struct {
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

// k8sSecretExample is where the example's placeholder Secrets live: apart
// from the manifests, so that applying those never replaces real Secrets.
const k8sSecretExample = "kubernetes/secret-example/secret.example.yaml"

// loadK8s reads every object of the Kubernetes example: the manifests
// kustomization.yaml lists, and the placeholder Secrets.
func loadK8s(t *testing.T) map[string]k8sObject {
	t.Helper()
	files := append(k8sResources(t), k8sSecretExample)
	objs := map[string]k8sObject{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(false)
		for {
			var o k8sObject
			if err := dec.Decode(&o); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: an object without kind or name", f)
			}
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return objs
}

// k8sResources returns the files kustomization.yaml lists, as paths from
// examples/.
func k8sResources(t *testing.T) []string {
	t.Helper()
	var k struct {
		Kind      string   `yaml:"kind"`
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kubernetes/kustomization.yaml", &k)
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("kubernetes/kustomization.yaml: kind %q, resources %v", k.Kind, k.Resources)
	}
	var files []string
	for _, r := range k.Resources {
		files = append(files, filepath.Join("kubernetes", r))
	}
	return files
}

// TestKubernetesApplyKeepsSecrets: applying the example as the docs say
// (kubectl apply -k, or -f on the directory) never replaces real Secrets.
// The kustomization lists every manifest of the directory and no Secret;
// the placeholder Secrets are in a directory of their own.
func TestKubernetesApplyKeepsSecrets(t *testing.T) {
	listed := map[string]bool{}
	for _, f := range k8sResources(t) {
		listed[f] = true
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if !listed[f] {
			t.Errorf("%s is not listed in kubernetes/kustomization.yaml", f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^kind:\s*Secret\s*$`).Match(b) {
			t.Errorf("%s holds a Secret: applying the example would replace the real one", f)
		}
	}
	if _, err := os.Stat(k8sSecretExample); err != nil {
		t.Errorf("the placeholder Secrets: %v", err)
	}
	for _, doc := range []string{"../docs/deployment.md", "../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("kubectl apply -f examples/kubernetes/")) {
			t.Errorf("%s says kubectl apply -f examples/kubernetes/; the example is applied with -k", doc)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadK8s(t)
	sts, ok := objs["StatefulSet/billing-redis"]
	if !ok {
		t.Fatalf("no StatefulSet/billing-redis in %v", objs)
	}
	pod := sts.Spec.Template.Spec
	podLabels := sts.Spec.Template.Metadata.Labels
	secretVolumes := map[string]string{}    // volume -> secret
	configMapVolumes := map[string]string{} // volume -> ConfigMap
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = v.Secret.SecretName
		}
		if v.ConfigMap != nil {
			configMapVolumes[v.Name] = v.ConfigMap.Name
		}
	}
	containerPorts := map[string]bool{}
	var exporterSeen, sawConfig bool
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			containerPorts[p.Name] = true
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s lacks memory requests/limits", c.Name)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("container %s lacks probes", c.Name)
		}
		sc := c.SecurityContext
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot)
		if !nonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: want non-root, read-only root filesystem, no privilege escalation", c.Name)
		}
		if c.Name != "billing-exporter" {
			continue
		}
		exporterSeen = true
		// Every file the exporter reads comes from a mounted Secret key,
		// but --config.file, which holds no secret: from a ConfigMap, with
		// default limits as in compose.
		for _, arg := range c.Args {
			name, value, _ := strings.Cut(arg, "=")
			if name == "--config.file" {
				sawConfig = true
				checkConfigFile(t, objs, c.VolumeMounts, configMapVolumes, value)
				continue
			}
			if !strings.HasSuffix(name, "-file") && !strings.HasSuffix(name, ".file") {
				if strings.Contains(value, "postgres://") || strings.Contains(name, "password") {
					t.Errorf("argument %q carries a secret", arg)
				}
				continue
			}
			checkSecretFile(t, objs, c.VolumeMounts, secretVolumes, value)
		}
	}
	if !exporterSeen {
		t.Fatal("no billing-exporter sidecar container")
	}
	if !sawConfig {
		t.Error("the exporter runs without --config.file: tenants without a plan would be unlimited")
	}

	svc := objs["Service/billing-redis"]
	for _, p := range svc.Spec.Ports {
		if !containerPorts[p.TargetPort] {
			t.Errorf("Service port %s targets %q, which no container names", p.Name, p.TargetPort)
		}
	}
	var svcSelector map[string]string
	_ = svc.Spec.Selector.Decode(&svcSelector)
	for k, v := range svcSelector {
		if podLabels[k] != v {
			t.Errorf("Service selector %s=%s does not select the pod", k, v)
		}
	}
	pm := objs["PodMonitor/billing-exporter"]
	var pmSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	_ = pm.Spec.Selector.Decode(&pmSelector)
	for k, v := range pmSelector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("PodMonitor selector %s=%s does not select the pod", k, v)
		}
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if !containerPorts[ep.Port] {
			t.Errorf("PodMonitor port %q is not a container port", ep.Port)
		}
		// The web config requires basic auth: the scrape sends the
		// credentials of the scrape Secret.
		for _, ref := range []secretKeyRef{ep.BasicAuth.Username, ep.BasicAuth.Password} {
			if _, ok := objs["Secret/"+ref.Name].StringData[ref.Key]; !ok || ref.Name == "" {
				t.Errorf("PodMonitor basicAuth reads %s/%s, which no example Secret has", ref.Name, ref.Key)
			}
		}
	}
	// The job is what the mixin's rules and dashboards select.
	if job := mixinJob(t); pm.Spec.JobLabel == "" || podLabels[pm.Spec.JobLabel] != job {
		t.Errorf("PodMonitor jobLabel %q gives the job %q, want %q (the mixin's exporterSelector)", pm.Spec.JobLabel, podLabels[pm.Spec.JobLabel], job)
	}
	// Scrape annotations would have the common annotation-based job scrape
	// the pod without credentials (401) under another job name.
	for k := range sts.Spec.Template.Metadata.Annotations {
		if strings.HasPrefix(k, "prometheus.io/") {
			t.Errorf("pod annotation %s: an unauthenticated scrape of an exporter that requires basic auth", k)
		}
	}
	// The alerts and dashboards come with the manifests.
	for _, name := range []string{"PrometheusRule/billing-exporter", "ConfigMap/billing-exporter-dashboards"} {
		if _, ok := objs[name]; !ok {
			t.Errorf("no %s in kubernetes/", name)
		}
	}
	if cm := objs["ConfigMap/billing-exporter-dashboards"]; cm.Metadata.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the dashboards ConfigMap lacks the Grafana sidecar's label grafana_dashboard: \"1\"")
	}
}

// mixinJob is the job the monitoring mixin selects by default.
func mixinJob(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../mixin/config.libsonnet")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+exporterSelector: 'job="([^"]+)"',`).FindSubmatch(b)
	if m == nil {
		t.Fatal("mixin/config.libsonnet: no exporterSelector: 'job=\"...\"'")
	}
	return string(m[1])
}

// checkConfigFile checks that path is a key of a ConfigMap mounted in the
// container, that the exporter loads it, and that it gives default limits.
func checkConfigFile(t *testing.T, objs map[string]k8sObject, mounts []struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}, configMapVolumes map[string]string, path string) {
	t.Helper()
	for _, m := range mounts {
		cm, ok := configMapVolumes[m.Name]
		if !ok || !strings.HasPrefix(path, m.MountPath+"/") {
			continue
		}
		key := strings.TrimPrefix(path, m.MountPath+"/")
		value, ok := objs["ConfigMap/"+cm].Data[key]
		if !ok {
			t.Errorf("%s: ConfigMap %s has no key %s", path, cm, key)
			return
		}
		file := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(file, []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(file); err != nil {
			t.Errorf("ConfigMap %s key %s: %v", cm, key, err)
		}
		var got, compose map[string]any
		if err := yaml.Unmarshal([]byte(value), &got); err != nil {
			t.Fatal(err)
		}
		readYAML(t, "exporter-config.yml", &compose)
		if !reflect.DeepEqual(got, compose) {
			t.Errorf("ConfigMap %s key %s differs from the compose stack's exporter-config.yml: %v, want %v", cm, key, got, compose)
		}
		return
	}
	t.Errorf("%s is not in a mounted ConfigMap", path)
}

// checkSecretFile checks that path is a key of a Secret mounted in the
// container, and that the web config in it works with the scrape password.
func checkSecretFile(t *testing.T, objs map[string]k8sObject, mounts []struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}, secretVolumes map[string]string, path string) {
	t.Helper()
	for _, m := range mounts {
		secret, ok := secretVolumes[m.Name]
		if !ok || !strings.HasPrefix(path, m.MountPath+"/") {
			continue
		}
		key := strings.TrimPrefix(path, m.MountPath+"/")
		value, ok := objs["Secret/"+secret].StringData[key]
		if !ok {
			t.Errorf("%s: Secret %s has no key %s", path, secret, key)
			return
		}
		if key == "web-config.yml" {
			checkWebConfig(t, value, objs["Secret/billing-exporter-scrape"].StringData)
		}
		return
	}
	t.Errorf("%s is not in a mounted Secret", path)
}

func checkWebConfig(t *testing.T, content string, scrape map[string]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := web.Validate(path); err != nil {
		t.Errorf("web config: %v", err)
	}
	var wc struct {
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal([]byte(content), &wc); err != nil {
		t.Fatal(err)
	}
	hash, ok := wc.Users[scrape["username"]]
	if !ok {
		t.Fatalf("web config has no user %q (the PodMonitor's)", scrape["username"])
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(scrape["password"])); err != nil {
		t.Errorf("the PodMonitor's password does not match the web config's hash: %v", err)
	}
}
