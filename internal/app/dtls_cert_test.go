package app

import (
	"bytes"
	"context"
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
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// issueCert signs an ECDSA P-256 certificate for cn with parent (self
// when nil) and returns it with its key.
func issueCert(t *testing.T, cn string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// certConfig makes a device CA and a server certificate it signed, writes
// them as PEM files in dir and returns a configuration with DTLS on that
// names them (data in dir/data), and the CA.
func certConfig(t *testing.T, dir string) (config.Config, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caCert, caKey := issueCert(t, "device CA", true, nil, nil)
	srvCert, srvKey := issueCert(t, "flownexus", false, caCert, caKey)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.CoAPSListen = "127.0.0.1:0"
	cfg.DTLSCert, cfg.DTLSKey, cfg.DTLSClientCA = filepath.Join(dir, "srv.pem"), filepath.Join(dir, "srv.key"), filepath.Join(dir, "ca.pem")
	writePEM(t, cfg.DTLSCert, "CERTIFICATE", srvCert.Raw)
	writePEM(t, cfg.DTLSKey, "EC PRIVATE KEY", keyDER)
	writePEM(t, cfg.DTLSClientCA, "CERTIFICATE", caCert.Raw)
	return cfg, caCert, caKey
}

// TestDTLSCertificateFromFiles serves X.509 devices with the certificate,
// key and client CA given as files, as `serve --coaps-cert --coaps-key
// --coaps-client-ca` does.
func TestDTLSCertificateFromFiles(t *testing.T) {
	dir := t.TempDir()
	cfg, caCert, caKey := certConfig(t, dir)
	devCert, devKey := issueCert(t, "urn:imei:490154203237520", false, caCert, caKey)
	s := startServer(t, cfg, Tuning{})
	const ep = "urn:imei:490154203237520"
	if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"},
		credential.AddRequest{Endpoint: ep, CertCN: ep}); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	raddr := net.UDPAddrFromAddrPort(s.CoAPSAddr())
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), raddr,
		piondtls.WithCertificates(tls.Certificate{Certificate: [][]byte{devCert.Raw}, PrivateKey: devKey}),
		piondtls.WithRootCAs(pool), piondtls.WithServerName("127.0.0.1"),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	cc := coapdtls.Client(dc, options.WithCloseSocket(), options.WithErrors(func(error) {}))
	defer cc.Close()
	resp, err := cc.Post(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte("</3/0>")),
		message.Option{ID: message.URIQuery, Value: []byte("ep=" + ep)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Created {
		t.Fatalf("register with a certificate: %v", resp.Code())
	}
	if reg, ok := s.Registry.ByEndpoint(ep); !ok || reg.Transport != registry.TransportDTLS {
		t.Fatalf("registration %+v %v", reg, ok)
	}

	// A bad certificate file stops the start with one clear error.
	cfg2 := cfg
	cfg2.DataDir, cfg2.DTLSKey = filepath.Join(dir, "data2"), cfg.DTLSCert
	if _, err := New(context.Background(), cfg2, testLogger(t), Tuning{}); err == nil {
		t.Fatal("New with a certificate as its own key succeeded")
	}
}

// TestDTLSCertificateFleet runs simulated devices with X.509 certificates:
// they register over DTLS and answer the server's reads.
func TestDTLSCertificateFleet(t *testing.T) {
	cfg, caCert, caKey := certConfig(t, t.TempDir())
	s := startServer(t, cfg, Tuning{})
	const n = 2
	certs := make([]tls.Certificate, n)
	for i := range n {
		ep, _ := (simulator.Config{}).EndpointName(i)
		c, k := issueCert(t, ep, false, caCert, caKey)
		certs[i] = tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
		if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"},
			credential.AddRequest{Endpoint: ep, CertCN: ep}); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	f := startFleet(t, s, n, func(c *simulator.Config) {
		c.Server = s.CoAPSAddr().String()
		c.Certificate = func(i int) tls.Certificate { return certs[i] }
		c.RootCAs = pool
	})
	for _, d := range f.Devices() {
		if reg, ok := s.Registry.ByEndpoint(d.Endpoint()); !ok || reg.Transport != registry.TransportDTLS {
			t.Fatalf("%s: registration %+v %v", d.Endpoint(), reg, ok)
		}
		var res opResult
		if code := s.call(t, "POST", "/api/v1/endpoints/"+d.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
			t.Fatalf("read over a certificate session: %d", code)
		}
		if st := d.Stats(); st.Handshakes != 1 {
			t.Fatalf("%d handshakes", st.Handshakes)
		}
	}
}
