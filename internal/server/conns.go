package server

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps open connections, so clients cannot use up the file
// descriptors: at the cap a new one replaces the longest idle, else closes.
type connLimiter struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]time.Time // zero: busy; else idle since then
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

// oldestIdle returns the longest idle connection, or nil.
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
