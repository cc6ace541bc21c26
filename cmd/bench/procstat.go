package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/procfs"
)

// cpuTime is the user+system CPU time of a process, all its threads, from
// /proc/PID/stat (resolution 1/USER_HZ, 10 ms on Linux).
func cpuTime(pid int) (time.Duration, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	s, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// CPUTime is in seconds, a multiple of 1/USER_HZ: rounded to the
	// nanosecond, it is exact.
	return time.Duration(math.Round(s.CPUTime() * float64(time.Second))), nil
}

// peakRSS is VmHWM, the process's peak resident set size, in bytes.
func peakRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	s, err := p.NewStatus()
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	if s.VmHWM == 0 {
		return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
	}
	return int64(s.VmHWM), nil
}

// resetPeakRSS sets the process's VmHWM back to its current RSS (Linux's
// clear_refs, value 5), so that a later peakRSS is the peak since now: the
// peak of a set of scrapes, apart from what the process reached before
// them (the seed of the mirror, the earlier rows).
func resetPeakRSS(pid int) error {
	path := "/proc/" + strconv.Itoa(pid) + "/clear_refs"
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak RSS of process %d: %w", pid, err)
	}
	return nil
}
