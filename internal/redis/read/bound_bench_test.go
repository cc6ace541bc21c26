package read

import (
	"context"
	"strconv"
	"testing"

	"github.com/billing-exporter/billing_exporter/internal/redis/conn"
	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// BenchmarkReadUsageReplyBound reads 20k tenants' hashes with the bound on
// replies (the default) and without it: the cost of parsing the replies
// once more on their way to redigo.
func BenchmarkReadUsageReplyBound(b *testing.B) {
	srv := testserver.StartRedis(b)
	c := srv.Conn()
	for i := range 20000 {
		c.Send("HSET", "usage:"+strconv.Itoa(i)+":202611", "messages", i, "storage", i*1000, "users", i%7, "whatsappSessions", i%3)
	}
	if _, err := c.Do(""); err != nil {
		b.Fatal(err)
	}
	for _, bound := range []int{0, conn.DefaultMaxReplyBytes} {
		b.Run("max-reply-bytes="+strconv.Itoa(bound), func(b *testing.B) {
			target, _ := conn.ParseTarget(srv.Addr())
			s, err := New(target, conn.WithMaxReplyBytes(bound))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				if _, err := s.ReadUsage(context.Background(), pattern, "202611"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
