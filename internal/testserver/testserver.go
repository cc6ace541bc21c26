// Package testserver starts throwaway servers (redis-server, PostgreSQL,
// Prometheus) for tests: each on a free loopback port, in a temp dir, stopped
// when the test ends. Tests never talk to a server they did not start.
package testserver

import (
	"fmt"
	"net"
	"os/exec"
	"time"
)

// TB is the part of testing.TB that the redis-server and PostgreSQL
// launchers use, so that a program other than a test (bench) can start the
// same servers: testing.TB satisfies it, and another implementation's
// Fatal and Fatalf must end the calling goroutine as testing's do.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pickPort picks a server's port: FreePort, which a test replaces to hand
// out a port that is taken.
var pickPort = FreePort

// RequireBinary skips nothing: a missing server binary is a broken test
// environment, and `make test` installs them. It fails with the package to
// install.
func RequireBinary(t TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: install the Debian package %s (make test does)", name, debianPackage)
	}
	return path
}

// waitFor polls ready until it returns nil or the timeout passes.
func waitFor(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %w", timeout, err)
}
