package billing

import (
	"log/slog"
	"sync"
)

// failureLog logs a source's failures on change rather than once per read:
// the first failure, and each change of error, is one WARN; while the same
// error repeats only a count grows; the first success after failures is
// one INFO with how many there were. A Redis or PostgreSQL outage is then
// a few lines however often Prometheus scrapes and the API is called.
type failureLog struct {
	logger *slog.Logger
	what   string // "reading usage from Redis", …

	mu       sync.Mutex
	last     string // the current error's text, "" while it works
	failures int    // reads failed since it last worked
}

// observe records the outcome of one attempt.
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
