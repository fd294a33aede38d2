package coapd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/dtlsmux"
	"github.com/flownexus/flownexus/internal/store"
)

// handshakeFailure is one report of DTLSConfig.OnHandshakeFailure.
type handshakeFailure struct{ identity, reason string }

// failHandshake runs a client handshake with opts that must fail within
// d.
func failHandshake(t *testing.T, addr string, d time.Duration, wrap func(net.PacketConn) net.PacketConn, opts ...piondtls.ClientOption) {
	t.Helper()
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn = dtlsnet.PacketConnFromConn(c)
	if wrap != nil {
		pc = wrap(pc)
	}
	dc, err := piondtls.ClientWithOptions(pc, raddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err == nil {
		t.Fatal("the handshake succeeded")
	}
}

// TestHandshakeFailuresReported makes handshakes fail in each way a device
// can get wrong: every failure reaches OnHandshakeFailure (the metric)
// with its reason and presented identity; each identity's (or, without
// one, each source's) failures are logged and, with an identity, audited
// once per interval; a client that never returned its cookie is only
// counted. Before, a wrong key for a known identity left no trace at all.
func TestHandshakeFailuresReported(t *testing.T) {
	ca := newTestCA(t, "device CA")
	serverCert := ca.issue(t, "flownexus", true)
	var mu sync.Mutex
	var got []handshakeFailure
	s := newSecureStackWith(t, false, func(c *coapd.Config) {
		c.DTLS.HandshakeTimeout = time.Second
		c.DTLS.CookieTimeout = 300 * time.Millisecond
		c.DTLS.Certificate, c.DTLS.ClientCAs = &serverCert, ca.pool
		c.DTLS.OnHandshakeFailure = func(_ netip.AddrPort, identity, reason string) {
			mu.Lock()
			got = append(got, handshakeFailure{identity, reason})
			mu.Unlock()
		}
	})
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	wrongKey := []byte("fedcba9876543210")
	reported := func(f handshakeFailure) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, g := range got {
			if g == f {
				n++
			}
		}
		return n
	}

	// A wrong key for a known identity, twice: the server cannot decrypt
	// the client's Finished and gives up at its handshake timeout.
	for range 2 {
		failHandshake(t, s.dtls, 1500*time.Millisecond, nil, pskClient("dev-1", wrongKey)...)
	}
	badPSK := handshakeFailure{"psk:dev-1", dtlsmux.ReasonBadPSK}
	waitFor(t, 5*time.Second, "two bad_psk failures", func() bool { return reported(badPSK) == 2 })

	// An identity the server does not know.
	failHandshake(t, s.dtls, 3*time.Second, nil, pskClient("nobody", pskKey)...)
	waitFor(t, 5*time.Second, "unknown_identity", func() bool {
		return reported(handshakeFailure{"psk:nobody", dtlsmux.ReasonUnknownIdentity}) == 1
	})

	// A client that returns its cookie, gets the ServerHello flight and
	// goes silent.
	failHandshake(t, s.dtls, 1500*time.Millisecond, func(pc net.PacketConn) net.PacketConn {
		return &silentAfter{PacketConn: pc, n: 2}
	}, pskClient("dev-1", pskKey)...)
	waitFor(t, 5*time.Second, "timeout", func() bool { return reported(handshakeFailure{"", dtlsmux.ReasonTimeout}) == 1 })

	// A ClientHello whose cookie never comes back.
	raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(cookielessHello(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no_cookie", func() bool { return reported(handshakeFailure{"", dtlsmux.ReasonNoCookie}) == 1 })

	// A client whose certificate is of another CA (it sends none: the
	// server asks for one of its CA), one whose certificate expired, and
	// one of the right CA that no credential binds to an endpoint.
	certClient := func(cert tls.Certificate) []piondtls.ClientOption {
		return []piondtls.ClientOption{piondtls.WithCertificates(cert), piondtls.WithRootCAs(ca.pool),
			piondtls.WithServerName("127.0.0.1"), piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)}
	}
	other := newTestCA(t, "other CA")
	failHandshake(t, s.dtls, 3*time.Second, nil, certClient(other.issue(t, "urn:imei:7", false))...)
	waitFor(t, 5*time.Second, "bad_certificate without a certificate", func() bool {
		return reported(handshakeFailure{"", dtlsmux.ReasonBadCertificate}) == 1
	})
	failHandshake(t, s.dtls, 3*time.Second, nil, certClient(ca.issueExpired(t, "urn:imei:expired"))...)
	waitFor(t, 5*time.Second, "bad_certificate of an expired one", func() bool {
		return reported(handshakeFailure{"x509:urn:imei:expired", dtlsmux.ReasonBadCertificate}) == 1
	})
	refusedSession(t, s, ca, ca.issue(t, "urn:imei:unbound", false))
	waitFor(t, 5*time.Second, "bad_certificate of an unbound one", func() bool {
		return reported(handshakeFailure{"x509:urn:imei:unbound", dtlsmux.ReasonBadCertificate}) == 1
	})

	// One audit entry per identity, written after the failure is counted.
	var entries []string
	auditEntries := func() []string {
		audit, err := s.st.ListAudit(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		entries = entries[:0]
		for _, a := range audit {
			if a.Action == "device.refused" {
				entries = append(entries, a.Target+" "+string(a.Detail))
			}
		}
		return entries
	}
	waitFor(t, 5*time.Second, "4 audit entries", func() bool { return len(auditEntries()) >= 4 })

	// One log line per identity and reason (or source, without an
	// identity), none for the missing cookie.
	lines := []string{
		`reason=bad_psk identity=psk:dev-1 endpoint=urn:imei:1`,
		`reason=unknown_identity identity=psk:nobody`,
		`reason=timeout identity=""`,
		`reason=bad_certificate identity=""`,
		`reason=bad_certificate identity=x509:urn:imei:expired`,
		`reason=bad_certificate identity=x509:urn:imei:unbound`,
	}
	waitFor(t, 5*time.Second, "the log lines", func() bool {
		logs := s.logs.String()
		for _, want := range lines {
			if !strings.Contains(logs, want) {
				return false
			}
		}
		return true
	})
	logs := s.logs.String()
	for _, want := range lines {
		if n := strings.Count(logs, `msg="DTLS handshake failed" `+want); n != 1 {
			t.Errorf("%d log lines with %s, want 1\n%s", n, want, logs)
		}
	}
	if strings.Contains(logs, "reason=no_cookie") {
		t.Errorf("a missing cookie was logged:\n%s", logs)
	}

	slices.Sort(entries)
	want := []string{
		` {"identity":"psk:nobody","reason":"DTLS handshake failed: unknown_identity"}`,
		` {"identity":"x509:urn:imei:expired","reason":"DTLS handshake failed: bad_certificate"}`,
		` {"identity":"x509:urn:imei:unbound","reason":"DTLS handshake failed: bad_certificate"}`,
		`urn:imei:1 {"identity":"psk:dev-1","reason":"DTLS handshake failed: bad_psk"}`,
	}
	if !slices.Equal(entries, want) {
		t.Errorf("audit entries:\n%s\nwant:\n%s", strings.Join(entries, "\n"), strings.Join(want, "\n"))
	}
}

// issueExpired makes a client certificate with the given CN that expired
// an hour ago.
func (ca *testCA) issueExpired(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
