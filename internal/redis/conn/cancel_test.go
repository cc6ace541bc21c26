package conn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestDoStops: a command in flight stops when its context is cancelled,
// and when its deadline passes, rather than waiting for its reply (read
// timeout 0: no cap, so without the cut the test would hang).
func TestDoStops(t *testing.T) {
	srv := testserver.StartRedis(t)
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := ParseTarget(srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSettings(target, WithTimeouts(time.Second, 0, time.Second))
			if err != nil {
				t.Fatal(err)
			}
			pool := s.NewPool(target.Address)
			defer pool.Close()
			ctx, cancel := tt.ctx()
			defer cancel()
			c, err := pool.GetContext(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			done := make(chan error, 1)
			go func() {
				_, err := s.Do(ctx, c, "blpop", "BLPOP", "list:"+tt.name, 0)
				done <- err
			}()
			for !blocked(t, srv) {
				time.Sleep(5 * time.Millisecond)
			}
			if tt.want == context.Canceled {
				cancel()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tt.want) && !strings.Contains(err.Error(), "timeout") {
					t.Fatalf("command in flight: %v, want %v", err, tt.want)
				}
			case <-time.After(30 * time.Second): // a bound on the failure, not a timing
				t.Fatal("command in flight still waiting for its reply")
			}
		})
	}
}

// blocked reports whether a client waits in BLPOP.
func blocked(t *testing.T, srv *testserver.Redis) bool {
	t.Helper()
	info, err := redis.String(srv.Do("CLIENT", "LIST"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if strings.Contains(line, " flags=b ") && strings.Contains(line, " cmd=blpop ") {
			return true
		}
	}
	return false
}
