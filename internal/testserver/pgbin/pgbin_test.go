package pgbin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBinDir(t *testing.T) {
	dir, err := BinDir()
	if err != nil {
		t.Fatalf("%v (make test installs %s)", err, debianPackage)
	}
	if !hasBinaries(dir) {
		t.Errorf("BinDir() = %s, which lacks initdb, pg_ctl or postgres", dir)
	}
	if hasBinaries(t.TempDir()) {
		t.Error("an empty directory passes for a PostgreSQL bin directory")
	}
}

func TestWorldTraversable(t *testing.T) {
	base, err := TraversableTempDir()
	if err != nil {
		t.Fatal(err)
	}
	open, err := os.MkdirTemp(base, "pgbin-open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	closed := filepath.Join(open, "closed")
	for dir, perm := range map[string]os.FileMode{open: 0o755, closed: 0o700} {
		if err := os.MkdirAll(dir, perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, perm); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]bool{open: true, closed: false, filepath.Join(closed, "inner"): false, "/nonexistent-pgbin": false}
	for dir, want := range cases {
		if got := worldTraversable(dir); got != want {
			t.Errorf("worldTraversable(%s) = %v, want %v", dir, got, want)
		}
	}
}
