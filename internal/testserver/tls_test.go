package testserver

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// TestTLSRedis: the TLS-only redis-server answers a client that trusts the
// CA, refuses one that does not, and with client authentication on refuses
// a client without a certificate.
func TestTLSRedis(t *testing.T) {
	ca := NewCA(t, "test CA")
	other := NewCA(t, "other CA")
	for _, requireClient := range []bool{false, true} {
		r := StartRedisTLS(t, ca, requireClient)
		r.Do("SET", "k", "v")
		dial := func(cfg *tls.Config) error {
			c, err := redis.Dial("tcp", r.Addr(), redis.DialUseTLS(true), redis.DialTLSConfig(cfg),
				redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(5*time.Second))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Do("PING")
			return err
		}
		if err := dial(ca.ClientConfig(ca.Client("ok"))); err != nil {
			t.Errorf("requireClient=%v: trusted client with a certificate: %v", requireClient, err)
		}
		if err := dial(other.ClientConfig(ca.Client("ok"))); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("requireClient=%v: a client trusting another CA: %v", requireClient, err)
		}
		err := dial(ca.ClientConfig())
		if requireClient && err == nil {
			t.Error("--tls-auth-clients yes accepted a client without a certificate")
		}
		if !requireClient && err != nil {
			t.Errorf("--tls-auth-clients no refused a client without a certificate: %v", err)
		}
		// No plain TCP: the port speaks TLS only.
		if c, err := redis.Dial("tcp", r.Addr(), redis.DialReadTimeout(2*time.Second)); err == nil {
			if _, err := c.Do("PING"); err == nil {
				t.Error("plain TCP PING answered on the TLS port")
			}
			c.Close()
		}
	}
}
