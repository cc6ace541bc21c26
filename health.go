package main

import "net/http"

// healthHandler answers liveness and readiness probes without reading Redis
// or PostgreSQL. Readiness deliberately does not follow Redis: as a sidecar
// the exporter shares a pod with Redis, and an unready sidecar would take
// Redis itself out of its Service; a Redis outage is reported as
// billing_redis_up 0 instead, which only a serving exporter can do.
func healthHandler(w http.ResponseWriter, r *http.Request) {
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
