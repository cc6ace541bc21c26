package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/sharedread"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestRoundTripFollowsMovingDeadline: a command in flight under a shared
// read gets the deadline of a caller that joins the read after it was sent.
// The first caller (200 ms) starts a read whose one command, BLPOP with no
// timeout, is answered only after that caller has given up; a second caller
// with a long deadline joins while it waits, and gets the reply. Were the
// wait bounded by the deadline as it stood when the command was sent, the
// read would fail with an i/o timeout for both.
//
// Then the same with every caller gone: the command in flight is cut at
// once rather than waiting for its reply (read timeout 0: no cap, so
// without the cut the test would hang).
func TestRoundTripFollowsMovingDeadline(t *testing.T) {
	srv := testserver.StartRedis(t)
	tests := []struct {
		name   string
		second bool // a patient caller joins
		want   error
	}{
		{name: "patient caller joins", second: true},
		{name: "every caller leaves", want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, srv.Addr(), WithTimeouts(time.Second, 0, time.Second))
			list := "list:" + tt.name
			var group sharedread.Group[any]
			sent := make(chan struct{})
			readDone := make(chan error, 1)
			read := func(ctx context.Context) (any, error) {
				c, err := s.pool.GetContext(ctx)
				if err != nil {
					return nil, err
				}
				defer c.Close()
				close(sent)
				reply, err := s.do(ctx, c, "blpop", "BLPOP", list, 0)
				readDone <- err
				return reply, err
			}

			first, cancelFirst := context.WithCancel(context.Background())
			if tt.second {
				first, cancelFirst = context.WithTimeout(context.Background(), 200*time.Millisecond)
			}
			defer cancelFirst()
			firstDone := make(chan error, 1)
			go func() { _, err := group.Do(first, read); firstDone <- err }()
			<-sent
			for !blocked(t, srv) {
				time.Sleep(5 * time.Millisecond)
			}

			if !tt.second {
				cancelFirst()
				if err := <-firstDone; !errors.Is(err, context.Canceled) {
					t.Fatalf("first caller: %v", err)
				}
				select {
				case err := <-readDone:
					if !errors.Is(err, tt.want) {
						t.Fatalf("command in flight after every caller left: %v, want %v", err, tt.want)
					}
				case <-time.After(30 * time.Second): // a bound on the failure, not a timing
					t.Fatal("command in flight still waiting for its reply after every caller left")
				}
				return
			}

			second, cancelSecond := context.WithTimeout(context.Background(), time.Minute)
			defer cancelSecond()
			secondDone := make(chan struct {
				v   any
				err error
			}, 1)
			go func() {
				v, err := group.Do(second, read)
				secondDone <- struct {
					v   any
					err error
				}{v, err}
			}()
			for group.Waiters() < 2 {
				time.Sleep(time.Millisecond)
			}
			if err := <-firstDone; !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("first caller: %v, want its own deadline", err)
			}
			// Only now, past the first caller's deadline, is the reply sent.
			srv.Do("RPUSH", list, "answer")
			got := <-secondDone
			if got.err != nil {
				t.Fatalf("second caller: %v, want the reply", got.err)
			}
			if v, _ := redis.Strings(got.v, nil); len(v) != 2 || v[1] != "answer" {
				t.Fatalf("second caller: reply %q", v)
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
