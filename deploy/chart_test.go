package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "charts/billing-exporter"
	release   = "billing"
	namespace = "billing"
)

// The values that turn every optional part on.
const allOn = `
serviceMonitor: {enabled: true, additionalLabels: {release: kube-prometheus-stack},
  basicAuth: {username: {name: scrape, key: username}, password: {name: scrape, key: password}}}
podMonitor: {enabled: true, additionalLabels: {release: kube-prometheus-stack}}
prometheusRule: {enabled: true, backendRules: true, additionalLabels: {release: kube-prometheus-stack}}
dashboards: {enabled: true, annotations: {grafana_folder: Billing}}
redis: {passwordSecret: {name: billing-redis, key: password}}
webConfig: {secret: {name: billing-web, key: web.yml}}
config: {defaults: {limits: {messages: 1000}}, thresholds: [80, 100]}
extraArgs: [--billing.timezone=America/Sao_Paulo]
`

// chartCase is a set of values and what the chart must render with them.
type chartCase struct {
	name       string
	values     string
	wantErr    string // a render error with this text, and nothing else checked
	skipSchema bool   // render as helm --skip-schema-validation

	standalone                 bool
	serviceMonitor, podMonitor bool
	rules, backendRules        bool
	dashboards                 bool
	release                    string // the release label of the Operator objects
	redisPassword              string // Secret/key
	dsnSecret                  string // Secret/key
	dsnEnv, pgPassword         string // DSN value; Secret/key
	webConfig                  string // Secret/key
	config, persistence        bool
}

var chartCases = []chartCase{
	{name: "sidecar defaults", persistence: true},
	{name: "standalone defaults", standalone: true, values: "mode: standalone\nredis: {addr: redis.billing.svc:6379}"},
	{
		name: "sidecar all on", values: allOn + "\n---\npostgres: {dsnSecret: {name: billing-pg, key: dsn}}\nredis: {sidecar: {persistence: {enabled: false}}}",
		serviceMonitor: true, podMonitor: true, rules: true, backendRules: true, dashboards: true, release: "kube-prometheus-stack",
		redisPassword: "billing-redis/password", dsnSecret: "billing-pg/dsn", webConfig: "billing-web/web.yml", config: true,
	},
	{
		name: "standalone all on", standalone: true,
		values: allOn + "\n---\nmode: standalone\nredis: {addr: 'rediss://exporter@redis.billing.svc:6380'}\n" +
			"postgres: {dsn: 'postgres://exporter@db:5432/billing?sslmode=require', passwordSecret: {name: billing-pg, key: pw}}",
		serviceMonitor: true, podMonitor: true, rules: true, backendRules: true, dashboards: true, release: "kube-prometheus-stack",
		redisPassword: "billing-redis/password", dsnEnv: "postgres://exporter@db:5432/billing?sslmode=require", pgPassword: "billing-pg/pw",
		webConfig: "billing-web/web.yml", config: true,
	},
	{name: "serviceMonitor for kube-prometheus-stack", values: "serviceMonitor: {enabled: true, additionalLabels: {release: kps}}", serviceMonitor: true, release: "kps", persistence: true},
	{name: "podMonitor without labels", values: "podMonitor: {enabled: true}", podMonitor: true, persistence: true},
	{name: "prometheusRule without the backend's rules", values: "prometheusRule: {enabled: true}", rules: true, persistence: true},
	{name: "prometheusRule with the backend's rules", values: "prometheusRule: {enabled: true, backendRules: true, additionalLabels: {release: kps}}", rules: true, backendRules: true, release: "kps", persistence: true},
	{name: "dashboards", values: "dashboards: {enabled: true}", dashboards: true, persistence: true},
	{name: "redis password", values: "redis: {passwordSecret: {name: r, key: k}}", redisPassword: "r/k", persistence: true},
	{name: "postgres DSN", values: "postgres: {dsnSecret: {name: p}}", dsnSecret: "p/postgres-dsn", persistence: true},
	{name: "web config", values: "webConfig: {secret: {name: w}}", webConfig: "w/web-config.yml", persistence: true},

	{name: "unknown mode", values: "mode: daemonset", wantErr: "at '/mode': value must be one of 'sidecar', 'standalone'"},
	{name: "unknown mode without the schema", values: "mode: daemonset", skipSchema: true, wantErr: "mode must be sidecar or standalone"},
	{name: "misspelt value", values: "serviceMonitor: {enable: true}", wantErr: "at '/serviceMonitor': additional properties 'enable' not allowed"},
	{name: "replicas not a number", values: "replicaCount: two", wantErr: "at '/replicaCount': got string, want integer"},
	{name: "Secret without a key", values: "redis: {passwordSecret: {name: r, key: ''}}", wantErr: "at '/redis/passwordSecret/key'"},
	{name: "standalone without Redis", values: "mode: standalone", wantErr: "needs redis.addr"},
	{name: "password in the DSN", values: "postgres: {dsn: 'postgres://u:secret@db/billing'}", wantErr: "postgres.dsn carries a password"},
	{name: "password in the Redis URL", values: "mode: standalone\nredis: {addr: 'redis://:secret@r:6379'}", wantErr: "redis.addr carries a password"},
	{name: "two DSNs", values: "postgres: {dsn: 'postgres://u@db/b', dsnSecret: {name: p}}", wantErr: "not both"},
	{name: "a password without a DSN", values: "postgres: {passwordSecret: {name: p}}", wantErr: "needs postgres.dsn"},
}

func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	// Later documents of a case override earlier keys, as helm's -f files.
	for _, doc := range strings.Split(s, "\n---\n") {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatalf("values %q: %v", doc, err)
		}
		vals = util.MergeTables(v, vals)
	}
	return vals
}

// render renders the chart as helm install would, values checked against
// values.schema.json unless skipSchema, with strict template evaluation (a
// reference to a value that does not exist fails).
func render(t *testing.T, vals map[string]any, skipSchema bool) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(repoPath(chartDir))
	if err != nil {
		t.Fatal(err)
	}
	top, err := util.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true}, nil, skipSchema)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.RenderWithContext(t.Context(), ch, top)
}

// chartObjects decodes every object the chart renders, by kind and name.
func chartObjects(t *testing.T, out map[string]string) map[string]object {
	t.Helper()
	objs := map[string]object{}
	for _, name := range slices.Sorted(maps.Keys(out)) {
		if path.Base(name) == "NOTES.txt" {
			continue
		}
		decoded, err := decodeStrict(name, []byte(out[name]))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decoded {
			key := o.Kind + "/" + o.Name
			if _, dup := objs[key]; dup {
				t.Errorf("%s rendered twice", key)
			}
			objs[key] = o
		}
	}
	return objs
}

func TestChart(t *testing.T) {
	t.Parallel()
	for _, tc := range chartCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vals := parseValues(t, tc.values)
			out, err := render(t, vals, tc.skipSchema)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("render: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lintChart(t, vals)
			if notes := out[path.Join("billing-exporter", "templates", "NOTES.txt")]; !strings.Contains(notes, "billing_exporter") {
				t.Errorf("NOTES.txt renders %q", notes)
			}
			checkChart(t, tc, chartObjects(t, out))
		})
	}
}

// lintChart runs helm lint with vals and fails on any warning or error,
// as helm lint --strict.
func lintChart(t *testing.T, vals map[string]any) {
	t.Helper()
	res := lint.RunAll(repoPath(chartDir), vals, namespace)
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %v", m)
		}
	}
}

func checkChart(t *testing.T, tc chartCase, objs map[string]object) {
	t.Helper()
	fullname := release + "-billing-exporter"
	want := []string{"Service/" + fullname, "ServiceAccount/" + fullname}
	if tc.standalone {
		want = append(want, "Deployment/"+fullname)
	} else {
		want = append(want, "StatefulSet/"+fullname)
	}
	for _, on := range []struct {
		on   bool
		name string
	}{
		{tc.serviceMonitor, "ServiceMonitor/" + fullname},
		{tc.podMonitor, "PodMonitor/" + fullname},
		{tc.rules, "PrometheusRule/" + fullname},
		{tc.dashboards, "ConfigMap/" + fullname + "-dashboards"},
		{tc.config, "ConfigMap/" + fullname + "-config"},
	} {
		if on.on {
			want = append(want, on.name)
		}
	}
	if got := slices.Sorted(maps.Keys(objs)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("rendered %v, want %v", got, want)
	}

	pod := checkWorkload(t, tc, objs, fullname)
	svc := objs["Service/"+fullname].Value.(*corev1.Service)
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("Service selector %v does not select the pod (%v)", svc.Spec.Selector, pod.Labels)
	}
	ports := containerPorts(pod.Spec)
	for _, p := range svc.Spec.Ports {
		if !ports[p.TargetPort.String()] {
			t.Errorf("Service port %s targets %s, which no container names", p.Name, p.TargetPort.String())
		}
	}
	if o, ok := objs["ServiceMonitor/"+fullname]; ok {
		sm := o.Value.(*monitoringv1.ServiceMonitor)
		if sm.Spec.Selector.MatchExpressions != nil || !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor selector %v does not select the Service (%v)", sm.Spec.Selector, svc.Labels)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("ServiceMonitor endpoints %v, want one", sm.Spec.Endpoints)
		}
		ep := sm.Spec.Endpoints[0]
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
			t.Errorf("ServiceMonitor port %v is not a Service port", ep.Port)
		}
		checkMonitor(t, tc, "ServiceMonitor", sm.Labels, sm.Spec.JobLabel, ep.RelabelConfigs, ep.BasicAuth)
	}
	if o, ok := objs["PodMonitor/"+fullname]; ok {
		pm := o.Value.(*monitoringv1.PodMonitor)
		if pm.Spec.Selector.MatchExpressions != nil || !selects(pm.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("PodMonitor selector %v does not select the pod (%v)", pm.Spec.Selector, pod.Labels)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("PodMonitor endpoints %v, want one", pm.Spec.PodMetricsEndpoints)
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port == nil || !ports[*ep.Port] {
			t.Errorf("PodMonitor port %v is not a container port", ep.Port)
		}
		checkMonitor(t, tc, "PodMonitor", pm.Labels, pm.Spec.JobLabel, ep.RelabelConfigs, ep.BasicAuth)
	}
	if o, ok := objs["PrometheusRule/"+fullname]; ok {
		pr := o.Value.(*monitoringv1.PrometheusRule)
		if got := pr.Labels["release"]; got != tc.release {
			t.Errorf("PrometheusRule release label %q, want %q", got, tc.release)
		}
		checkRules(t, tc, pr)
	}
	if o, ok := objs["ConfigMap/"+fullname+"-dashboards"]; ok {
		checkDashboards(t, o.Value.(*corev1.ConfigMap))
	}
	if o, ok := objs["ConfigMap/"+fullname+"-config"]; ok {
		cm := o.Value.(*corev1.ConfigMap)
		var cfg map[string]any
		if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yml"]), &cfg); err != nil || cfg["defaults"] == nil {
			t.Errorf("config ConfigMap config.yml = %q (%v), want the values' config", cm.Data["config.yml"], err)
		}
	}
}

// selects reports whether a label selector's matchLabels select labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func containerPorts(spec corev1.PodSpec) map[string]bool {
	ports := map[string]bool{}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
	}
	return ports
}

// checkMonitor checks the labels and the job of a ServiceMonitor or a
// PodMonitor: its relabelings give the job the mixin selects.
func checkMonitor(t *testing.T, tc chartCase, kind string, labels map[string]string, jobLabel string, relabelings []monitoringv1.RelabelConfig, basicAuth *monitoringv1.BasicAuth) {
	t.Helper()
	if got := labels["release"]; got != tc.release {
		t.Errorf("%s release label %q, want %q", kind, got, tc.release)
	}
	if jobLabel != "" {
		t.Errorf("%s jobLabel %q: the job comes from the relabeling", kind, jobLabel)
	}
	job := ""
	for _, r := range relabelings {
		if r.TargetLabel != "job" {
			continue
		}
		if r.Action != "" && r.Action != "replace" || len(r.SourceLabels) != 0 || r.Replacement == nil {
			t.Errorf("%s relabeling %+v of job: want a plain replace", kind, r)
			continue
		}
		job = *r.Replacement
	}
	if want := mixinJob(t); job != want {
		t.Errorf("%s gives the job %q, want %q (the mixin's exporterSelector)", kind, job, want)
	}
	if kind == "ServiceMonitor" && tc.webConfig != "" && (basicAuth == nil || basicAuth.Username.Name != "scrape" || basicAuth.Password.Key != "password") {
		t.Errorf("ServiceMonitor basicAuth %+v, want the values' Secret", basicAuth)
	}
}

// checkWorkload checks the StatefulSet or the Deployment and returns its
// pod template.
func checkWorkload(t *testing.T, tc chartCase, objs map[string]object, fullname string) corev1.PodTemplateSpec {
	t.Helper()
	var pod corev1.PodTemplateSpec
	var claims []corev1.PersistentVolumeClaim
	if tc.standalone {
		d := objs["Deployment/"+fullname].Value.(*appsv1.Deployment)
		pod = d.Spec.Template
		if !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("Deployment selector %v does not select its pods", d.Spec.Selector)
		}
	} else {
		s := objs["StatefulSet/"+fullname].Value.(*appsv1.StatefulSet)
		pod = s.Spec.Template
		claims = s.Spec.VolumeClaimTemplates
		if !selects(s.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("StatefulSet selector %v does not select its pods", s.Spec.Selector)
		}
		if s.Spec.ServiceName != fullname {
			t.Errorf("StatefulSet serviceName %q, want %q", s.Spec.ServiceName, fullname)
		}
	}
	spec := pod.Spec
	if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext %+v: want runAsNonRoot", psc)
	}
	var names []string
	containers := map[string]corev1.Container{}
	for _, c := range spec.Containers {
		names = append(names, c.Name)
		containers[c.Name] = c
		sc := c.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container %s securityContext %+v: want non-root, read-only root filesystem, no privilege escalation, no capabilities", c.Name, sc)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s lacks memory requests/limits", c.Name)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("container %s lacks probes", c.Name)
		}
	}
	wantNames := []string{"redis", "exporter"}
	if tc.standalone {
		wantNames = []string{"exporter"}
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("containers %v, want %v", names, wantNames)
	}
	exp := containers["exporter"]
	if want := imageRepository(t) + ":" + version(t); exp.Image != want {
		t.Errorf("exporter image %q, want %q", exp.Image, want)
	}
	if sc := exp.SecurityContext; sc.RunAsUser == nil || *sc.RunAsUser != 65534 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65534 {
		t.Errorf("exporter runs as %s:%s, want 65534:65534 (nobody)", fmtID(sc.RunAsUser), fmtID(sc.RunAsGroup))
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{exp.LivenessProbe, "/-/healthy"}, {exp.ReadinessProbe, "/-/ready"}} {
		switch {
		case tc.webConfig != "":
			if p.probe.TCPSocket == nil || p.probe.TCPSocket.Port.String() != "metrics" || p.probe.HTTPGet != nil {
				t.Errorf("exporter probe %+v: with a web config, want tcpSocket on metrics", p.probe.ProbeHandler)
			}
		case p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "metrics":
			t.Errorf("exporter probe %+v, want httpGet %s on metrics", p.probe.ProbeHandler, p.path)
		}
	}
	args := map[string]string{}
	for _, a := range exp.Args {
		k, v, _ := strings.Cut(a, "=")
		if _, dup := args[k]; dup {
			t.Errorf("exporter argument %s given twice", k)
		}
		args[k] = v
		if strings.Contains(strings.ToLower(a), "password=") || strings.Contains(a, "postgres://") {
			t.Errorf("exporter argument %q carries a secret", a)
		}
	}
	wantAddr := "127.0.0.1:6379"
	if tc.standalone {
		wantAddr = parseValues(t, tc.values)["redis"].(map[string]any)["addr"].(string)
	}
	if args["--redis.addr"] != wantAddr {
		t.Errorf("--redis.addr=%q, want %q", args["--redis.addr"], wantAddr)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, f := range []struct{ flag, secret string }{
		{"--redis.password-file", tc.redisPassword},
		{"--postgres.dsn-file", tc.dsnSecret},
		{"--web.config.file", tc.webConfig},
	} {
		file, ok := args[f.flag]
		if f.secret == "" {
			if ok {
				t.Errorf("%s=%s without a Secret in the values", f.flag, file)
			}
			continue
		}
		if got := mountedSecretKey(exp, volumes, file); got != f.secret {
			t.Errorf("%s=%q reads Secret key %q, want %q", f.flag, file, got, f.secret)
		}
	}
	if file, ok := args["--config.file"]; ok != tc.config || ok && mountedConfigMap(exp, volumes, file) != fullname+"-config" {
		t.Errorf("--config.file=%q: want it (%v) from the ConfigMap %s-config", file, tc.config, fullname)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range exp.Env {
		env[e.Name] = e
	}
	if got := env["BILLING_EXPORTER_POSTGRES_DSN"].Value; got != tc.dsnEnv {
		t.Errorf("BILLING_EXPORTER_POSTGRES_DSN=%q, want %q", got, tc.dsnEnv)
	}
	if got := secretEnv(env["PGPASSWORD"]); got != tc.pgPassword {
		t.Errorf("PGPASSWORD from %q, want %q", got, tc.pgPassword)
	}

	if tc.standalone {
		return pod
	}
	redis := containers["redis"]
	renv := map[string]corev1.EnvVar{}
	for _, e := range redis.Env {
		renv[e.Name] = e
	}
	if got := secretEnv(renv["REDIS_PASSWORD"]); got != tc.redisPassword {
		t.Errorf("Redis's REDIS_PASSWORD from %q, want %q", got, tc.redisPassword)
	}
	if got := slices.Contains(redis.Args, "--requirepass"); got != (tc.redisPassword != "") {
		t.Errorf("Redis args %v: --requirepass %v, want %v", redis.Args, got, tc.redisPassword != "")
	}
	if sc := redis.SecurityContext; sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("Redis runs as %s", fmtID(sc.RunAsUser))
	}
	if !slices.ContainsFunc(redis.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "data" && m.MountPath == "/data" }) {
		t.Errorf("Redis mounts %v, want data on /data", redis.VolumeMounts)
	}
	_, emptyDir := volumes["data"]
	hasClaim := slices.ContainsFunc(claims, func(c corev1.PersistentVolumeClaim) bool { return c.Name == "data" })
	if hasClaim != tc.persistence || emptyDir == tc.persistence {
		t.Errorf("Redis data: claim %v, emptyDir %v; want a claim %v", hasClaim, emptyDir, tc.persistence)
	}
	return pod
}

// fmtID formats a user or group id that may be unset.
func fmtID(id *int64) string {
	if id == nil {
		return "unset"
	}
	return fmt.Sprint(*id)
}

func secretEnv(e corev1.EnvVar) string {
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return ""
	}
	return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
}

// mountedSecretKey returns the Secret/key the container sees at file.
func mountedSecretKey(c corev1.Container, volumes map[string]corev1.Volume, file string) string {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(file) != m.MountPath || m.SubPath != "" {
			continue
		}
		v := volumes[m.Name]
		if v.Secret == nil {
			continue
		}
		for _, it := range v.Secret.Items {
			if it.Path == filepath.Base(file) {
				return v.Secret.SecretName + "/" + it.Key
			}
		}
	}
	return ""
}

func mountedConfigMap(c corev1.Container, volumes map[string]corev1.Volume, file string) string {
	for _, m := range c.VolumeMounts {
		if filepath.Dir(file) == m.MountPath && volumes[m.Name].ConfigMap != nil && filepath.Base(file) == "config.yml" {
			return volumes[m.Name].ConfigMap.Name
		}
	}
	return ""
}

// shippedRules reads the rule files the chart carries, by file name,
// strictly as a PrometheusRule's spec.
func shippedRules(t *testing.T) map[string]monitoringv1.PrometheusRuleSpec {
	t.Helper()
	files, err := filepath.Glob(repoPath(chartDir + "/files/rules/*.rules.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in the chart (%v)", err)
	}
	specs := map[string]monitoringv1.PrometheusRuleSpec{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var spec monitoringv1.PrometheusRuleSpec
		if err := yaml.UnmarshalStrict(b, &spec); err != nil || len(spec.Groups) == 0 {
			t.Fatalf("%s: %v, %d groups", f, err, len(spec.Groups))
		}
		specs[filepath.Base(f)] = spec
	}
	return specs
}

// checkRules checks that the PrometheusRule holds every group of the
// shipped rule files, unchanged (their {{ $labels }} unevaluated), but the
// backend's unless asked for.
func checkRules(t *testing.T, tc chartCase, pr *monitoringv1.PrometheusRule) {
	t.Helper()
	want := map[string]monitoringv1.RuleGroup{}
	var alerts int
	for file, spec := range shippedRules(t) {
		if file == "backend.rules.yml" && !tc.backendRules {
			continue
		}
		for _, g := range spec.Groups {
			want[g.Name] = g
			alerts += len(g.Rules)
		}
	}
	got := map[string]monitoringv1.RuleGroup{}
	var templated bool
	for _, g := range pr.Spec.Groups {
		got[g.Name] = g
		for _, r := range g.Rules {
			for _, a := range r.Annotations {
				templated = templated || strings.Contains(a, "{{ $labels.")
			}
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("PrometheusRule groups %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for name, g := range want {
		if !reflect.DeepEqual(got[name], g) {
			t.Errorf("PrometheusRule group %s differs from the shipped rule file's", name)
		}
	}
	if alerts == 0 || !templated {
		t.Errorf("PrometheusRule: %d alerts; {{ $labels. }} left for Prometheus: %v", alerts, templated)
	}
	if _, ok := got["billing-backend"]; ok != tc.backendRules {
		t.Errorf("backend rules in the PrometheusRule: %v, want %v", ok, tc.backendRules)
	}
}

// checkDashboards checks that the ConfigMap carries every shipped
// dashboard byte for byte, under the Grafana sidecar's label.
func checkDashboards(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboards ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
	}
	files, err := filepath.Glob(repoPath(chartDir + "/files/dashboards/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in the chart (%v)", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := cm.Data[filepath.Base(f)]; got != string(b) {
			t.Errorf("dashboards ConfigMap %s is not the shipped dashboard", filepath.Base(f))
		}
	}
	if got := slices.Sorted(maps.Keys(cm.Data)); !slices.Equal(got, names) {
		t.Errorf("dashboards ConfigMap holds %v, want %v", got, names)
	}
}

// TestChartCopies: the chart's rule and dashboard files are copies of
// alerts/ and dashboards/ (make mixin writes both).
func TestChartCopies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ source, copies string }{
		{"alerts/*.rules.yml", chartDir + "/files/rules/*"},
		{"dashboards/*.json", chartDir + "/files/dashboards/*"},
	} {
		sources, _ := filepath.Glob(repoPath(tc.source))
		copies, _ := filepath.Glob(repoPath(tc.copies))
		base := func(paths []string) []string {
			var names []string
			for _, p := range paths {
				names = append(names, filepath.Base(p))
			}
			return names
		}
		if len(sources) == 0 || !slices.Equal(base(sources), base(copies)) {
			t.Errorf("%s holds %v, want the files of %s: %v (run make mixin)", tc.copies, base(copies), tc.source, base(sources))
			continue
		}
		for i := range sources {
			a, errA := os.ReadFile(sources[i])
			b, errB := os.ReadFile(copies[i])
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Errorf("%s is not a copy of %s (run make mixin)", copies[i], sources[i])
			}
		}
	}
}

// TestChartVersion: the chart's appVersion, and so the default image tag,
// is the exporter's VERSION; the image is the one the release publishes.
func TestChartVersion(t *testing.T) {
	t.Parallel()
	ch, err := loader.Load(repoPath(chartDir))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.AppVersion != version(t) {
		t.Errorf("Chart.yaml appVersion %q, want VERSION %q", ch.Metadata.AppVersion, version(t))
	}
	if ch.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("Chart.yaml apiVersion %q", ch.Metadata.APIVersion)
	}
	vals := ch.Values
	if repo := vals["image"].(map[string]any)["repository"]; repo != imageRepository(t) {
		t.Errorf("image.repository %q, want %q", repo, imageRepository(t))
	}
}

// TestChartValuesDocumented: every value of values.yaml, to the second
// level, has a row in the values table of docs/deployment.md.
func TestChartValuesDocumented(t *testing.T) {
	t.Parallel()
	doc := string(readRepoFile(t, "docs/deployment.md"))
	start := strings.Index(doc, "\n## Helm\n")
	if start < 0 {
		t.Fatal("docs/deployment.md has no Helm section")
	}
	var rows []string
	for _, line := range strings.Split(doc[start:], "\n") {
		if strings.HasPrefix(line, "| `") {
			rows = append(rows, strings.SplitN(line, " | ", 2)[0])
		}
	}
	var vals map[string]any
	if err := yaml.UnmarshalStrict(readRepoFile(t, chartDir+"/values.yaml"), &vals); err != nil {
		t.Fatal(err)
	}
	// documented reports whether a row's first cell names path: in full,
	// as the prefix of a deeper value, as `top.*`, or as `.last` after a
	// sibling named in full.
	documented := func(path string) bool {
		top, _, nested := strings.Cut(path, ".")
		i := strings.LastIndex(path, ".")
		for _, r := range rows {
			if strings.Contains(r, "`"+path+"`") || strings.Contains(r, "`"+path+".") || nested && strings.Contains(r, "`"+top+".*`") ||
				i > 0 && strings.Contains(r, "`"+path[:i+1]) && strings.Contains(r, "`"+path[i:]+"`") {
				return true
			}
		}
		return false
	}
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		sub, ok := vals[key].(map[string]any)
		if !ok || len(sub) == 0 || key == "resources" || strings.HasSuffix(key, "SecurityContext") || key == "securityContext" || strings.HasSuffix(key, "Probe") {
			if !documented(key) {
				t.Errorf("value %s is not in the values table of docs/deployment.md", key)
			}
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(sub)) {
			if !documented(key + "." + k) {
				t.Errorf("value %s.%s is not in the values table of docs/deployment.md", key, k)
			}
		}
	}
}
