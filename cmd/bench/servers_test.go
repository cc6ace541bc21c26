package main

import (
	"strings"
	"syscall"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestLaunch: a launcher's Fatalf is launch's error, and what it had
// registered is cleaned up with the runner's stack.
func TestLaunch(t *testing.T) {
	mark := cl.mark()
	cleaned := false
	_, err := launch(t.TempDir(), func(tb testserver.TB) int {
		tb.Cleanup(func() { cleaned = true })
		tb.Fatalf("no %s", "server")
		return 1
	})
	if err == nil || err.Error() != "no server" {
		t.Errorf("launch error %v, want no server", err)
	}
	cl.unwind(mark)
	if !cleaned {
		t.Error("the failed launcher's cleanup did not run")
	}
}

// TestStartRedis: bench's redis-server is testserver's, reachable, with a
// pid to measure, and stopped when the runner unwinds.
func TestStartRedis(t *testing.T) {
	mark := cl.mark()
	defer cl.unwind(mark)
	r, err := startRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if pong, err := r.do("PING"); err != nil || pong != "PONG" {
		t.Fatalf("PING: %v %v", pong, err)
	}
	pid := r.pid()
	if _, err := cpuTime(pid); err != nil {
		t.Fatalf("cpuTime of redis-server: %v", err)
	}
	cl.unwind(mark)
	if _, err := r.do("PING"); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("PING after unwind: %v, want a refused connection", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("redis-server %d still running after unwind", pid)
	}
}
