package testserver

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// echoServer accepts connections on loopback, echoes every line back, and
// remembers every byte it received.
type echoServer struct {
	ln       net.Listener
	mu       sync.Mutex
	received []byte
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					s.mu.Lock()
					s.received = append(s.received, line...)
					s.mu.Unlock()
					if err != nil {
						return
					}
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *echoServer) Received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.received)
}

func dialProxy(t *testing.T, p *FaultProxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, line string) (string, error) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

// pollUntil retries cond every 20ms for at most 10s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not after 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFaultProxyForwards(t *testing.T) {
	echo := startEcho(t)
	p := StartFaultProxy(t, echo.ln.Addr().String())
	c := dialProxy(t, p)
	if got, err := roundTrip(t, c, "hello\n"); err != nil || got != "hello\n" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	if p.Active() != 1 || p.Accepted() != 1 {
		t.Errorf("active %d accepted %d, want 1 and 1", p.Active(), p.Accepted())
	}
}

// TestFaultProxyLatency: a round trip is two chunks, each held for the
// latency, so it cannot come back sooner than twice the latency (a lower
// bound, which no scheduler delay can break); removing the latency applies
// to the open connection.
func TestFaultProxyLatency(t *testing.T) {
	echo := startEcho(t)
	p := StartFaultProxy(t, echo.ln.Addr().String())
	c := dialProxy(t, p)
	const latency = 150 * time.Millisecond
	p.SetLatency(latency)
	start := time.Now()
	if got, err := roundTrip(t, c, "slow\n"); err != nil || got != "slow\n" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	if d := time.Since(start); d < 2*latency {
		t.Errorf("round trip took %v with %v latency each way", d, latency)
	}
	p.SetLatency(0)
	if got, err := roundTrip(t, c, "fast\n"); err != nil || got != "fast\n" {
		t.Fatalf("round trip after removing latency = %q, %v", got, err)
	}
}

// TestFaultProxyCutAll: every open connection is closed on both sides; the
// proxy keeps accepting.
func TestFaultProxyCutAll(t *testing.T) {
	echo := startEcho(t)
	p := StartFaultProxy(t, echo.ln.Addr().String())
	a, b := dialProxy(t, p), dialProxy(t, p)
	for _, c := range []net.Conn{a, b} {
		if _, err := roundTrip(t, c, "x\n"); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.CutAll(); n != 2 {
		t.Errorf("CutAll cut %d connections, want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		if got, err := roundTrip(t, c, "after cut\n"); err == nil {
			t.Errorf("a cut connection still answers %q", got)
		}
	}
	pollUntil(t, "no connection open after the cut", func() bool { return p.Active() == 0 })
	if got, err := roundTrip(t, dialProxy(t, p), "new\n"); err != nil || got != "new\n" {
		t.Errorf("new connection after the cut: %q, %v", got, err)
	}
}

// TestFaultProxyDropsPendingOnClose: bytes a client wrote and that were
// still waiting out their latency when the client closed never reach the
// target.
func TestFaultProxyDropsPendingOnClose(t *testing.T) {
	echo := startEcho(t)
	p := StartFaultProxy(t, echo.ln.Addr().String())
	const latency = 300 * time.Millisecond
	p.SetLatency(latency)
	c := dialProxy(t, p)
	if _, err := io.WriteString(c, "never delivered\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pollUntil(t, "the proxy closed both sides", func() bool { return p.Active() == 0 })
	time.Sleep(2 * latency)
	if got := echo.Received(); got != "" {
		t.Errorf("the target received %q after the client had closed", got)
	}
}

func TestFaultProxyRefuse(t *testing.T) {
	echo := startEcho(t)
	p := StartFaultProxy(t, echo.ln.Addr().String())
	p.SetRefuse(true)
	if got, err := roundTrip(t, dialProxy(t, p), "x\n"); err == nil {
		t.Errorf("refused connection answered %q", got)
	}
	p.SetRefuse(false)
	if got, err := roundTrip(t, dialProxy(t, p), "y\n"); err != nil || got != "y\n" {
		t.Errorf("after refusing: %q, %v", got, err)
	}
}

// TestFaultProxyRedis: a real redis-server through the proxy; a cut shows
// up to the client as a connection error and Redis sees the client leave.
func TestFaultProxyRedis(t *testing.T) {
	r := StartRedis(t)
	p := StartFaultProxy(t, r.Addr())
	c, err := redis.Dial("tcp", p.Addr(), redis.DialReadTimeout(10*time.Second), redis.DialClientName("through-proxy"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pong, err := redis.String(c.Do("PING")); err != nil || pong != "PONG" {
		t.Fatalf("PING = %q, %v", pong, err)
	}
	p.CutAll()
	if _, err := c.Do("PING"); err == nil {
		t.Error("PING answered on a cut connection")
	}
	pollUntil(t, "redis-server saw the cut client leave", func() bool {
		list, _ := redis.String(r.Do("CLIENT", "LIST"), nil)
		return !strings.Contains(list, "name=through-proxy")
	})
}
