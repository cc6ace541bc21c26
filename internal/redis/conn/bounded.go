package conn

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// DefaultMaxReplyBytes bounds a reply by default.
const DefaultMaxReplyBytes = 1 << 20

// maxPipelineReplies bounds an exchange, in reply bounds.
const maxPipelineReplies = 8

const oversizedPrefix = "BILLING_EXPORTER_OVERSIZED"

// IsOversized reports whether v replaced a reply over the bound.
func IsOversized(v any) bool {
	err, _ := v.(error)
	rerr, ok := errors.AsType[redis.Error](err)
	return ok && strings.HasPrefix(string(rerr), oversizedPrefix)
}

// boundedConn passes RESP2 replies to redigo, but replaces a reply over
// max bytes, as it streams in, with one error reply.
type boundedConn struct {
	net.Conn
	max, maxExchange int

	buf      []byte // buf[off:ready]: whole replies; then one in progress
	off      int
	ready    int
	pos      int
	skip     int   // bulk bytes left
	open     []int // elements left per open array
	size     int
	discard  bool
	cut      int // buf[cut:pos] is to be dropped
	exchange int // bytes since the last write
	readErr  error
	wrote    atomic.Bool
}

// newBoundedConn bounds a reply to limit, an exchange to replies*limit (0: none).
func newBoundedConn(c net.Conn, limit, replies int) *boundedConn {
	return &boundedConn{Conn: c, max: limit, maxExchange: replies * limit}
}

func (c *boundedConn) Write(p []byte) (int, error) {
	c.wrote.Store(true)
	return c.Conn.Write(p)
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if c.wrote.Swap(false) {
		c.exchange = 0
	}
	for c.off == c.ready {
		if c.readErr != nil {
			return 0, c.readErr
		}
		if c.off > 0 {
			c.buf = c.buf[:copy(c.buf, c.buf[c.off:])]
			c.pos -= c.off
			c.cut -= c.off
			c.off, c.ready = 0, 0
		}
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, make([]byte, 16<<10)...)[:len(c.buf)]
		}
		n, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		c.readErr = err
		if perr := c.parse(); perr != nil {
			c.readErr = perr
		}
	}
	n := copy(p, c.buf[c.off:c.ready])
	c.off += n
	return n, nil
}

func (c *boundedConn) parse() error {
	defer c.drop()
	for {
		if c.skip > 0 {
			n := min(c.skip, len(c.buf)-c.pos)
			c.consume(n)
			c.skip -= n
			if c.skip > 0 {
				return nil
			}
			c.elementDone()
			continue
		}
		rest := c.buf[c.pos:]
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			if len(rest) > c.max {
				return fmt.Errorf("redis reply line longer than %d bytes", c.max)
			}
			return nil
		}
		line := rest[:i]
		if len(line) == 0 {
			return errors.New("redis reply: empty line")
		}
		kind, n := line[0], 0
		if kind == '$' || kind == '*' {
			var err error
			if n, err = strconv.Atoi(string(line[1:])); err != nil {
				return fmt.Errorf("redis reply: length %.32q", line)
			}
		}
		c.consume(i + 2)
		switch {
		case kind == '$' && n >= 0:
			if !c.discard && c.size+n+2 > c.max {
				c.overflow()
			}
			c.skip = n + 2
		case kind == '*' && n > 0:
			c.open = append(c.open, n)
		default:
			c.elementDone()
		}
	}
}

func (c *boundedConn) consume(n int) {
	c.size += n
	c.pos += n
	if !c.discard && c.size > c.max {
		c.overflow()
	}
}

func (c *boundedConn) drop() {
	if c.discard && c.pos > c.cut {
		c.buf = append(c.buf[:c.cut], c.buf[c.pos:]...)
		c.pos = c.cut
	}
}

func (c *boundedConn) elementDone() {
	for len(c.open) > 0 {
		top := len(c.open) - 1
		if c.open[top]--; c.open[top] > 0 {
			return
		}
		c.open = c.open[:top]
	}
	if !c.discard && c.maxExchange > 0 && c.exchange+c.size > c.maxExchange {
		c.overflow()
	}
	if !c.discard {
		c.exchange += c.size
	}
	c.drop()
	c.ready, c.size, c.discard = c.pos, 0, false
}

func (c *boundedConn) overflow() {
	stub := fmt.Appendf(nil, "-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n",
		oversizedPrefix, c.max, c.maxExchange)
	tail := append([]byte(nil), c.buf[c.pos:]...)
	c.buf = append(append(c.buf[:c.ready], stub...), tail...)
	c.pos = c.ready + len(stub)
	c.cut, c.discard = c.pos, true
}
