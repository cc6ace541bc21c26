//go:build release

package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeRelease runs `make release` (make test-release) and checks what
// a user downloads: a tarball per crossbuild platform of .promu.yml with
// a binary for that platform built by a Go with the security fixes, a
// CycloneDX SBOM per platform naming the exporter's direct dependencies,
// and sha256sums.txt giving the right digest of every other file.
func TestMakeRelease(t *testing.T) {
	if out, err := exec.Command("make", "--no-print-directory", "release").CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	rawVersion, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	ver := strings.TrimSpace(string(rawVersion))
	const dir = ".tarballs"

	sums, err := readChecksums(filepath.Join(dir, "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "sha256sums.txt" {
			continue
		}
		want, ok := sums[e.Name()]
		if !ok {
			t.Errorf("%s is not listed in sha256sums.txt", e.Name())
			continue
		}
		if got := fileSHA256(t, filepath.Join(dir, e.Name())); got != want {
			t.Errorf("sha256sums.txt gives %s for %s, its digest is %s", want, e.Name(), got)
		}
		delete(sums, e.Name())
	}
	for name := range sums {
		t.Errorf("sha256sums.txt lists %s, which is not in %s", name, dir)
	}

	platforms := crossbuildPlatforms(t)
	if len(platforms) == 0 {
		t.Fatal(".promu.yml lists no crossbuild platform")
	}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		t.Run(goos+"-"+goarch, func(t *testing.T) {
			base := fmt.Sprintf("billing_exporter-%s.%s-%s", ver, goos, goarch)
			checkTarball(t, filepath.Join(dir, base+".tar.gz"), base, goarch)
			checkSBOM(t, filepath.Join(dir, base+".sbom.json"), ver, goos, goarch)
		})
	}
}

// readChecksums parses promu's sha256sums.txt: "<hex digest>  <name>" lines.
func readChecksums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		digest, name, ok := strings.Cut(sc.Text(), "  ")
		if _, err := hex.DecodeString(digest); !ok || err != nil || len(digest) != 2*sha256.Size || name == "" {
			return nil, fmt.Errorf("%s: malformed line %q", path, sc.Text())
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("%s: %s listed twice", path, name)
		}
		sums[name] = digest
	}
	return sums, sc.Err()
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkTarball checks that the tarball holds, under base/, the binary for
// goarch and the files .promu.yml lists.
func checkTarball(t *testing.T, path, base, goarch string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the release has no tarball for %s: %v", goarch, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(zr)
	want := map[string]bool{"billing_exporter": false, "LICENSE": false, "NOTICE": false, "README.md": false, "CHANGELOG.md": false}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name, ok := strings.CutPrefix(hdr.Name, base+"/")
		if !ok {
			t.Errorf("%s: %s is outside %s/", path, hdr.Name, base)
			continue
		}
		if _, listed := want[name]; listed {
			want[name] = true
		}
		if name == "billing_exporter" {
			checkReleaseBinary(t, tr, goarch)
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("%s has no %s/%s", path, base, name)
		}
	}
}

// checkReleaseBinary checks the binary's architecture and the Go that
// built it.
func checkReleaseBinary(t *testing.T, r io.Reader, goarch string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "billing_exporter")
	w, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(tmp)
	if err != nil {
		t.Fatalf("the tarball's binary is not ELF: %v", err)
	}
	defer ef.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[goarch]
	if ef.Machine != machine {
		t.Errorf("the tarball's binary is for %v, want %v", ef.Machine, machine)
	}
	info, err := buildinfo.ReadFile(tmp)
	if err != nil {
		t.Fatalf("reading the build information of the tarball's binary: %v", err)
	}
	if version.Compare(info.GoVersion, minReleaseGo) < 0 {
		t.Errorf("the tarball's binary was built by %s, want %s or newer", info.GoVersion, minReleaseGo)
	}
}

// cycloneDX is the part of a CycloneDX JSON BOM that the test reads.
type cycloneDX struct {
	BOMFormat   string `json:"bomFormat"`
	SpecVersion string `json:"specVersion"`
	Metadata    struct {
		Component struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		} `json:"component"`
	} `json:"metadata"`
	Components []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	} `json:"components"`
}

// checkSBOM checks that the SBOM is CycloneDX JSON describing the exporter
// at VERSION for goos/goarch, built by a Go with the security fixes, and
// naming, at go.mod's version, every direct dependency linked into the
// binary.
func checkSBOM(t *testing.T, path, ver, goos, goarch string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the release has no SBOM for %s/%s: %v", goos, goarch, err)
	}
	var bom cycloneDX
	if err := json.Unmarshal(raw, &bom); err != nil {
		t.Fatalf("%s is not JSON: %v", path, err)
	}
	if bom.BOMFormat != "CycloneDX" || !strings.HasPrefix(bom.SpecVersion, "1.") {
		t.Errorf("%s: bomFormat %q, specVersion %q; want CycloneDX 1.x", path, bom.BOMFormat, bom.SpecVersion)
	}
	exporter := bom.Metadata.Component
	if exporter.Name != "github.com/billing-exporter/billing_exporter" || exporter.Version != "v"+ver {
		t.Errorf("%s: the main component is %s %s, want the exporter's module at v%s", path, exporter.Name, exporter.Version, ver)
	}
	if q := purlQualifiers(t, exporter.PURL); q.Get("goos") != goos || q.Get("goarch") != goarch {
		t.Errorf("%s: the main component's purl %s is not for %s/%s", path, exporter.PURL, goos, goarch)
	}
	listed := map[string]string{}
	for _, c := range bom.Components {
		listed[c.Name] = c.Version
	}
	if std, ok := listed["std"]; !ok || version.Compare(std, minReleaseGo) < 0 {
		t.Errorf("%s: the standard library component is %q, want %s or newer", path, std, minReleaseGo)
	}
	direct := 0
	for _, m := range linkedModules(t, goos, goarch) {
		if m.Indirect {
			continue
		}
		direct++
		if got, ok := listed[m.Path]; !ok || got != m.Version {
			t.Errorf("%s: the direct dependency %s %s is listed as %q", path, m.Path, m.Version, got)
		}
	}
	if direct == 0 {
		t.Fatal("go list found no direct dependency linked into the binary")
	}
}

// purlQualifiers returns the qualifiers (after "?") of a package URL.
func purlQualifiers(t *testing.T, purl string) url.Values {
	t.Helper()
	_, query, _ := strings.Cut(purl, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Errorf("purl %s: %v", purl, err)
	}
	return q
}
