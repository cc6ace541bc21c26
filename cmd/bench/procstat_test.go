package main

import (
	"os"
	"syscall"
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

// TestResetPeakRSS checks that after a reset the peak is the peak since:
// 64 MiB mapped, touched and unmapped before the reset no longer counts.
func TestResetPeakRSS(t *testing.T) {
	pid := os.Getpid()
	const size = 64 << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	if err := syscall.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	before, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := resetPeakRSS(pid); err != nil {
		t.Fatal(err)
	}
	after, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after > before-size/2 {
		t.Errorf("peak RSS %d bytes after the reset, %d before: the unmapped %d bytes still count", after, before, size)
	}
	if err := resetPeakRSS(-1); err == nil {
		t.Error("resetPeakRSS of pid -1: no error")
	}
}
