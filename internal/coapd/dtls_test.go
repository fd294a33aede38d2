package coapd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// secureStack is a server listening on plain CoAP and CoAP/DTLS with a
// credential store, over a real SQLite file.
type secureStack struct {
	st         *store.Store
	reg        *registry.Registry
	srv        *coapd.Server
	creds      *credential.Service
	udp, dtls  string
	logs       *logBuffer
	handshakes atomic.Int64 // completed handshakes, full and resumed
	resumed    atomic.Int64 // abbreviated handshakes resuming a cached session
}

func newSecureStack(t testing.TB) *secureStack {
	t.Helper()
	return newSecureStackWith(t, false)
}

// newSecureStackWith is newSecureStack; quiet discards the log (for
// measurements).
func newSecureStackWith(t testing.TB, quiet bool, mod ...func(*coapd.Config)) *secureStack {
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
	var logw io.Writer = s.logs
	if quiet {
		logw = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: logLevel()}))
	w := ingest.New(st, ingest.Config{Logger: log})
	w.Start()
	s.reg = registry.New(st, registry.Config{Logger: log, Ingest: w})
	if s.creds, err = credential.New(st, "test secret key"); err != nil {
		t.Fatal(err)
	}
	cfg := coapd.Config{
		Registry: s.reg, Ingest: w, Types: objects.Default().TypeOf, Logger: log, Credentials: s.creds,
		DTLS: coapd.DTLSConfig{OnHandshake: func(_ netip.AddrPort, _ string, resumed bool) {
			s.handshakes.Add(1)
			if resumed {
				s.resumed.Add(1)
			}
		}},
	}
	noSourceBounds(t, &cfg)
	for _, m := range mod {
		m(&cfg)
	}
	s.srv = coapd.New(cfg)
	if err := s.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.srv.StartDTLS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.udp, s.dtls = s.srv.Addr().String(), s.srv.DTLSAddr().String()
	t.Cleanup(func() {
		s.srv.Stop()
		w.Close()
		_ = st.Close()
	})
	return s
}

func (s *secureStack) addPSK(t testing.TB, endpoint, identity string, key []byte) {
	t.Helper()
	if _, err := s.creds.Add(context.Background(), store.Actor{Name: "test"},
		credential.AddRequest{Endpoint: endpoint, PSKIdentity: identity, PSKKey: key}); err != nil {
		t.Fatal(err)
	}
}

// dialPSK completes a DTLS-PSK handshake with the server and returns the
// CoAP connection over it; h, when set, answers the server's requests.
func dialPSK(t testing.TB, addr, identity string, key []byte, h udpclient.HandlerFunc) (*udpclient.Conn, error) {
	t.Helper()
	cc, _, err := dialPSKFrom(t, nil, addr, identity, key, h)
	return cc, err
}

// dialPSKFrom is dialPSK from the local address laddr (nil: any); it also
// returns the UDP socket, which a test closes to drop the session without
// close_notify, as a rebooting device does.
func dialPSKFrom(t testing.TB, laddr *net.UDPAddr, addr, identity string, key []byte, h udpclient.HandlerFunc) (*udpclient.Conn, *net.UDPConn, error) {
	t.Helper()
	opts := append(pskClient(identity, key), piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	return dialDTLS(t, laddr, addr, h, opts...)
}

// pskClient are the handshake options of a PSK client (CCM_8).
func pskClient(identity string, key []byte) []piondtls.ClientOption {
	return []piondtls.ClientOption{
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
	}
}

// dialDTLS completes a handshake with the server at addr from laddr (nil:
// any) with the given client options and returns the CoAP connection over
// it and its UDP socket; h, when set, answers the server's requests.
func dialDTLS(t testing.TB, laddr *net.UDPAddr, addr string, h udpclient.HandlerFunc, opts ...piondtls.ClientOption) (*udpclient.Conn, *net.UDPConn, error) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), raddr, opts...)
	if err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		return nil, nil, err
	}
	copts := []udp.Option{options.WithErrors(func(error) {}), options.WithCloseSocket()}
	if h != nil {
		copts = append(copts, options.WithHandlerFunc(h))
	}
	cc := coapdtls.Client(dc, copts...)
	t.Cleanup(func() { _ = cc.Close() })
	return cc, c, nil
}

var pskKey = []byte("0123456789abcdef")

func TestDTLSPSKRegistration(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	ctx := context.Background()

	// The device answers the server's reads of /3/0/0.
	device := func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
		if p, _ := r.Path(); p == "/3/0/0" && r.Code() == codes.GET {
			_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("ACME")))
			return
		}
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
	cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, device)
	if err != nil {
		t.Fatal(err)
	}
	loc := register(t, cc, "urn:imei:1", "lt=300", "lwm2m=1.1")
	reg, ok := s.reg.ByEndpoint("urn:imei:1")
	if !ok || reg.Transport != registry.TransportDTLS {
		t.Fatalf("registration %+v %v, want one over DTLS", reg, ok)
	}
	if r := post(t, cc, loc, message.TextPlain, nil, "lt=600"); r.code != codes.Changed {
		t.Fatalf("update: %v %q", r.code, r.body)
	}
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":21.5}]`)
	if r := post(t, cc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
		t.Fatalf("send: %v %q", r.code, r.body)
	}

	// The server reaches the device over its session.
	sc, err := s.srv.Dial(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := sc.Get(rctx, "/3/0/0")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := resp.ReadBody(); resp.Code() != codes.Content || string(b) != "ACME" {
		t.Fatalf("read over DTLS: %v %q", resp.Code(), b)
	}

	if r := del(t, cc, loc); r.code != codes.Deleted {
		t.Fatalf("de-register: %v", r.code)
	}
	if n := s.handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
	// With the session gone, Dial says so instead of sending in clear.
	_ = cc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.srv.Dial(ctx, reg)
		if errors.Is(err, coapd.ErrNoSession) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dial after the session closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDTLSHandshakeRefused(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	if _, err := dialPSK(t, s.dtls, "dev-1", []byte("fedcba9876543210"), nil); err == nil {
		t.Error("handshake with a wrong key succeeded")
	}
	if _, err := dialPSK(t, s.dtls, "nobody", pskKey, nil); err == nil {
		t.Error("handshake with an unknown identity succeeded")
	}
	if d := handshakeAlert(t, s.dtls, "nobody", pskKey); d != 115 {
		t.Errorf("unknown identity answered with alert %d, want 115 (unknown_psk_identity)", d)
	}
	if n := s.handshakes.Load(); n != 0 {
		t.Errorf("%d handshakes completed", n)
	}
	if s.reg.Len() != 0 {
		t.Errorf("%d registrations", s.reg.Len())
	}
}

// handshakeAlert runs a PSK handshake that the server refuses and returns
// the description of the fatal plaintext alert it answered with, -1 for
// none.
func handshakeAlert(t *testing.T, addr, identity string, key []byte) int {
	t.Helper()
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &alertRecorder{PacketConn: dtlsnet.PacketConnFromConn(c)}
	rec.desc.Store(-1)
	dc, err := piondtls.ClientWithOptions(rec, raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err == nil {
		t.Fatalf("handshake as %q succeeded", identity)
	}
	return int(rec.desc.Load())
}

// alertRecorder records the description of a fatal epoch-0 alert record
// read from the server.
type alertRecorder struct {
	net.PacketConn
	desc atomic.Int32
}

func (r *alertRecorder) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := r.PacketConn.ReadFrom(p)
	if n == 15 && p[0] == 21 && p[3] == 0 && p[4] == 0 && p[13] == 2 {
		r.desc.Store(int32(p[14]))
	}
	return n, a, err
}

func TestDTLSIdentityBinding(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	s.addPSK(t, "urn:imei:2", "dev-2", []byte("another key 1234"))
	ctx := context.Background()

	cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	// dev-1 may not register as urn:imei:2, nor as an endpoint without
	// credentials.
	for _, ep := range []string{"urn:imei:2", "urn:imei:3"} {
		r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), "ep="+ep)
		if r.code != codes.Forbidden || r.location != "" {
			t.Fatalf("register as %s with dev-1's identity: %v %q", ep, r.code, r.location)
		}
	}
	// Nor act on urn:imei:2's registration.
	cc2, err := dialPSK(t, s.dtls, "dev-2", []byte("another key 1234"), nil)
	if err != nil {
		t.Fatal(err)
	}
	loc2 := register(t, cc2, "urn:imei:2")
	if r := post(t, cc, loc2, message.TextPlain, nil, "lt=60"); r.code != codes.Forbidden {
		t.Fatalf("update of another device's registration: %v", r.code)
	}
	if r := del(t, cc, loc2); r.code != codes.Forbidden {
		t.Fatalf("de-register of another device's registration: %v", r.code)
	}
	// A Send before registering is refused; urn:imei:2's values are not
	// reachable through dev-1.
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":1}]`)
	if r := post(t, cc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Forbidden {
		t.Fatalf("send without registration: %v", r.code)
	}

	// Plain CoAP: an endpoint with credentials is refused, others are not.
	pc := dial(t, s.udp)
	for _, ep := range []string{"urn:imei:1", "urn:imei:2"} {
		r := post(t, pc, "/rd", message.AppLinkFormat, []byte(links), "ep="+ep)
		if r.code != codes.Forbidden {
			t.Fatalf("plain register of %s: %v", ep, r.code)
		}
	}
	if r := post(t, pc, loc2, message.TextPlain, nil, "lt=60"); r.code != codes.Forbidden {
		t.Fatalf("plain update of a DTLS registration: %v", r.code)
	}
	register(t, pc, "urn:imei:plain")

	audit, err := s.st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, a := range audit {
		if a.Action == "device.refused" {
			refused = append(refused, a.Target+" "+string(a.Detail))
		}
	}
	for _, want := range []string{
		`urn:imei:2 {"bound_endpoint":"urn:imei:1","identity":"psk:dev-1","reason":"identity bound to another endpoint"}`,
		`urn:imei:3 {"bound_endpoint":"urn:imei:1","identity":"psk:dev-1","reason":"identity bound to another endpoint"}`,
		`urn:imei:1 {"reason":"endpoint has credentials: plain CoAP refused"}`,
		`urn:imei:2 {"reason":"registration made over DTLS: plain CoAP refused"}`,
	} {
		found := false
		for _, r := range refused {
			found = found || r == want
		}
		if !found {
			t.Errorf("no audit entry %s in\n%s", want, strings.Join(refused, "\n"))
		}
	}
	if reg, _ := s.reg.ByEndpoint("urn:imei:2"); reg.Lifetime != 86400 {
		t.Errorf("urn:imei:2 changed by refused requests: %+v", reg)
	}
}

// TestDTLSRandomDatagrams sends random and truncated DTLS-looking
// datagrams at the DTLS port from many sources: the server survives, a
// real device still registers, and no goroutine outlives the garbage.
func TestDTLSRandomDatagrams(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	before := goroutines()
	raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
	seeds := [][]byte{
		{},
		{0x16},
		{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},             // handshake record claiming 64 KiB
		{0x16, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0},       // truncated ClientHello
		{0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 3, 1, 2, 3},          // application data, epoch 1
		{0x19, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}, // tls12_cid record
		{0x15, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 40},            // alert
	}
	rnd := uint64(1)
	next := func() byte { rnd = rnd*6364136223846793005 + 1442695040888963407; return byte(rnd >> 56) }
	for i := range 40 {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 20 {
			b := append([]byte(nil), seeds[(i+j)%len(seeds)]...)
			for range int(next()) % 64 {
				b = append(b, next())
			}
			if j%3 == 0 && len(b) > 0 {
				b[next()%byte(len(b))] ^= next()
			}
			_, _ = c.Write(b)
		}
		_ = c.Close()
	}
	cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc, "urn:imei:1")
	_ = cc.Close()
	// Associations the garbage opened end with the handshake timeout of
	// the server (15 s) at the latest; those the real device used, with
	// its close_notify.
	deadline := time.Now().Add(25 * time.Second)
	for goroutines() > before+2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := goroutines(); n > before+2 {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
	if strings.Contains(s.logs.String(), "panic") {
		t.Fatalf("panic:\n%s", s.logs.String())
	}
}

// TestDTLSStopClosesSessions: Stop returns with sessions live and closes
// them.
func TestDTLSStopClosesSessions(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc, "urn:imei:1")
	done := make(chan struct{})
	go func() { s.srv.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hangs with a live DTLS session")
	}
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the device's session outlived the server")
	}
}

func goroutines() int { return runtime.NumGoroutine() }

// TestDTLSRebootSamePort drops a device's session without close_notify
// and handshakes again from the same address and port, as a rebooted
// device behind a NAT that kept its mapping does: the new handshake and
// Register complete at once (not after the old session's idle timeout),
// and the old session is closed.
func TestDTLSRebootSamePort(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	cc, sock, err := dialPSKFrom(t, nil, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc, "urn:imei:1")
	laddr := sock.LocalAddr().(*net.UDPAddr)
	first, _ := s.reg.ByEndpoint("urn:imei:1")
	oldSession, err := s.srv.Dial(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	_ = sock.Close() // no close_notify reaches the server

	start := time.Now()
	cc2, _, err := dialPSKFrom(t, laddr, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatalf("handshake from the same port after a reboot: %v", err)
	}
	register(t, cc2, "urn:imei:1")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("re-handshake and Register took %v", d)
	}
	if n := s.handshakes.Load(); n != 2 {
		t.Fatalf("%d handshakes, want 2", n)
	}
	select {
	case <-oldSession.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stale session was not closed")
	}
	// The new session carries the device's traffic.
	second, _ := s.reg.ByEndpoint("urn:imei:1")
	if second.ID == first.ID || second.Addr.Port() != uint16(laddr.Port) {
		t.Fatalf("registration after reboot %+v", second)
	}
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":2}]`)
	if r := post(t, cc2, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
		t.Fatalf("send on the new session: %v", r.code)
	}
}

// TestDTLSSpoofedClientHelloKeepsSession sends a ClientHello from the
// address of an established session without completing a handshake (what
// an attacker spoofing the device's address can do): the session goes on.
func TestDTLSSpoofedClientHelloKeepsSession(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	cc, sock, err := dialPSKFrom(t, nil, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	register(t, cc, "urn:imei:1")
	hello := []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 12,
		1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // ClientHello header, epoch 0, empty body
	for range 3 {
		if _, err := sock.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":3}]`)
	if r := post(t, cc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
		t.Fatalf("send after a stray ClientHello: %v", r.code)
	}
	if n := s.handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
}

// TestDTLSSessionsSurviveRestart stops the server with a session file and
// starts a new one on the same port: the device's session goes on with no
// handshake, a Send is accepted and the server reaches the device; the
// saved file is used once.
func TestDTLSSessionsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "db.sqlite"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	creds, err := credential.New(st, "test secret key")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creds.Add(ctx, store.Actor{}, credential.AddRequest{Endpoint: "urn:imei:1", PSKIdentity: "dev-1", PSKKey: pskKey}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dtls-sessions")
	var handshakes atomic.Int64
	start := func(addr string) (*coapd.Server, *registry.Registry, func()) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		w := ingest.New(st, ingest.Config{Logger: log})
		w.Start()
		reg := registry.New(st, registry.Config{Logger: log, Ingest: w})
		srv := coapd.New(coapd.Config{Registry: reg, Ingest: w, Types: objects.Default().TypeOf, Logger: log,
			Credentials: creds, DTLS: coapd.DTLSConfig{SessionFile: file,
				OnHandshake: func(netip.AddrPort, string, bool) { handshakes.Add(1) }}})
		if err := srv.StartDTLS(addr); err != nil {
			t.Fatal(err)
		}
		return srv, reg, func() { srv.Stop(); w.Close() }
	}
	srv1, _, stop1 := start("127.0.0.1:0")
	addr := srv1.DTLSAddr().String()
	device := func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
		_ = w.SetResponse(codes.Content, message.TextPlain, bytes.NewReader([]byte("ACME")))
	}
	cc, err := dialPSK(t, addr, "dev-1", pskKey, device)
	if err != nil {
		t.Fatal(err)
	}
	loc := register(t, cc, "urn:imei:1")
	stop1()
	select {
	case <-cc.Done():
		t.Fatal("the device's session was closed by the server's stop")
	case <-time.After(100 * time.Millisecond):
	}

	srv2, reg2, stop2 := start(addr)
	defer stop2()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("session file still there after restore: %v", err)
	}
	// The device's Update restores its registration and arrives on the
	// resumed session.
	if r := post(t, cc, loc, message.TextPlain, nil, "lt=600"); r.code != codes.Changed {
		t.Fatalf("update after restart: %v %q", r.code, r.body)
	}
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":4}]`)
	if r := post(t, cc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
		t.Fatalf("send after restart: %v", r.code)
	}
	reg, ok := reg2.ByEndpoint("urn:imei:1")
	if !ok || reg.Transport != registry.TransportDTLS {
		t.Fatalf("registration after restart %+v %v", reg, ok)
	}
	sc, err := srv2.Dial(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if resp, err := sc.Get(rctx, "/3/0/0"); err != nil || resp.Code() != codes.Content {
		t.Fatalf("read after restart: %v", err)
	}
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
}

// TestDTLSSessionLifetime: a session that never registers is closed after
// the idle timeout; a registered one outlives it as long as its
// registration; after De-register it is closed after the idle timeout.
func TestDTLSSessionLifetime(t *testing.T) {
	const idle = time.Second
	s := newSecureStackWith(t, false, func(c *coapd.Config) { c.IdleTimeout = idle })
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	s.addPSK(t, "urn:imei:2", "dev-2", pskKey)
	closedWithin := func(cc *udpclient.Conn, d time.Duration) bool {
		select {
		case <-cc.Done():
			return true
		case <-time.After(d):
			return false
		}
	}
	unregistered, err := dialPSK(t, s.dtls, "dev-2", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := register(t, cc, "urn:imei:1")
	if !closedWithin(unregistered, 4*idle) {
		t.Fatal("a session with no registration outlived the idle timeout")
	}
	if closedWithin(cc, 3*idle) {
		t.Fatal("a registered session was closed while idle")
	}
	if r := del(t, cc, loc); r.code != codes.Deleted {
		t.Fatalf("de-register: %v", r.code)
	}
	if !closedWithin(cc, 4*idle) {
		t.Fatal("the session outlived its registration by more than the idle timeout")
	}
}

// TestListenTwiceAndStopUnserved: a second Listen of either transport
// fails, and Stop of a server whose DTLS socket was
// bound but never served closes it and returns.
func TestListenTwiceAndStopUnserved(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "db.sqlite"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	creds, err := credential.New(st, "test secret key")
	if err != nil {
		t.Fatal(err)
	}
	w := ingest.New(st, ingest.Config{})
	w.Start()
	defer w.Close()
	srv := coapd.New(coapd.Config{Registry: registry.New(st, registry.Config{Ingest: w}), Ingest: w, Credentials: creds,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err == nil {
		t.Error("second Listen succeeded")
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	if err := srv.ListenDTLS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	dtlsAddr := srv.DTLSAddr()
	if err := srv.ListenDTLS("127.0.0.1:0"); err == nil {
		t.Error("second ListenDTLS succeeded")
	}
	stopped := make(chan struct{})
	go func() { srv.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Stop: %v", err)
	}
	// The unserved DTLS socket is closed: its port can be bound again.
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(dtlsAddr))
	if err != nil {
		t.Fatalf("DTLS port still bound after Stop: %v", err)
	}
	_ = c.Close()
}

// clientSessions is a client's session cache (by server name), as an
// nRF91 modem keeps one.
type clientSessions struct {
	mu sync.Mutex
	m  map[string]piondtls.Session
}

func (c *clientSessions) Set(key []byte, s piondtls.Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[string(key)] = s
	return nil
}

func (c *clientSessions) Get(key []byte) (piondtls.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[string(key)], nil
}

func (c *clientSessions) Del(key []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, string(key))
	return nil
}

// TestDTLSSessionResumption: a device that lost its session (new socket,
// no Connection ID) but kept its session cache resumes with an abbreviated
// handshake, is bound to its endpoint again and updates its registration;
// with its credential removed, resumption is refused as a full handshake
// would be.
func TestDTLSSessionResumption(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	cache := &clientSessions{m: make(map[string]piondtls.Session)}
	dial := func() (*udpclient.Conn, error) {
		opts := append(pskClient("dev-1", pskKey), piondtls.WithServerName("flownexus"), piondtls.WithSessionStore(cache))
		cc, _, err := dialDTLS(t, nil, s.dtls, nil, opts...)
		return cc, err
	}
	cc, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	loc := register(t, cc, "urn:imei:1")
	if s.handshakes.Load() != 1 || s.resumed.Load() != 0 {
		t.Fatalf("first handshake: %d, %d resumed", s.handshakes.Load(), s.resumed.Load())
	}

	cc2, err := dial()
	if err != nil {
		t.Fatalf("resumption: %v", err)
	}
	// The server counts the handshake once its side completed.
	for deadline := time.Now().Add(2 * time.Second); s.handshakes.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s.handshakes.Load() != 2 || s.resumed.Load() != 1 {
		t.Fatalf("after resumption: %d handshakes, %d resumed; want 2 and 1", s.handshakes.Load(), s.resumed.Load())
	}
	if r := post(t, cc2, loc, message.TextPlain, nil, "lt=600"); r.code != codes.Changed {
		t.Fatalf("update on the resumed session: %v %q", r.code, r.body)
	}

	if err := s.creds.Remove(context.Background(), store.Actor{Name: "test"}, "urn:imei:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(); err == nil {
		t.Fatal("resumption succeeded after the credential was removed")
	}
	if s.resumed.Load() != 1 {
		t.Fatalf("%d resumed handshakes after the credential was removed", s.resumed.Load())
	}
}
