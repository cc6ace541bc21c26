package main

import (
	"debug/buildinfo"
	"debug/elf"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// minReleaseGo is the oldest Go whose standard library has the fixes for
// every vulnerability govulncheck reports as reachable from the exporter.
const minReleaseGo = "go1.26.10"

// TestMakeBuildIsStaticAndVersioned runs the build the README gives
// (`make build`) and checks what a user gets: a binary that needs no C
// library (it runs on the busybox base and in distroless images), built by
// a Go with the standard library's security fixes, and whose --version
// names the VERSION file and the commit.
func TestMakeBuildIsStaticAndVersioned(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make (the README's build command) is not installed: %v", err)
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the test needs the git checkout): %v", err)
	}
	wantVersion, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	if out, err := exec.Command("make", "--no-print-directory", "build", "PREFIX="+prefix).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	bin := filepath.Join(prefix, "billing_exporter")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("make build did not produce an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter (PT_INTERP): it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading the build information of %s: %v", bin, err)
	}
	if !version.IsValid(info.GoVersion) || version.Compare(info.GoVersion, minReleaseGo) < 0 {
		t.Errorf("make build used %s, want %s or newer (RELEASE_GOTOOLCHAIN in the Makefile)", info.GoVersion, minReleaseGo)
	}

	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	for _, want := range []string{
		"version " + strings.TrimSpace(string(wantVersion)) + " ",
		"revision: " + strings.TrimSpace(string(rev)),
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version says %q, want it to contain %q", out, want)
		}
	}
}

// TestChangelogHasCurrentVersion: CHANGELOG.md has an entry for VERSION in
// the Prometheus projects' format (`## X.Y.Z / YYYY-MM-DD`, changes ordered
// CHANGE, FEATURE, ENHANCEMENT, BUGFIX), as promu checks it before a
// release.
func TestChangelogHasCurrentVersion(t *testing.T) {
	out, err := exec.Command("go", "tool", "-modfile=tools/go.mod", "promu", "check", "changelog").CombinedOutput()
	if err != nil {
		t.Fatalf("promu check changelog: %v\n%s", err, out)
	}
}
