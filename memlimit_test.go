package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// memoryCgroup makes a memory cgroup limited to limit bytes for this test
// (cgroup v2, else v1, as root) and returns a wrapper command that runs a
// program in it, or skips when the machine has no writable memory cgroup.
func memoryCgroup(t *testing.T, limit int64) []string {
	t.Helper()
	name := fmt.Sprintf("billing-exporter-test-%d", os.Getpid())
	var dir, limitFile string
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"): // v2
		dir, limitFile = filepath.Join("/sys/fs/cgroup", name), "memory.max"
	case fileExists("/sys/fs/cgroup/memory/memory.limit_in_bytes"): // v1
		dir, limitFile = filepath.Join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"
	default:
		t.Skip("no cgroup memory controller mounted under /sys/fs/cgroup")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup (needs root and a writable cgroup file system): %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		t.Skipf("cannot limit the test cgroup's memory: %v", err)
	}
	// The shell moves itself into the cgroup, then becomes the exporter.
	return []string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, dir}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestMemoryLimitFromCgroup: in a container limited to 512 MiB the Go
// runtime gets a soft memory limit of 90 % of it (go_gc_gomemlimit_bytes),
// or the share --auto-gomemlimit.ratio says; GOMEMLIMIT in the environment
// wins, and --no-auto-gomemlimit leaves the runtime without a limit.
func TestMemoryLimitFromCgroup(t *testing.T) {
	const limit = 512 << 20
	ninety := 0.9
	tests := []struct {
		name string
		env  []string
		args []string
		want float64
	}{
		{"default ratio", nil, nil, float64(uint64(float64(limit) * ninety))},
		{"ratio flag", nil, []string{"--auto-gomemlimit.ratio=0.5"}, limit / 2},
		{"GOMEMLIMIT wins", []string{"GOMEMLIMIT=300MiB"}, nil, 300 << 20},
		{"off", nil, []string{"--no-auto-gomemlimit"}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrapper := memoryCgroup(t, limit)
			e := launchWrappedExporter(t, wrapper, "http", http.DefaultClient, "/-/healthy", tt.env, append([]string{"--demo"}, tt.args...)...)
			if got := e.scrape().MustValue(t, "go_gc_gomemlimit_bytes"); got != tt.want {
				t.Errorf("go_gc_gomemlimit_bytes %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMemoryLimitRatioChecked: a ratio outside (0, 1] stops the exporter
// with one line naming the flag.
func TestMemoryLimitRatioChecked(t *testing.T) {
	for _, ratio := range []string{"0", "1.5", "-0.2", "NaN"} {
		code, stderr := runExit(t, nil, "--demo", "--auto-gomemlimit.ratio="+ratio)
		if code == 0 || !strings.Contains(stderr, "--auto-gomemlimit.ratio") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("ratio %s: exit %d, stderr %q", ratio, code, stderr)
		}
	}
}

// TestGCPercent: without GOGC the exporter runs the Go collector at 50 %
// (go_gc_gogc_percent), since its heap is mostly state kept between
// scrapes; GOGC in the environment wins.
func TestGCPercent(t *testing.T) {
	if v, set := os.LookupEnv("GOGC"); set {
		os.Unsetenv("GOGC")
		t.Cleanup(func() { os.Setenv("GOGC", v) })
	}
	for _, tt := range []struct {
		name string
		env  []string
		want float64
	}{
		{"default", nil, 50},
		{"GOGC wins", []string{"GOGC=100"}, 100},
		{"GOGC above the default", []string{"GOGC=200"}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := startExporter(t, tt.env, "--demo")
			if got := e.scrape().MustValue(t, "go_gc_gogc_percent"); got != tt.want {
				t.Errorf("go_gc_gogc_percent %v, want %v", got, tt.want)
			}
		})
	}
}
