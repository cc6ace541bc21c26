package api

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.yaml
var openapiYAML []byte

func (h *Handler) serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/yaml")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openapiYAML)
}
