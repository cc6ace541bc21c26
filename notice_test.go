package main

import (
	"bufio"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// linkedModule is a module with a package linked into the release binary.
type linkedModule struct {
	Path, Version, Dir string
	Indirect           bool
}

// linkedModules returns the modules whose packages the release build
// (-tags netgo, CGO_ENABLED=0) links into the binary for goos/goarch,
// keyed by path.
func linkedModules(t *testing.T, goos, goarch string) map[string]linkedModule {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", "netgo", "-deps",
		"-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Indirect}} {{.Dir}}{{end}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps for %s/%s: %v", goos, goarch, err)
	}
	mods := map[string]linkedModule{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		mods[f[0]] = linkedModule{Path: f[0], Version: f[1], Indirect: f[2] == "true", Dir: f[3]}
	}
	return mods
}

// crossbuildPlatforms returns the OS/ARCH pairs of .promu.yml that the
// Makefile builds releases for.
func crossbuildPlatforms(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("make", "--no-print-directory", "-s",
		"--eval=print-platforms: ; @echo $(CROSSBUILD_PLATFORMS)", "print-platforms").Output()
	if err != nil {
		t.Fatalf("make print-platforms: %v", err)
	}
	return strings.Fields(string(out))
}

// moduleNotice returns the NOTICE file that a module licensed under
// Apache-2.0 ships at its root, if it does: the licence asks for it to be
// passed on with the binary.
func moduleNotice(t *testing.T, dir string) (string, bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("module directory: %v", err)
	}
	var notice string
	apache := false
	for _, e := range entries {
		name := strings.ToUpper(e.Name())
		switch {
		case e.IsDir():
		case name == "NOTICE" || strings.HasPrefix(name, "NOTICE."):
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			notice = string(b)
		case strings.HasPrefix(name, "LICENSE") || strings.HasPrefix(name, "LICENCE"):
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			apache = apache || strings.Contains(string(b), "Apache License")
		}
	}
	return notice, apache && notice != ""
}

// noticeSections splits the repository's NOTICE into its third-party
// sections, keyed by the module path of their "== path" heading.
func noticeSections(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("NOTICE")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections := map[string]string{}
	current := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if path, ok := strings.CutPrefix(line, "== "); ok {
			current = strings.TrimSpace(path)
			if _, dup := sections[current]; dup {
				t.Errorf("NOTICE has two sections for %s", current)
			}
			sections[current] = ""
			continue
		}
		if current != "" {
			sections[current] += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sections
}

// TestNoticeCoversLinkedModules checks NOTICE against the modules linked
// into the release binaries: every Apache-2.0 module that ships a NOTICE
// has a section carrying its copyright lines, and no section names a
// module that is not linked or ships no NOTICE.
func TestNoticeCoversLinkedModules(t *testing.T) {
	t.Parallel()
	want := map[string]string{} // module path -> its NOTICE
	for _, p := range crossbuildPlatforms(t) {
		goos, goarch, _ := strings.Cut(p, "/")
		for path, m := range linkedModules(t, goos, goarch) {
			if notice, ok := moduleNotice(t, m.Dir); ok {
				want[path] = notice
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("no linked module ships a NOTICE: the module list is wrong")
	}
	sections := noticeSections(t)
	for _, path := range slices.Sorted(maps.Keys(want)) {
		section, ok := sections[path]
		if !ok {
			t.Errorf("NOTICE has no \"== %s\" section; the module is linked and its NOTICE reads:\n%s", path, want[path])
			continue
		}
		for line := range strings.Lines(want[path]) {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "Copyright") && !strings.Contains(section, line) {
				t.Errorf("NOTICE's %s section lacks its notice's %q", path, line)
			}
		}
	}
	for path := range sections {
		if _, ok := want[path]; !ok {
			t.Errorf("NOTICE has a section for %s, which is not linked into the binary or ships no NOTICE", path)
		}
	}
}
