// Package server serves the exporter's HTTP endpoints around its two views
// (collector and api): health, landing page, connection limits, shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// Health answers /-/healthy and /-/ready without reading a data source, as
// an unready sidecar would take Redis itself out of its Service.
func Health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("OK\n"))
	}
}

// CheckTelemetryPath refuses paths the mux cannot take or that would shadow
// the exporter's other endpoints.
func CheckTelemetryPath(path string, apiDisabled, pprofEnabled bool) error {
	switch {
	case pprofEnabled && isPprofPath(path):
		return fmt.Errorf("%q is under %s, where --web.enable-pprof serves the profiles", path, PprofPrefix)
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%q must start with /", path)
	case path == "/-/healthy" || path == "/-/ready":
		return fmt.Errorf("%q is the health endpoint", path)
	case path == "/-/reload":
		return fmt.Errorf("%q is the reload endpoint", path)
	case !apiDisabled && (path == "/api" || strings.HasPrefix(path, "/api/")):
		return fmt.Errorf("%q is under the API's /api/ (or use --web.disable-api)", path)
	case strings.ContainsAny(path, " {}"):
		return fmt.Errorf("%q is not a plain path", path)
	}
	return nil
}

// Landing returns the landing page, linking the API and the pages when
// served; cpuProfileSeconds > 0 links the profiles HandlePprof serves, the
// CPU profile that many seconds long.
func Landing(description, version, telemetryPath string, withAPI, withPages bool, cpuProfileSeconds int) (http.Handler, error) {
	cfg := web.LandingConfig{
		Name:        "Billing Exporter",
		Description: description,
		Version:     version,
		// The toolkit's own profiling links point outside the exporter
		// and at a CPU profile longer than the write timeout allows.
		Profiling: "false",
		Links: []web.LandingLinks{
			{Address: telemetryPath, Text: "Metrics"},
			{Address: "/-/healthy", Text: "Health", Description: "liveness and readiness; reads no data source"},
		},
	}
	if withPages {
		cfg.Links = append(cfg.Links, web.LandingLinks{
			Address: "/tenants", Text: "Tenants that need attention",
			Description: "near a limit, at or over it, or on course to run out this period, most pressed first (HTML, with a CSV download)",
		})
	}
	if withAPI {
		cfg.Links = append(cfg.Links, web.LandingLinks{
			Address: "/api/v1/openapi.yaml", Text: "API (OpenAPI document)",
			Description: "read-only JSON: /api/v1/tenants/{tenant_id}/usage, /api/v1/tenants, /api/v1/plans",
		}, web.LandingLinks{
			Address: fmt.Sprintf("/api/v1/tenants?limit_type=messages&min_percentage=%d", billing.NearLimitPercent), Text: "Tenants near a limit",
			Description: fmt.Sprintf("the near-limit list: tenants at or above %d%% of their messages limit, highest first (JSON)", billing.NearLimitPercent),
		})
	}
	if cpuProfileSeconds > 0 {
		cfg.Links = append(cfg.Links, web.LandingLinks{
			Address: PprofPrefix, Text: "Profiles",
			Description: "the Go runtime's profiles (pprof, --web.enable-pprof)",
		}, web.LandingLinks{
			Address: PprofPrefix + "heap", Text: "Heap profile", Description: "memory in use (pprof format)",
		}, web.LandingLinks{
			Address: fmt.Sprintf("%sprofile?seconds=%d", PprofPrefix, cpuProfileSeconds), Text: "CPU profile",
			Description: fmt.Sprintf("%d seconds of CPU usage (pprof format)", cpuProfileSeconds),
		})
	}
	landing, err := web.NewLandingPage(cfg)
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	return landing, nil
}

// ListenPort returns ":port" of the first listen address, for the demo's hint.
func ListenPort(webConfig *web.FlagConfig) string {
	if webConfig.WebListenAddresses == nil || len(*webConfig.WebListenAddresses) == 0 {
		return ""
	}
	addr := (*webConfig.WebListenAddresses)[0]
	if _, port, err := net.SplitHostPort(addr); err == nil {
		return ":" + port
	}
	return strings.TrimPrefix(addr, "localhost")
}

// writeTimeout bounds the reading of a request and the writing of its
// response together.
func writeTimeout(maxTimeout time.Duration) time.Duration {
	return 2*maxTimeout + 5*time.Second
}

// Serve serves until SIGINT or SIGTERM, then shuts down gracefully; a read
// and the writing of its response each get about maxTimeout.
func Serve(logger *slog.Logger, handler http.Handler, webConfig *web.FlagConfig, maxTimeout, idleTimeout time.Duration, maxConnections int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: maxTimeout,
		ReadTimeout:       maxTimeout,
		WriteTimeout:      writeTimeout(maxTimeout),
		IdleTimeout:       idleTimeout,
	}
	if maxConnections > 0 {
		limiter := &connLimiter{max: maxConnections, conns: map[net.Conn]time.Time{}}
		srv.ConnState = limiter.track
	}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, webConfig, logger) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
