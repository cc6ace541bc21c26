package conn

import (
	"strings"
	"testing"
)

// FuzzParseTarget: no address makes the parser panic, and an error never
// repeats a password given in the URL, as user:password@ or as the lone
// name of redis://password@host.
func FuzzParseTarget(f *testing.F) {
	f.Add("redis://:s3cret@127.0.0.1:6379/0")
	f.Add("rediss://user:s3cret@[::1]:6380")
	f.Add("localhost:6379")
	f.Add("redis://:s3cret@%zz")
	f.Add("redis://s3cret@localhost/x")
	f.Add("redis:s3cret@://0")
	f.Fuzz(func(t *testing.T, addr string) {
		_, err := ParseTarget(addr)
		if err != nil && strings.Contains(addr, "s3cret@") && strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("error for %q reveals the password: %v", addr, err)
		}
	})
}
