package billing

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
)

// failureLog logs errors on a change of kind, so an outage is few lines.
type failureLog struct {
	logger *slog.Logger
	what   string

	mu       sync.Mutex
	last     string
	failures int
}

func (f *failureLog) observe(err error, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		if f.failures > 0 {
			f.logger.Info(f.what+" works again", append(attrs, "failures", f.failures)...)
		}
		f.last, f.failures = "", 0
		return
	}
	f.failures++
	if kind := errorKind(err); kind != f.last {
		f.last = kind
		f.logger.Warn(f.what+" failed (logged again when the kind of error changes or it recovers)",
			append(attrs, "err", err, "failures", f.failures)...)
	}
}

// errorKind names the cause of err without what differs between two errors
// of one cause: addresses, ports, keys.
func errorKind(err error) string {
	if op, ok := errors.AsType[*net.OpError](err); ok {
		var errno syscall.Errno
		switch {
		case op.Timeout():
			return op.Op + ": timeout"
		case errors.As(op.Err, &errno):
			return op.Op + ": " + errno.Error()
		}
		return op.Op + ": " + innermost(op.Err).Error()
	}
	return innermost(err).Error()
}

func innermost(err error) error {
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return err
}
