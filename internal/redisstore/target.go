// Package redisstore reads the backend's usage state out of Redis: where to
// connect, how to SCAN and pipeline gently, and how to turn replies into the
// usage domain's types. It is the only package that speaks the Redis protocol.
package redisstore

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target is a parsed --redis.addr: where and how to connect.
type Target struct {
	Address  string // host:port
	Username string
	Password string
	DB       int
	TLS      bool
	// loneName is the name of redis://name@host: the password of the
	// default user, unless a password comes from elsewhere (file or
	// environment), in which case it is the user name.
	loneName bool
}

// ParseTarget accepts host:port, redis://[user[:password]@]host[:port][/db]
// or the same with rediss:// for TLS. Errors about a URL repeat no part of
// it: a password may sit in the user information (as user:password@ or as
// the lone name of redis://password@host), and in a malformed URL anywhere
// else, so the message names the problem and not the text.
func ParseTarget(addr string) (Target, error) {
	if !strings.Contains(addr, "://") {
		if strings.Contains(addr, "@") {
			// Credentials without a scheme: say so without echoing them.
			return Target{}, fmt.Errorf("redis address has credentials (@) but no redis:// or rediss:// scheme")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Target{}, fmt.Errorf("redis address %q: want host:port or a redis:// URL: %w", addr, err)
		}
		return Target{Address: addr}, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		// url.Parse errors quote the whole input, password included.
		return Target{}, fmt.Errorf("redis address is not a valid URL")
	}
	t := Target{}
	switch u.Scheme {
	case "redis":
	case "rediss":
		t.TLS = true
	default:
		return Target{}, fmt.Errorf("redis address: the scheme is not redis:// or rediss://")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Target{}, fmt.Errorf("redis address: the URL has no host")
	}
	if port == "" {
		port = "6379"
	}
	t.Address = net.JoinHostPort(host, port)
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
		if _, hasPassword := u.User.Password(); !hasPassword && t.Username != "" {
			// redis://password@host is in use for a password with the
			// default user; with a password file it names the user.
			t.Password, t.Username, t.loneName = t.Username, "", true
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return Target{}, fmt.Errorf("redis address: the database (the URL's path) is not a non-negative number")
		}
		t.DB = db
	}
	if len(u.Query()) > 0 {
		return Target{}, fmt.Errorf("redis address: query parameters are not supported")
	}
	return t, nil
}

// String describes the target for logs and the landing page: never the
// password.
func (t Target) String() string {
	scheme := "redis"
	if t.TLS {
		scheme = "rediss"
	}
	s := scheme + "://"
	if t.Username != "" {
		s += url.User(t.Username).String() + "@"
	}
	s += t.Address
	if t.DB != 0 {
		s += "/" + strconv.Itoa(t.DB)
	}
	return s
}
