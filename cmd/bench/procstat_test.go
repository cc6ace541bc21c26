package main

import (
	"os"
	"testing"
)

func TestProcStat(t *testing.T) {
	pid := os.Getpid()
	// Touch 64 MiB so that the peak resident set is at least that.
	const size = 64 << 20
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	rss, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss < size {
		t.Errorf("peak RSS %d bytes after touching %d", rss, size)
	}
	before, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has charged at least one more tick.
	x := 0
	for i := 0; ; i++ {
		x += i
		if i%(1<<20) != 0 {
			continue
		}
		after, err := cpuTime(pid)
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			break
		}
	}
	_ = x
	if _, err := cpuTime(-1); err == nil {
		t.Error("cpuTime of pid -1: no error")
	}
	if _, err := peakRSS(-1); err == nil {
		t.Error("peakRSS of pid -1: no error")
	}
	buf[0] = 2 // keep buf alive past the RSS read
}
