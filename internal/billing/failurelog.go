package billing

import (
	"log/slog"
	"sync"
)

// failureLog logs errors on change, so an outage is few lines.
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
	if msg := err.Error(); msg != f.last {
		f.last = msg
		f.logger.Warn(f.what+" failed (logged again when the error changes or it recovers)",
			append(attrs, "err", err, "failures", f.failures)...)
	}
}
