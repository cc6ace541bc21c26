package server

import (
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// PprofPrefix is the path under which --web.enable-pprof serves the Go
// runtime's profiles.
const PprofPrefix = "/debug/pprof/"

// HandlePprof serves net/http/pprof's handlers under PprofPrefix on mux,
// behind whatever wraps mux (the web config's TLS and basic auth).
func HandlePprof(mux *http.ServeMux) {
	mux.HandleFunc(PprofPrefix, pprof.Index)
	mux.HandleFunc(PprofPrefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(PprofPrefix+"profile", pprof.Profile)
	mux.HandleFunc(PprofPrefix+"symbol", pprof.Symbol)
	mux.HandleFunc(PprofPrefix+"trace", pprof.Trace)
}

// CPUProfileSeconds is the length of the CPU profile the landing page
// links: twice maxTimeout in whole seconds, within [1, 30], so shorter than
// the server's write timeout, as pprof requires.
func CPUProfileSeconds(maxTimeout time.Duration) int {
	return min(30, max(1, int(2*maxTimeout/time.Second)))
}

// isPprofPath reports whether path is PprofPrefix or under it.
func isPprofPath(path string) bool {
	return strings.HasPrefix(path+"/", PprofPrefix)
}
