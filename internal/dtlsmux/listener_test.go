package dtlsmux_test

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	pionnet "github.com/pion/dtls/v3/pkg/net"

	"github.com/flownexus/flownexus/internal/dtlsmux"
)

var key = []byte("0123456789abcdef")

// listen starts a Listener on loopback that knows the PSK identity
// "dev-1" (bound to "ep-1") and records failed handshakes.
func listen(t *testing.T) (*dtlsmux.Listener, *failures) {
	t.Helper()
	c, err := dtlsmux.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &failures{}
	l, err := dtlsmux.NewListener(c, dtlsmux.Config{
		PSK: func(identity []byte) (string, []byte, error) {
			if string(identity) != "dev-1" {
				return "", nil, dtlsmux.ErrUnknownIdentity
			}
			return "ep-1", key, nil
		},
		OnFailure: f.add,
	})
	if err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.CloseAll()
		_ = l.Close()
	})
	return l, f
}

type failures struct {
	mu sync.Mutex
	fs []dtlsmux.Failure
}

func (f *failures) add(x dtlsmux.Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fs = append(f.fs, x)
}

func (f *failures) all() []dtlsmux.Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dtlsmux.Failure(nil), f.fs...)
}

// accept returns the next session of l, its handshake run unless it
// resumes a parked one.
func accept(t *testing.T, l *dtlsmux.Listener) (*dtlsmux.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := l.AcceptWithContext(ctx)
	if err != nil {
		return nil, err
	}
	c := nc.(*dtlsmux.Conn)
	if !c.Unparked() {
		if err := c.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

// alerts records the description of the first fatal plaintext alert
// the client reads (pion does not name unknown_psk_identity in its error).
type alerts struct {
	net.PacketConn
	desc atomic.Int32 // 1 + the description; 0 none
}

func (a *alerts) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := a.PacketConn.ReadFrom(p)
	// record header: type 21 (alert), version, epoch 0, ..., length 2;
	// body: level 2 (fatal), description
	if err == nil && n >= 15 && p[0] == 21 && p[3] == 0 && p[4] == 0 && p[13] == 2 {
		a.desc.CompareAndSwap(0, int32(p[14])+1)
	}
	return n, from, err
}

// client handshakes with l as identity over a new socket, asking for a
// Connection ID; rec, when set, records the alerts it receives.
func client(t *testing.T, l *dtlsmux.Listener, identity string, rec ...*alerts) (*piondtls.Conn, error) {
	t.Helper()
	raddr := l.Addr().(*net.UDPAddr)
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn = pionnet.PacketConnFromConn(c)
	if len(rec) > 0 {
		rec[0].PacketConn = pc
		pc = rec[0]
	}
	dc, err := piondtls.ClientWithOptions(pc, raddr,
		piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return dc, dc.HandshakeContext(ctx)
}

// echo reads one record on c and writes it back.
func echo(c net.Conn) {
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err == nil {
		_, _ = c.Write(buf[:n])
	}
}

// roundTrip sends msg on dc and returns the answer.
func roundTrip(t *testing.T, dc *piondtls.Conn, msg string) string {
	t.Helper()
	if _, err := dc.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = dc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := dc.Read(buf)
	if err != nil {
		t.Fatalf("no answer to %q: %v", msg, err)
	}
	return string(buf[:n])
}

// TestListenerParkAndResume: a session handshaken on the listener is
// parked (its association released, its state kept) and resumed, with no
// handshake, by the client's next record; the resumed session carries on
// the same keys.
func TestListenerParkAndResume(t *testing.T) {
	l, _ := listen(t)
	accepted := make(chan *dtlsmux.Conn, 1)
	go func() {
		c, err := accept(t, l)
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		echo(c)
		accepted <- c
	}()
	dc, err := client(t, l, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, dc, "one"); got != "one" {
		t.Fatalf("echo %q", got)
	}
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	state, _ := sc.ConnectionState()
	if sc.Unparked() || sc.ResumedCached(state.SessionID) {
		t.Fatal("a full handshake reported as resumed")
	}

	if !sc.Park("ep-1") {
		t.Fatal("Park refused")
	}
	_ = sc.Close()
	if ps := l.Parked(); len(ps) != 1 || ps[0].Endpoint != "ep-1" || ps[0].CID == "" || len(ps[0].State) == 0 {
		t.Fatalf("parked: %+v", ps)
	}
	if n, size := l.ParkedStats(); n != 1 || size == 0 {
		t.Fatalf("ParkedStats %d %d", n, size)
	}

	go func() {
		c, err := accept(t, l)
		if err != nil {
			t.Error(err)
			return
		}
		if !c.Unparked() {
			t.Error("the session after parking was not the parked one resumed")
		}
		l.ForgetParked("ep-1") // bound, as the CoAP server does
		echo(c)
	}()
	if got := roundTrip(t, dc, "two"); got != "two" {
		t.Fatalf("echo after resumption %q", got)
	}
	if ps := l.Parked(); len(ps) != 0 {
		t.Fatalf("still parked after resumption: %+v", ps)
	}
}

// TestListenerUnknownIdentity: an identity Config.PSK does not know fails
// the handshake, is reported with its reason and identity, and the client
// is told unknown_psk_identity.
func TestListenerUnknownIdentity(t *testing.T) {
	l, f := listen(t)
	go func() { _, _ = accept(t, l) }()
	var rec alerts
	if _, err := client(t, l, "nobody", &rec); err == nil {
		t.Fatal("handshake with an unknown identity succeeded")
	}
	if d := rec.desc.Load() - 1; d != 115 {
		t.Fatalf("alert %d, want 115 (unknown_psk_identity)", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fs := f.all()
	if len(fs) != 1 || fs[0].Reason != dtlsmux.ReasonUnknownIdentity || fs[0].Identity != "psk:nobody" || !fs[0].Addr.IsValid() {
		t.Fatalf("failures reported: %+v", fs)
	}
}

// TestNewListenerChecksConfig: a listener needs a PSK lookup, and a
// certificate needs the CAs of the clients' certificates.
func TestNewListenerChecksConfig(t *testing.T) {
	c, err := dtlsmux.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := dtlsmux.NewListener(c, dtlsmux.Config{}); err == nil {
		t.Error("a listener without Config.PSK")
	}
	psk := func([]byte) (string, []byte, error) { return "", nil, dtlsmux.ErrUnknownIdentity }
	if _, err := dtlsmux.NewListener(c, dtlsmux.Config{PSK: psk, Certificate: &tls.Certificate{}}); err == nil {
		t.Error("a listener with a certificate and no ClientCAs")
	}
}
