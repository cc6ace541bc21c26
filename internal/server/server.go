// Package server is the exporter's HTTP surface around its two views
// (collector and api): the health endpoints, the landing page, the check of
// the telemetry path, and serving with exporter-toolkit until a signal asks
// for a graceful shutdown.
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
)

// Health answers liveness and readiness probes (/-/healthy, /-/ready)
// without reading Redis or PostgreSQL. Readiness deliberately does not
// follow Redis: as a sidecar the exporter shares a pod with Redis, and an
// unready sidecar would take Redis itself out of its Service; a Redis
// outage is reported as billing_redis_up 0 instead, which only a serving
// exporter can do.
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
func CheckTelemetryPath(path string, apiDisabled bool) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("%q must start with /", path)
	case path == "/-/healthy" || path == "/-/ready":
		return fmt.Errorf("%q is the health endpoint", path)
	case !apiDisabled && (path == "/api" || strings.HasPrefix(path, "/api/")):
		return fmt.Errorf("%q is under the API's /api/ (or use --web.disable-api)", path)
	case strings.ContainsAny(path, " {}"):
		return fmt.Errorf("%q is not a plain path", path)
	}
	return nil
}

// Landing returns the landing page: links to the metrics, the health
// endpoint and, unless disabled, the API's OpenAPI document.
func Landing(description, version, telemetryPath string, withAPI bool) (http.Handler, error) {
	cfg := web.LandingConfig{
		Name:        "Billing Exporter",
		Description: description,
		Version:     version,
		Links: []web.LandingLinks{
			{Address: telemetryPath, Text: "Metrics"},
			{Address: "/-/healthy", Text: "Health", Description: "liveness and readiness; reads no data source"},
		},
	}
	if withAPI {
		cfg.Links = append(cfg.Links, web.LandingLinks{
			Address: "/api/v1/openapi.yaml", Text: "API (OpenAPI document)",
			Description: "read-only JSON: /api/v1/tenants/{tenant_id}/usage, /api/v1/tenants, /api/v1/plans",
		}, web.LandingLinks{
			Address: "/api/v1/tenants?limit_type=messages&min_percentage=80", Text: "Tenants near a limit",
			Description: "the near-limit list: tenants at or above 80% of their messages limit, highest first (JSON)",
		})
	}
	landing, err := web.NewLandingPage(cfg)
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	return landing, nil
}

// ListenPort returns ":port" of the first listen address, for the demo's
// hint of where to look.
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

// Serve runs the HTTP server with exporter-toolkit (TLS and basic auth from
// --web.config.file) until SIGINT or SIGTERM asks for a graceful shutdown.
func Serve(logger *slog.Logger, handler http.Handler, webConfig *web.FlagConfig) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
