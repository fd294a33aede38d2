package app

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
)

// TestDTLSHandshakeFailureMetric fails a handshake with a PSK identity
// the server does not know: /metrics counts it by reason, with every
// reason listed from the start.
func TestDTLSHandshakeFailureMetric(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	s := startServer(t, cfg, Tuning{})
	raddr := net.UDPAddrFromAddrPort(s.CoAPSAddr())
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return []byte("0123456789abcdef"), nil }),
		piondtls.WithPSKIdentityHint([]byte("nobody")),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err == nil {
		t.Fatal("handshake with an unknown identity succeeded")
	}
	eventually(t, 5*time.Second, "the failure counted", func() bool {
		return strings.Contains(s.metrics(t), `flownexus_dtls_handshake_failures_total{reason="unknown_identity"} 1`+"\n")
	})
	m := s.metrics(t)
	for _, r := range []string{"bad_psk", "bad_certificate", "timeout", "no_cookie", "protocol"} {
		if want := `flownexus_dtls_handshake_failures_total{reason="` + r + `"} 0`; !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
