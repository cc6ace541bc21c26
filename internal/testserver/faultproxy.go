package testserver

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// FaultProxy is an in-process TCP proxy on a free loopback port that
// forwards every connection to a target (a redis-server, say) and lets a
// test inject network faults between a client and that target:
//
//   - SetLatency delays every chunk of bytes, in both directions, by a
//     fixed time before it is forwarded (a slow link or a slow server, as
//     the client sees it);
//   - CutAll closes every connection open now, both sides at once (a
//     network cut or a middlebox reset); new connections are accepted as
//     before;
//   - SetRefuse makes the proxy close new connections as soon as they are
//     accepted (a listener that accepts and drops).
//
// When either side of a connection closes, the other is closed at once and
// chunks still waiting out their latency are dropped, not delivered: so a
// client that gives up never has bytes arrive at the target after it has
// gone, which would blur what the client itself sent.
//
// It is closed at test cleanup.
type FaultProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu       sync.Mutex
	latency  time.Duration
	refuse   bool
	conns    map[*proxyConn]struct{}
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.client.Close()
		pc.server.Close()
	})
}

// StartFaultProxy listens on a free 127.0.0.1 port and forwards to target
// (host:port, which must be a loopback address).
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatalf("fault proxy target %q: %v", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("fault proxy target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	p := &FaultProxy{t: t, ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port, to give the client instead of the target's.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// SetLatency sets the delay added to every chunk forwarded from now on, in
// either direction, on open and new connections alike. Zero removes it.
func (p *FaultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// SetRefuse makes the proxy drop new connections on accept (true) or
// forward them again (false).
func (p *FaultProxy) SetRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

// CutAll closes every open connection, both sides, and returns how many
// it cut.
func (p *FaultProxy) CutAll() int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
	return len(conns)
}

// Active returns how many connections are open through the proxy.
func (p *FaultProxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted returns how many connections the proxy has accepted so far.
func (p *FaultProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if already {
		return
	}
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *FaultProxy) currentLatency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.accepted++
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			client.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pc := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.close()
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(pc, client, server) }()
	go func() { defer wg.Done(); p.pipe(pc, server, client) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// pipe forwards chunks from src to dst. A reader takes chunks off src as
// they come, stamping each with the latency in force, and a writer delivers
// each when its time is due: a delay line, so that the reader sees src
// close at once (and closes both sides, dropping what is still due) even
// while chunks wait. The first error on either side closes both.
func (p *FaultProxy) pipe(pc *proxyConn, src, dst net.Conn) {
	type chunk struct {
		data []byte
		due  time.Time
	}
	queue := make(chan chunk, 256)
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		defer pc.close()
		for c := range queue {
			if d := time.Until(c.due); d > 0 {
				timer := time.NewTimer(d)
				select {
				case <-timer.C:
				case <-pc.done:
					timer.Stop()
					return
				}
			}
			select {
			case <-pc.done:
				return
			default:
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	defer writer.Wait()
	defer close(queue)
	defer pc.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c := chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(p.currentLatency())}
			select {
			case queue <- c:
			case <-pc.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}
