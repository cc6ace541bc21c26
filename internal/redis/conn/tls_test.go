package conn

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/billing-exporter/billing_exporter/internal/testserver"
)

// TestTLSFilesConfig: the files are checked when the settings are built,
// and a bad one is refused in one line that names it and quotes no key.
func TestTLSFilesConfig(t *testing.T) {
	ca := testserver.NewCA(t, "redis CA")
	client := ca.Client("billing-exporter")
	dir := t.TempDir()
	const secret = "NOT-A-KEY-5ecret"
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.pem")

	if c, err := (TLSFiles{}).Config(); c != nil || err != nil {
		t.Errorf("no settings: %v, %v; want nil, nil", c, err)
	}
	c, err := TLSFiles{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile, ServerName: "redis.internal"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.RootCAs == nil || c.ServerName != "redis.internal" || c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify {
		t.Errorf("config: roots %v, server name %q, min version %x, insecure %v", c.RootCAs != nil, c.ServerName, c.MinVersion, c.InsecureSkipVerify)
	}
	if cert, err := c.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil || len(cert.Certificate) == 0 {
		t.Errorf("client certificate: %v", err)
	}
	if c, err := (TLSFiles{InsecureSkipVerify: true}).Config(); err != nil || !c.InsecureSkipVerify || c.RootCAs != nil {
		t.Errorf("insecure: %+v, %v", c, err)
	}

	bad := []struct {
		name  string
		files TLSFiles
		want  string // in the message
	}{
		{"missing CA file", TLSFiles{CAFile: missing}, missing},
		{"CA file not PEM", TLSFiles{CAFile: notPEM}, notPEM},
		{"certificate without key", TLSFiles{CertFile: client.CertFile}, "both the certificate and the key file"},
		{"key without certificate", TLSFiles{KeyFile: client.KeyFile}, "both the certificate and the key file"},
		{"certificate not PEM", TLSFiles{CertFile: notPEM, KeyFile: client.KeyFile}, notPEM},
		{"key not PEM", TLSFiles{CertFile: client.CertFile, KeyFile: notPEM}, notPEM},
		{"key of another certificate", TLSFiles{CertFile: client.CertFile, KeyFile: ca.Client("other").KeyFile}, client.CertFile},
		{"missing key file", TLSFiles{CertFile: client.CertFile, KeyFile: missing}, missing},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.files.Config()
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || strings.Contains(msg, secret) {
				t.Errorf("message %q: want one line naming %q, without the file's contents", msg, tc.want)
			}
		})
	}
}

// TestTLSConfigFuncSwap: WithTLSConfigFunc is asked at each dial, under the
// reply bound (our own TLS dial): connections dialled after a swap (a
// reload's new CA bundle) use the new configuration, with the same Settings.
func TestTLSConfigFuncSwap(t *testing.T) {
	ca := testserver.NewCA(t, "redis CA")
	srv := testserver.StartRedisTLS(t, ca, false)
	const key = "usage:1:2026-11"
	srv.HSet(key, "messages", 7)
	var cfg atomic.Pointer[tls.Config]
	cfg.Store(testserver.NewCA(t, "another CA").ClientConfig())
	target, err := ParseTarget(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSettings(target, WithTLSConfigFunc(cfg.Load), WithMaxReplyBytes(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	pool := s.NewPool(target.Address)
	defer pool.Close()
	ctx := context.Background()
	hget := func() (string, error) {
		c, err := pool.GetContext(ctx)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return redis.String(s.Do(ctx, c, "hget", "HGET", key, "messages"))
	}
	if _, err := hget(); err == nil {
		t.Fatal("read with a CA that did not sign the server's certificate")
	}
	cfg.Store(ca.ClientConfig())
	if v, err := hget(); err != nil || v != "7" {
		t.Fatalf("after the swap: messages = %q, %v; want 7", v, err)
	}
}
