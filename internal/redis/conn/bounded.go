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

// DefaultMaxReplyBytes is the default bound on one reply: room for any
// reply a read expects (a SCAN page, INFO, CLUSTER NODES) many times over.
const DefaultMaxReplyBytes = 1 << 20

// maxPipelineReplies bounds the replies to one exchange (what is read
// between two writes) to this many times the bound on one reply.
const maxPipelineReplies = 8

// oversizedPrefix starts the error reply that stands in for a reply over
// the bound; Redis uses no such code.
const oversizedPrefix = "BILLING_EXPORTER_OVERSIZED"

// IsOversized reports whether a reply, or an error, is the stand-in for a
// reply over the bound.
func IsOversized(v any) bool {
	var rerr redis.Error
	switch v := v.(type) {
	case redis.Error:
		rerr = v
	case error:
		if !errors.As(v, &rerr) {
			return false
		}
	default:
		return false
	}
	return strings.HasPrefix(string(rerr), oversizedPrefix)
}

// boundedConn is the connection redigo reads from. It passes replies
// through, except that a top-level reply of more than max bytes is dropped
// as it streams in and replaced by one error reply, so that neither this
// side nor redigo (which holds a whole reply) ever holds more than max
// bytes of it; the replies of one exchange are bounded to maxExchange
// together. The parsing is RESP2, what redigo speaks.
type boundedConn struct {
	net.Conn
	max, maxExchange int

	buf      []byte // read from the connection and not yet handed on (from off)
	off      int    // buf[off:ready]: whole replies (or stand-ins) to hand on
	ready    int    // buf[ready:]: the reply in progress, then bytes not yet parsed
	pos      int    // parse position in buf, at a token boundary
	skip     int    // bulk bytes (with their CRLF) still to pass over
	open     []int  // elements left in each array of the reply in progress
	size     int    // bytes of the reply in progress so far
	discard  bool   // the reply in progress is over the bound: drop it
	cut      int    // while discarding, buf[cut:pos] is parsed and to be dropped
	exchange int    // bytes handed on since the last write
	readErr  error  // from the connection, returned once buf is drained
	// wrote, set by Write, starts a new exchange at the next Read. Atomic:
	// a subscribed connection is written and read by two goroutines.
	wrote atomic.Bool
}

func newBoundedConn(c net.Conn, limit int) *boundedConn {
	return &boundedConn{Conn: c, max: limit, maxExchange: maxPipelineReplies * limit}
}

// newStreamBoundedConn bounds each reply only: pushed messages arrive for as
// long as keys change, and their sum is no exchange.
func newStreamBoundedConn(c net.Conn, limit int) *boundedConn {
	return &boundedConn{Conn: c, max: limit}
}

// Write marks the start of a new exchange for the next Read.
func (c *boundedConn) Write(p []byte) (int, error) {
	c.wrote.Store(true)
	return c.Conn.Write(p)
}

// Read hands on whole replies, reading and parsing more as needed.
func (c *boundedConn) Read(p []byte) (int, error) {
	if c.wrote.Swap(false) {
		c.exchange = 0
	}
	for c.off == c.ready {
		if c.readErr != nil {
			return 0, c.readErr
		}
		if c.off > 0 { // all handed on: move the reply in progress to the front
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

// parse advances over buf from pos, marking whole replies ready and
// dropping those over the bound.
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
				// Header lines of Redis are short: this is not Redis.
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
		default: // simple string, error, integer, null or empty
			c.elementDone()
		}
	}
}

// consume passes over n bytes at pos: kept as part of the reply, or
// dropped (by drop) when it is over the bound.
func (c *boundedConn) consume(n int) {
	c.size += n
	c.pos += n
	if !c.discard && c.size > c.max {
		c.overflow()
	}
}

// drop removes the bytes parsed while discarding, once per read rather
// than once per element.
func (c *boundedConn) drop() {
	if c.discard && c.pos > c.cut {
		c.buf = append(c.buf[:c.cut], c.buf[c.pos:]...)
		c.pos = c.cut
	}
}

// elementDone closes the arrays an element completes; when the reply is
// whole it becomes ready.
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

// overflow drops the reply in progress and puts the stand-in error reply in
// its place; the rest of the reply is dropped as it arrives.
func (c *boundedConn) overflow() {
	stub := fmt.Appendf(nil, "-%s reply of more than %d bytes (or a batch of more than %d) skipped\r\n",
		oversizedPrefix, c.max, c.maxExchange)
	tail := append([]byte(nil), c.buf[c.pos:]...)
	c.buf = append(append(c.buf[:c.ready], stub...), tail...)
	c.pos = c.ready + len(stub)
	c.cut, c.discard = c.pos, true
}
