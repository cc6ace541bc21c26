package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// CA is a throwaway certificate authority for one test: a self-signed
// ECDSA P-256 root whose PEM certificate is written to CertFile, and which
// issues server and client certificates (KeyPair) into the same temporary
// directory. Nothing here is fit for anything but tests.
type CA struct {
	t        testing.TB
	dir      string
	name     string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	CertFile string         // PEM of the CA certificate
	Pool     *x509.CertPool // holding only this CA
	mu       sync.Mutex
	serial   int64
}

// KeyPair is a certificate issued by a CA and its private key, as PEM files
// (the key in PKCS#8) and as a tls.Certificate.
type KeyPair struct {
	CertFile, KeyFile string
	Cert              tls.Certificate
}

// NewCA creates a CA named name (its subject's common name).
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("CA key: %v", err)
	}
	ca := &CA{t: t, dir: t.TempDir(), name: name, key: key, serial: 1}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"billing_exporter tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("CA certificate: %v", err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(ca.cert)
	return ca
}

// Server issues a server certificate valid for hosts (IP addresses or DNS
// names); with none, for 127.0.0.1 and localhost.
func (ca *CA) Server(name string, hosts ...string) KeyPair {
	ca.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	tmpl := ca.template(name)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(name, tmpl)
}

// Client issues a client certificate with common name name.
func (ca *CA) Client(name string) KeyPair {
	ca.t.Helper()
	tmpl := ca.template(name)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.issue(name, tmpl)
}

// ClientConfig is a tls.Config that trusts only this CA (and presents
// certs, if any).
func (ca *CA) ClientConfig(certs ...KeyPair) *tls.Config {
	c := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	for _, kp := range certs {
		c.Certificates = append(c.Certificates, kp.Cert)
	}
	return c
}

func (ca *CA) template(name string) *x509.Certificate {
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"billing_exporter tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
}

func (ca *CA) issue(name string, tmpl *x509.Certificate) KeyPair {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatalf("issue %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.mu.Lock()
	n := ca.serial
	ca.mu.Unlock()
	base := filepath.Join(ca.dir, name+"-"+strconv.FormatInt(n, 10))
	kp := KeyPair{CertFile: base + ".pem", KeyFile: base + "-key.pem"}
	writePEM(ca.t, kp.CertFile, "CERTIFICATE", der)
	writePEM(ca.t, kp.KeyFile, "PRIVATE KEY", keyDER)
	if kp.Cert, err = tls.LoadX509KeyPair(kp.CertFile, kp.KeyFile); err != nil {
		ca.t.Fatal(err)
	}
	return kp
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	// Readable by the server's OS user too (redis-server runs as us, but a
	// key file 0600 owned by root is unreadable to a dropped-privilege
	// server); these are throwaway test keys.
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TLSRedis is a redis-server that speaks only TLS, with certificates from
// a test CA.
type TLSRedis struct {
	*Redis
	CA     *CA
	Server KeyPair
	// ClientCert is what the tests' connections present, issued by CA:
	// Redis started with requireClientCert checks it.
	ClientCert KeyPair
}

// StartRedisTLS starts redis-server with TLS on a free loopback port and no
// plain TCP port. With requireClientCert, --tls-auth-clients yes: a client
// must present a certificate signed by ca. extra are further arguments.
func StartRedisTLS(t testing.TB, ca *CA, requireClientCert bool, extra ...string) *TLSRedis {
	t.Helper()
	r := &TLSRedis{Redis: newRedis(t), CA: ca, Server: ca.Server("redis-server"), ClientCert: ca.Client("redis-test-client")}
	r.dialOpts = []redis.DialOption{redis.DialUseTLS(true), redis.DialTLSConfig(ca.ClientConfig(r.ClientCert))}
	authClients := "no"
	if requireClientCert {
		authClients = "yes"
	}
	r.start(append([]string{
		"--port", "0",
		"--tls-port", strconv.Itoa(r.Port),
		"--tls-cert-file", r.Server.CertFile,
		"--tls-key-file", r.Server.KeyFile,
		"--tls-ca-cert-file", ca.CertFile,
		"--tls-auth-clients", authClients,
	}, extra...))
	return r
}

// URL is the rediss:// address of the server.
func (r *TLSRedis) URL() string { return "rediss://" + r.Addr() }
