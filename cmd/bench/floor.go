package main

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The floor is the least a scrape can do to expose billing_usage: SCAN the
// usage keys (the exporter's MATCH glob, COUNT 1000), pipelined HGETALLs of
// the current period's keys in batches of 1000, and the text format written
// with append into a reused buffer. No client_golang, no PostgreSQL, no
// sorting, no limits. The runner starts it as a separate process (itself,
// with -floor.listen) so that its memory and CPU are measured alone.

const (
	floorScanCount = 1000
	floorBatch     = 1000
)

type floor struct {
	pool *redis.Pool
	mu   sync.Mutex // scrapes are sequential; the buffer is reused
	buf  []byte
}

func runFloor(listen, redisAddr string) error {
	f := &floor{pool: &redis.Pool{
		MaxIdle: 1,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", redisAddr, redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(time.Minute), redis.DialWriteTimeout(time.Minute))
		},
	}}
	mux := http.NewServeMux()
	mux.Handle("/metrics", f)
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

func (f *floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.pool.Get()
	defer c.Close()
	out, err := f.scrape(c, f.buf[:0], periods(time.Now(), 1)[0])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.buf = out
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out)
}

func (f *floor) scrape(c redis.Conn, out []byte, period string) ([]byte, error) {
	out = append(out, "# HELP billing_usage Current-period value of a usage hash field.\n# TYPE billing_usage gauge\n"...)
	suffix := ":" + period
	seen := map[string]struct{}{} // SCAN may return a key twice
	var batch []string
	glob := keyPattern.Glob()
	cursor := "0"
	for {
		reply, err := redis.Values(c.Do("SCAN", cursor, "MATCH", glob, "COUNT", floorScanCount))
		if err != nil {
			return nil, err
		}
		if len(reply) != 2 {
			return nil, errors.New("SCAN: unexpected reply")
		}
		keys, err := redis.Strings(reply[1], nil)
		if err != nil {
			return nil, err
		}
		cursor, _ = redis.String(reply[0], nil)
		for _, k := range keys {
			if !strings.HasSuffix(k, suffix) {
				continue
			}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			if batch = append(batch, k); len(batch) == floorBatch {
				if out, err = readBatch(c, batch, out); err != nil {
					return nil, err
				}
				batch = batch[:0]
			}
		}
		if cursor == "0" {
			break
		}
	}
	return readBatch(c, batch, out)
}

// readBatch pipelines one HGETALL per key and appends a billing_usage line
// per integer field.
func readBatch(c redis.Conn, keys []string, out []byte) ([]byte, error) {
	if len(keys) == 0 {
		return out, nil
	}
	for _, k := range keys {
		if err := c.Send("HGETALL", k); err != nil {
			return nil, err
		}
	}
	replies, err := redis.Values(c.Do(""))
	if err != nil {
		return nil, err
	}
	prefix := len(keyPattern.LiteralPrefix())
	for i, rep := range replies {
		pairs, ok := rep.([]any)
		if !ok {
			continue // WRONGTYPE and the like
		}
		k := keys[i]
		tenant := k[prefix:strings.LastIndexByte(k, ':')]
		for j := 0; j+1 < len(pairs); j += 2 {
			field, _ := pairs[j].([]byte)
			value, _ := pairs[j+1].([]byte)
			if !isUint(value) {
				continue
			}
			out = append(out, `billing_usage{tenant_id="`...)
			out = appendLabelValue(out, tenant)
			out = append(out, `",metric_type="`...)
			out = appendLabelValue(out, string(field))
			out = append(out, `"} `...)
			out = append(out, value...)
			out = append(out, '\n')
		}
	}
	return out, nil
}

func isUint(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// appendLabelValue escapes a label value for the text format.
func appendLabelValue(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			out = append(out, `\\`...)
		case '"':
			out = append(out, `\"`...)
		case '\n':
			out = append(out, `\n`...)
		default:
			out = append(out, c)
		}
	}
	return out
}
