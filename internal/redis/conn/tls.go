package conn

import (
	"crypto/tls"
	"errors"

	"github.com/prometheus/common/config"
)

// TLSFiles are the --redis.tls-* settings.
type TLSFiles struct {
	CAFile             string
	CertFile, KeyFile  string
	ServerName         string
	InsecureSkipVerify bool
}

// Config builds the tls.Config, nil when nothing is set; each handshake
// reads the client certificate again.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f == (TLSFiles{}) {
		return nil, nil
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("a client certificate needs both the certificate and the key file")
	}
	return config.NewTLSConfig(&config.TLSConfig{
		CAFile:             f.CAFile,
		CertFile:           f.CertFile,
		KeyFile:            f.KeyFile,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify,
		MinVersion:         config.TLSVersion(tls.VersionTLS12),
	})
}
