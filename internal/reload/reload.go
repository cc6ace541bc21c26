// Package reload reloads on SIGHUP and POST /-/reload, as Prometheus does.
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

// Reloader runs one reload at a time.
type Reloader struct {
	apply  func() error
	logger *slog.Logger

	mu         sync.Mutex
	successful prometheus.Gauge
	timestamp  prometheus.Gauge
}

// New returns a Reloader; a failed apply must leave the old configuration.
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

func (r *Reloader) reload(trigger string) error {
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

// ServeHTTP reloads on POST.
func (r *Reloader) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := r.reload("http"); err != nil {
		http.Error(w, "reload failed, previous configuration kept: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("OK\n"))
}

// WatchSIGHUP reloads on SIGHUP until ctx ends.
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
				_ = r.reload("SIGHUP") // logged
			}
		}
	}()
}
