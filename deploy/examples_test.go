package deploy

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const examplesDir = "examples/kubernetes"

// exampleObjects decodes, strictly, every object of the files.
func exampleObjects(t *testing.T, files []string) map[string]object {
	t.Helper()
	objs := map[string]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := decodeStrict(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(decoded) == 0 {
			t.Errorf("%s holds no object", f)
		}
		for _, o := range decoded {
			key := o.Kind + "/" + o.Name
			if prev, dup := objs[key]; dup {
				t.Errorf("%s in %s and %s", key, prev.Source, f)
			}
			objs[key] = o
		}
	}
	return objs
}

// TestExampleManifests decodes every manifest of examples/kubernetes and
// its placeholder Secrets into the API types, and checks that the exporter
// runs an image a user can pull.
func TestExampleManifests(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(repoPath(examplesDir + "/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
	secrets, err := filepath.Glob(repoPath(examplesDir + "/secret-example/*.yaml"))
	if err != nil || len(files) == 0 || len(secrets) == 0 {
		t.Fatalf("manifests %v, Secrets %v (%v)", files, secrets, err)
	}
	objs := exampleObjects(t, append(files, secrets...))
	sts, ok := objs["StatefulSet/billing-redis"]
	if !ok {
		t.Fatalf("no StatefulSet/billing-redis in %v", slices.Sorted(maps.Keys(objs)))
	}
	want := imageRepository(t) + ":" + version(t)
	var seen bool
	for _, c := range sts.Value.(*appsv1.StatefulSet).Spec.Template.Spec.Containers {
		if c.Name == "billing-exporter" {
			seen = true
			if c.Image != want {
				t.Errorf("the exporter's image %q, want %q (the published image)", c.Image, want)
			}
		}
	}
	if !seen {
		t.Error("no billing-exporter container")
	}
}

// kustomize builds dir with kubectl kustomize and decodes what it gives
// strictly.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl (kustomize): %v; make test-deploy installs it", err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr)
	}
	built, err := decodeStrict("kubectl kustomize "+dir, out)
	if err != nil {
		t.Fatal(err)
	}
	return built
}

// TestKustomize builds examples/kubernetes with kubectl kustomize: the
// objects it gives decode strictly and are those of the listed manifests,
// no Secret among them.
func TestKustomize(t *testing.T) {
	t.Parallel()
	built := kustomize(t, repoPath(examplesDir))
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, examplesDir+"/kustomization.yaml"), &k); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range k.Resources {
		files = append(files, repoPath(examplesDir+"/"+r))
	}
	listed := exampleObjects(t, files)
	var got []string
	for _, o := range built {
		got = append(got, o.Kind+"/"+o.Name)
		if o.Kind == "Secret" {
			t.Errorf("the kustomize base holds Secret/%s: applying it would replace the real one", o.Name)
		}
	}
	if want := slices.Sorted(maps.Keys(listed)); len(want) == 0 || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("kubectl kustomize gives %v, want %v", slices.Sorted(slices.Values(got)), want)
	}
	if !slices.Contains(got, "PrometheusRule/billing-exporter") {
		t.Error("the kustomize base lacks the PrometheusRule")
	}
}

// TestKustomizeOverlay uses examples/kubernetes as the base of an overlay
// that sets the namespace and the exporter's image tag, as
// docs/deployment.md shows.
func TestKustomizeOverlay(t *testing.T) {
	t.Parallel()
	base, err := filepath.Abs(repoPath(examplesDir))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// kustomize takes a base by a relative path only.
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	overlay := "resources:\n  - " + rel + "\nnamespace: billing\nimages:\n  - name: " + imageRepository(t) + "\n    newTag: 9.9.9\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, o := range kustomize(t, dir) {
		if ns := o.Value.(metav1.Object).GetNamespace(); ns != "billing" {
			t.Errorf("%s/%s in namespace %q, want billing", o.Kind, o.Name, ns)
		}
		if sts, ok := o.Value.(*appsv1.StatefulSet); ok {
			for _, c := range sts.Spec.Template.Spec.Containers {
				images = append(images, c.Image)
			}
		}
	}
	if want := imageRepository(t) + ":9.9.9"; !slices.Contains(images, want) {
		t.Errorf("the overlay's images %v, want %s among them", images, want)
	}
}
