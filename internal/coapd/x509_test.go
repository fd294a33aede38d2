package coapd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// testCA is a throwaway ECDSA P-256 certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf certificate with the given CN (and, for a server,
// the loopback address as SAN).
func (ca *testCA) issue(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func fingerprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// newCertStack is newSecureStack with a server certificate and the CA
// devices' certificates must verify against.
func newCertStack(t testing.TB, ca *testCA) *secureStack {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := &secureStack{st: st, logs: &logBuffer{}}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: logLevel()}))
	w := ingest.New(st, ingest.Config{Logger: log})
	w.Start()
	s.reg = registry.New(st, registry.Config{Logger: log, Ingest: w})
	if s.creds, err = credential.New(st, "test secret key"); err != nil {
		t.Fatal(err)
	}
	serverCert := ca.issue(t, "flownexus", true)
	s.srv = coapd.New(coapd.Config{
		Registry: s.reg, Ingest: w, Types: objects.Default().TypeOf, Logger: log, Credentials: s.creds,
		DTLS: coapd.DTLSConfig{Certificate: &serverCert, ClientCAs: ca.pool},
	})
	if err := s.srv.StartDTLS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.dtls = s.srv.DTLSAddr().String()
	t.Cleanup(func() {
		s.srv.Stop()
		w.Close()
		_ = st.Close()
	})
	return s
}

// dialCert completes a certificate handshake (ECDHE_ECDSA_WITH_AES_128_CCM_8)
// verifying the server against ca.
func dialCert(t testing.TB, addr string, ca *testCA, cert tls.Certificate) (*udpclient.Conn, error) {
	t.Helper()
	cc, _, err := dialDTLS(t, nil, addr, nil,
		piondtls.WithCertificates(cert), piondtls.WithRootCAs(ca.pool), piondtls.WithServerName("127.0.0.1"),
		piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8))
	return cc, err
}

func TestDTLSCertificateRegistration(t *testing.T) {
	ca := newTestCA(t, "device CA")
	s := newCertStack(t, ca)
	ctx := context.Background()
	dev := ca.issue(t, "urn:imei:7", false)
	if _, err := s.creds.Add(ctx, store.Actor{}, credential.AddRequest{Endpoint: "urn:imei:7", CertCN: "urn:imei:7"}); err != nil {
		t.Fatal(err)
	}
	cc, err := dialCert(t, s.dtls, ca, dev)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc, "urn:imei:7")
	if reg, ok := s.reg.ByEndpoint("urn:imei:7"); !ok || reg.Transport != registry.TransportDTLS {
		t.Fatalf("registration %+v %v", reg, ok)
	}
	if r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), "ep=urn:imei:8"); r.code != codes.Forbidden {
		t.Fatalf("register as another endpoint: %v", r.code)
	}

	// A fingerprint binding admits that certificate only.
	dev9 := ca.issue(t, "urn:imei:9", false)
	if _, err := s.creds.Add(ctx, store.Actor{}, credential.AddRequest{Endpoint: "urn:imei:9",
		CertFingerprint: fingerprint(dev9)}); err != nil {
		t.Fatal(err)
	}
	cc9, err := dialCert(t, s.dtls, ca, dev9)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc9, "urn:imei:9")
	impostor := ca.issue(t, "urn:imei:9", false) // same CN, another key
	refusedSession(t, s, ca, impostor)

	// No credential for the certificate's names: the session is closed.
	refusedSession(t, s, ca, ca.issue(t, "urn:imei:unknown", false))

	// PSK devices are served beside certificate devices.
	s.addPSK(t, "urn:imei:psk", "dev-psk", pskKey)
	pc, err := dialPSK(t, s.dtls, "dev-psk", pskKey, nil)
	if err != nil {
		t.Fatalf("PSK handshake with a certificate configured: %v", err)
	}
	register(t, pc, "urn:imei:psk")

	// A certificate of another CA fails the handshake.
	other := newTestCA(t, "other CA")
	if _, err := dialCert(t, s.dtls, ca, other.issue(t, "urn:imei:7", false)); err == nil {
		t.Fatal("handshake with a certificate of an unknown CA succeeded")
	}
}

// refusedSession checks that a certificate that verifies but is bound to
// no endpoint gets no registration: its session is closed after the
// handshake.
func refusedSession(t *testing.T, s *secureStack, ca *testCA, cert tls.Certificate) {
	t.Helper()
	cc, err := dialCert(t, s.dtls, ca, cert)
	if err != nil {
		return // refused in the handshake: also fine
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := cc.NewPostRequest(ctx, "/rd", message.AppLinkFormat, nil, queries("ep="+cert.Leaf.Subject.CommonName)...)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := cc.Do(req); err == nil && resp.Code() == codes.Created {
		t.Fatalf("certificate %s registered", cert.Leaf.Subject.CommonName)
	}
}
