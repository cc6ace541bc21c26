// Package conn dials Redis. See ARCHITECTURE.md.
package conn

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target is a parsed --redis.addr.
type Target struct {
	Address  string
	Username string
	Password string
	DB       int
	TLS      bool
	loneName bool // redis://name@host: name is the password, or the user
}

// ParseTarget accepts host:port or redis[s]://[user[:password]@]host[:port][/db];
// its errors never quote a URL.
func ParseTarget(addr string) (Target, error) {
	if !strings.Contains(addr, "://") {
		if strings.Contains(addr, "@") {
			return Target{}, fmt.Errorf("redis address has credentials (@) but no redis:// or rediss:// scheme")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return Target{}, fmt.Errorf("redis address is neither host:port nor a redis:// URL")
		}
		return Target{Address: addr}, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return Target{}, errors.New("redis address is not a valid URL (percent-encode @ : / ? # % in the user or password)")
	}
	// A # in a password would cut it, leaving a piece in the address.
	if strings.Contains(addr, "#") {
		return Target{}, errors.New("redis address: the URL holds a # (write a # in the password as %23)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return Target{}, fmt.Errorf("redis address: the scheme is not redis:// or rediss://")
	}
	t := Target{TLS: u.Scheme == "rediss"}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Target{}, fmt.Errorf("redis address: the URL has no host")
	}
	t.Address = net.JoinHostPort(host, cmp.Or(port, "6379"))
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
		if _, hasPassword := u.User.Password(); !hasPassword && t.Username != "" {
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

// String describes the target without its password.
func (t Target) String() string {
	s := "redis://"
	if t.TLS {
		s = "rediss://"
	}
	if t.Username != "" {
		s += url.User(t.Username).String() + "@"
	}
	s += t.Address
	if t.DB != 0 {
		s += "/" + strconv.Itoa(t.DB)
	}
	return s
}

// withPassword is t with password; "" keeps t's.
func (t Target) withPassword(password string) Target {
	if password == "" {
		return t
	}
	if t.loneName && t.Username == "" {
		t.Username = t.Password
	}
	t.Password = password
	return t
}
