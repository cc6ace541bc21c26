package redisstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/billing"
)

// parseInfo reads the text of an INFO reply into field → value. Section
// headers, blank lines and lines without a colon are ignored, and any of
// \r and \n ends a line, so a reply from any Redis version (or something
// Redis-like) parses, however long its lines.
func parseInfo(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' }) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		fields[k] = v
	}
	return fields
}

// Info runs INFO for the memory, clients and replication sections in one
// round trip and returns the parsed fields. Sections a server does not
// support are left out rather than failing the call; when every section
// is refused (an ACL without INFO) the call fails with Redis' reply, so
// that the missing gauges are explained rather than silently absent.
func (s *Store) Info(ctx context.Context) billing.Info {
	fields, err := s.readInfo(ctx, s.pool, "")
	return billing.Info{Fields: fields, Err: err}
}

// readInfo runs INFO memory and INFO clients on a connection from pool.
func (s *settings) readInfo(ctx context.Context, pool *redis.Pool, node string) (_ map[string]string, err error) {
	ctx, rt := startRoundTrips(ctx, "INFO", node)
	defer func() { rt.end(err) }()
	c, err := pool.GetContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis connection: %w", err)
	}
	defer c.Close()
	sections := []string{"memory", "clients", "replication"}
	for _, sec := range sections {
		if err := c.Send("INFO", sec); err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
	}
	rt.calls++
	replies, err := redis.Values(s.do(ctx, c, "info", ""))
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	var refused error
	for _, r := range replies {
		if isOversized(r) {
			return nil, fmt.Errorf("INFO: %w", r.(redis.Error))
		}
		if e, isErr := r.(redis.Error); isErr {
			refused = e
			continue
		}
		text, err := redis.String(r, nil)
		if err != nil {
			return nil, fmt.Errorf("INFO: %w", err)
		}
		for k, v := range parseInfo(text) {
			fields[k] = v
		}
	}
	if len(fields) == 0 && refused != nil {
		return nil, fmt.Errorf("INFO: %w", refused)
	}
	return fields, nil
}
