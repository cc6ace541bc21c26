package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gomodule/redigo/redis"
)

func opError(op string, localPort int, err error) error {
	return fmt.Errorf("SCAN: %w", &net.OpError{Op: op, Net: "tcp",
		Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: localPort},
		Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379}, Err: err})
}

func TestFailureLog(t *testing.T) {
	timeout := func(port int) error { return opError("read", port, os.ErrDeadlineExceeded) }
	refused := &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		errs []error // nil: a success
		want int     // lines logged
	}{
		{"timeouts differing in the local port", []error{timeout(50001), timeout(50002), timeout(50003)}, 1},
		{"refusals", []error{opError("dial", 0, refused), opError("dial", 0, refused)}, 1},
		{"redis errors on different keys", []error{
			fmt.Errorf("HGETALL %q: %w", "usage:1:202611", errors.New("LOADING Redis is loading the dataset in memory")),
			fmt.Errorf("HGETALL %q: %w", "usage:2:202611", errors.New("LOADING Redis is loading the dataset in memory")),
		}, 1},
		{"a change of kind", []error{timeout(50001), opError("dial", 0, refused), redis.Error("NOAUTH Authentication required."),
			fmt.Errorf("read: %w", context.DeadlineExceeded), timeout(50002)}, 5},
		{"recovery", []error{timeout(50001), nil, timeout(50002)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			f := failureLog{logger: slog.New(slog.NewTextHandler(&out, nil)), what: "reading usage from Redis"}
			for _, err := range tc.errs {
				f.observe(err)
			}
			if got := strings.Count(out.String(), "\n"); got != tc.want {
				t.Errorf("%d lines logged, want %d:\n%s", got, tc.want, out.String())
			}
		})
	}
}

func TestErrorKind(t *testing.T) {
	for err, want := range map[error]string{
		opError("read", 50001, os.ErrDeadlineExceeded):                                      "read: timeout",
		opError("dial", 0, &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}): "dial: connection refused",
		opError("read", 50001, &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}):  "read: connection reset by peer",
		fmt.Errorf("SCAN: %w", errors.New("NOPERM no permissions")):                         "NOPERM no permissions",
		fmt.Errorf("read: %w", context.DeadlineExceeded):                                    "context deadline exceeded",
	} {
		if got := errorKind(err); got != want {
			t.Errorf("errorKind(%v) = %q, want %q", err, got, want)
		}
	}
}
