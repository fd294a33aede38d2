package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/config"
)

// dtlsConfig builds the DTLS listener's configuration: sessions kept in
// the data directory across restarts and, when the certificate settings
// are given, X.509 device authentication.
func dtlsConfig(cfg config.Config) (coapd.DTLSConfig, error) {
	dc := coapd.DTLSConfig{SessionFile: cfg.DTLSSessionFile()}
	if cfg.DTLSCert == "" {
		return dc, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.DTLSCert, cfg.DTLSKey)
	if err != nil {
		return dc, fmt.Errorf("DTLS certificate (--coaps-cert, --coaps-key): %w", err)
	}
	pem, err := os.ReadFile(cfg.DTLSClientCA)
	if err != nil {
		return dc, fmt.Errorf("DTLS client CA (--coaps-client-ca): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return dc, fmt.Errorf("DTLS client CA (--coaps-client-ca): no PEM certificate in %s", cfg.DTLSClientCA)
	}
	dc.Certificate, dc.ClientCAs = &cert, pool
	return dc, nil
}
