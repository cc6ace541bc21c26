// Package reload runs the exporter's reloads, on SIGHUP and on
// POST /-/reload, as Prometheus and Alertmanager do: one at a time, each
// logged and counted in billing_exporter_config_last_reload_successful and
// billing_exporter_config_last_reload_success_timestamp_seconds. What a
// reload reads and how it swaps the new configuration in is the caller's
// function; this package only decides when it runs and reports how it went.
package reload

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloader runs a reload function on demand. It is safe for concurrent use.
type Reloader struct {
	apply  func() error
	logger *slog.Logger

	mu         sync.Mutex // one reload at a time
	successful prometheus.Gauge
	timestamp  prometheus.Gauge
}

// New returns a Reloader running apply, which must read and validate the
// whole new configuration before it replaces the old one, and leave the
// old one in force when it returns an error. The start counts as the first
// successful load.
func New(reg prometheus.Registerer, logger *slog.Logger, apply func() error) *Reloader {
	r := &Reloader{
		apply:  apply,
		logger: logger,
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_exporter_config_last_reload_successful",
			Help: "Whether the last reload of the configuration files (--config.file, --plans.file, secrets, Redis TLS files) succeeded (1) or kept the previous configuration (0).",
		}),
		timestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the configuration files, at start or by a reload.",
		}),
	}
	reg.MustRegister(r.successful, r.timestamp)
	r.successful.Set(1)
	r.timestamp.SetToCurrentTime()
	return r
}

// Reload runs the reload function once, after any reload in progress.
func (r *Reloader) Reload(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	if err := r.apply(); err != nil {
		r.successful.Set(0)
		r.logger.Error("reload failed: keeping the previous configuration", "trigger", trigger, "err", err)
		return err
	}
	r.successful.Set(1)
	r.timestamp.SetToCurrentTime()
	r.logger.Info("configuration reloaded", "trigger", trigger, "duration", time.Since(start))
	return nil
}

// ServeHTTP is /-/reload: POST reloads and answers 200, or 500 with the
// reason the new configuration was refused; other methods get 405.
func (r *Reloader) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := r.Reload("http"); err != nil {
		http.Error(w, "reload failed, previous configuration kept: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("OK\n"))
}

// WatchSIGHUP reloads on every SIGHUP until ctx ends. It takes SIGHUP over
// at once: without it, the signal's default action ends the process.
func (r *Reloader) WatchSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = r.Reload("SIGHUP") // logged and counted by Reload
			}
		}
	}()
}
