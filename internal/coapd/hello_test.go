package coapd_test

import (
	"context"
	"net"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
)

// mbedTLSRecordVersion is the record-layer version mbed TLS 2.28 (Anjay's
// default build) puts on its ClientHellos when no minimum version is
// configured: its SSL 3.0 minimum in DTLS notation.
var mbedTLSRecordVersion = [2]byte{254, 0}

// withRecordVersion returns b with the record-layer version v.
func withRecordVersion(b []byte, v [2]byte) []byte {
	b = append([]byte(nil), b...)
	b[1], b[2] = v[0], v[1]
	return b
}

// TestClientHelloAnyRecordVersion sends a crafted ClientHello whose record
// layer says {254, 0}, then the same with the cookie: the server answers a
// HelloVerifyRequest and then its ServerHello flight, negotiating DTLS
// 1.2. pion alone drops such records: mbed TLS clients never got an
// answer.
func TestClientHelloAnyRecordVersion(t *testing.T) {
	s := newSecureStack(t)
	raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() handshake.Message {
		t.Helper()
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return handshakeMessage(buf[:n])
	}
	hello, err := clientHello(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(withRecordVersion(hello, mbedTLSRecordVersion)); err != nil {
		t.Fatal(err)
	}
	hvr, ok := read().(*handshake.MessageHelloVerifyRequest)
	if !ok {
		t.Fatal("the first ClientHello was not answered with a HelloVerifyRequest")
	}
	hello, err = clientHello(hvr.Cookie)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(withRecordVersion(hello, mbedTLSRecordVersion)); err != nil {
		t.Fatal(err)
	}
	sh, ok := read().(*handshake.MessageServerHello)
	if !ok {
		t.Fatal("the ClientHello with the cookie was not answered with a ServerHello")
	}
	if sh.Version.Major != 254 || sh.Version.Minor != 253 {
		t.Fatalf("ServerHello version %v, want DTLS 1.2", sh.Version)
	}
}

// helloVersion is a client's packet connection that writes its epoch-0
// ClientHello records with the record-layer version v, as mbed TLS does.
type helloVersion struct {
	net.PacketConn
	v [2]byte
}

func (c *helloVersion) WriteTo(p []byte, a net.Addr) (int, error) {
	if len(p) > 13 && p[0] == 22 && p[3] == 0 && p[4] == 0 && p[13] == byte(handshake.TypeClientHello) {
		p = withRecordVersion(p, c.v)
	}
	return c.PacketConn.WriteTo(p, a)
}

// TestHandshakeWithOldHelloRecordVersion runs a whole PSK handshake with a
// client that writes its ClientHello records as mbed TLS 2.28 does, then
// registers over the session.
func TestHandshakeWithOldHelloRecordVersion(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	pc := &helloVersion{PacketConn: dtlsnet.PacketConnFromConn(c), v: mbedTLSRecordVersion}
	dc, err := piondtls.ClientWithOptions(pc, raddr, pskClient("dev-1", pskKey)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		t.Fatalf("handshake with ClientHello records of version %v: %v", mbedTLSRecordVersion, err)
	}
	cc := coapdtls.Client(dc, options.WithErrors(func(error) {}), options.WithCloseSocket())
	defer cc.Close()
	register(t, cc, "urn:imei:1")
	if r := post(t, cc, "/dp", message.AppSenmlJSON, []byte(`[{"bn":"/3303/0/","n":"5700","v":1}]`)); r.code != codes.Changed {
		t.Fatalf("send: %v", r.code)
	}
}
