package server

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps the connections the server keeps open, through
// http.Server.ConnState, so that clients holding connections (idle
// keep-alives, or many of them at once) cannot use up the process's file
// descriptors: then accept fails ("too many open files") and every scrape
// hangs. Over the cap, a new connection first takes the place of the
// connection idle the longest (an idle keep-alive carries no request, and
// any HTTP client opens another when it needs one); when none is idle, the
// new connection is closed at once.
//
// It works on the server's connection states rather than by wrapping the
// listeners, so that every listener exporter-toolkit opens (addresses,
// systemd sockets, vsock) is covered the same way.
type connLimiter struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]time.Time // zero: busy; else idle since then
}

func newConnLimiter(maxConns int) *connLimiter {
	return &connLimiter{max: maxConns, conns: map[net.Conn]time.Time{}}
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	var victim net.Conn
	switch state {
	case http.StateNew:
		if len(l.conns) >= l.max {
			victim = l.oldestIdle()
			if victim == nil {
				victim = c
			}
			delete(l.conns, victim)
		}
		if victim != c {
			l.conns[c] = time.Time{}
		}
	case http.StateActive:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = time.Time{}
		}
	case http.StateIdle:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = time.Now()
		}
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
	}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Close()
	}
}

// oldestIdle returns the connection idle the longest, or nil. A linear
// scan: it runs only at the cap, over at most max connections.
func (l *connLimiter) oldestIdle() net.Conn {
	var oldest net.Conn
	var since time.Time
	for c, idle := range l.conns {
		if !idle.IsZero() && (oldest == nil || idle.Before(since)) {
			oldest, since = c, idle
		}
	}
	return oldest
}
