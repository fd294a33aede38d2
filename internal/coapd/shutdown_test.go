package coapd_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// stopWithin stops the server of s and fails the test when Stop takes
// longer than d; afterwards the DTLS port must be free again, so every
// association and the socket were closed.
func stopWithin(t *testing.T, s *secureStack, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { s.srv.Stop(); close(done) }()
	select {
	case <-done:
		t.Logf("Stop took %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Fatalf("Stop still running after %v", d)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.srv.DTLSAddr()))
	if err != nil {
		t.Fatalf("DTLS port still bound after Stop: %v", err)
	}
	_ = c.Close()
}

// silentAfter is a client's packet connection that stops sending after
// its first n datagrams, as a device that lost power in mid-handshake
// does; got counts the datagrams it received.
type silentAfter struct {
	net.PacketConn
	n    int
	sent atomic.Int64
	got  atomic.Int64
}

func (c *silentAfter) WriteTo(p []byte, a net.Addr) (int, error) {
	if c.sent.Add(1) > int64(c.n) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, a)
}

func (c *silentAfter) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.got.Add(1)
	}
	return n, a, err
}

// TestStopBoundedInEveryState stops the server with a DTLS session in
// each state it can be in: Stop returns within a few seconds and frees
// the DTLS port. A session replaced by a re-handshake from the same
// address (a rebooted device) used to keep Stop waiting for ever: go-coap
// tracks sessions by address, lost the new one when the old one closed,
// and never closed it.
func TestStopBoundedInEveryState(t *testing.T) {
	const bound = 5 * time.Second
	t.Run("live", func(t *testing.T) {
		s := newSecureStack(t)
		s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
		cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		register(t, cc, "urn:imei:1")
		stopWithin(t, s, bound)
		select {
		case <-cc.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the device's session outlived the server (no close_notify)")
		}
	})
	t.Run("parked", func(t *testing.T) {
		s := newSecureStackWith(t, false, func(c *coapd.Config) { c.IdleTimeout = 500 * time.Millisecond })
		s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
		cc, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		register(t, cc, "urn:imei:1")
		waitFor(t, 10*time.Second, "the session parked", func() bool { return s.srv.DTLSStats().Parked == 1 })
		stopWithin(t, s, bound)
	})
	t.Run("replaced", func(t *testing.T) {
		s := newSecureStack(t)
		s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
		cc, sock, err := dialPSKFrom(t, nil, s.dtls, "dev-1", pskKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		register(t, cc, "urn:imei:1")
		laddr := sock.LocalAddr().(*net.UDPAddr)
		_ = sock.Close() // rebooted: no close_notify
		cc2, _, err := dialPSKFrom(t, laddr, s.dtls, "dev-1", pskKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		register(t, cc2, "urn:imei:1")
		stopWithin(t, s, bound)
	})
	t.Run("half-open handshake", func(t *testing.T) {
		s := newSecureStack(t)
		s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
		raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// ClientHello, then ClientHello with the cookie; the server's
		// ServerHello flight is received, the client's answer never sent.
		pc := &silentAfter{PacketConn: dtlsnet.PacketConnFromConn(c), n: 2}
		dc, err := piondtls.ClientWithOptions(pc, raddr, pskClient("dev-1", pskKey)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = dc.HandshakeContext(ctx) }()
		waitFor(t, 5*time.Second, "the server's ServerHello flight", func() bool { return pc.got.Load() >= 2 })
		stopWithin(t, s, bound)
		cancel()
		_ = dc.Close()
	})
	t.Run("cookie-waiting", func(t *testing.T) {
		s := newSecureStack(t)
		raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(cookielessHello(t)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := handshakeMessage(buf[:n]).(*handshake.MessageHelloVerifyRequest); !ok {
			t.Fatalf("answer to a ClientHello: %x", buf[:n])
		}
		stopWithin(t, s, bound)
	})
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// TestShutdownAnswersMessagesInFlight stops the server while a Send, over
// plain CoAP and over DTLS with sessions saved for the restart, waits for
// the ingest writer (whose batches close only after a second): the Send
// is stored and acknowledged before the sockets close, and a Send that
// arrives once the shutdown has begun is neither stored nor answered (its
// device sends it again to the restarted server). Before, Stop closed the
// connections first: the waiting handler's context ended, the value was
// committed all the same and the device, never answered, sent it again.
func TestShutdownAnswersMessagesInFlight(t *testing.T) {
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
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: logLevel()}))
	const batchDelay = time.Second
	w := ingest.New(st, ingest.Config{Logger: log, MaxDelay: batchDelay})
	w.Start()
	defer w.Close()
	creds, err := credential.New(st, "test secret key")
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"urn:imei:d1", "urn:imei:d2"} {
		if _, err := creds.Add(ctx, store.Actor{}, credential.AddRequest{Endpoint: ep, PSKIdentity: ep, PSKKey: pskKey}); err != nil {
			t.Fatal(err)
		}
	}
	reg := registry.New(st, registry.Config{Logger: log, Ingest: w})
	srv := coapd.New(coapd.Config{Registry: reg, Ingest: w, Types: objects.Default().TypeOf, Logger: log,
		Credentials: creds, DTLS: coapd.DTLSConfig{SessionFile: filepath.Join(dir, "dtls-sessions")}})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := srv.StartDTLS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	// Two devices on each transport: the first has a Send in flight when
	// the shutdown begins, the second sends once it has begun.
	inFlight := []*udpclient.Conn{dial(t, srv.Addr().String()), mustDialPSK(t, srv.DTLSAddr().String(), "urn:imei:d1")}
	late := []*udpclient.Conn{dial(t, srv.Addr().String()), mustDialPSK(t, srv.DTLSAddr().String(), "urn:imei:d2")}
	register(t, inFlight[0], "urn:imei:u1")
	register(t, late[0], "urn:imei:u2")
	register(t, inFlight[1], "urn:imei:d1")
	register(t, late[1], "urn:imei:d2")

	send := func(cc *udpclient.Conn, v int, timeout time.Duration) (codes.Code, error) {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		body := []byte(`[{"bn":"/3303/0/","n":"5700","v":` + strconv.Itoa(v) + `}]`)
		resp, err := cc.Post(rctx, "/dp", message.AppSenmlJSON, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		return resp.Code(), nil
	}
	type answer struct {
		code codes.Code
		err  error
	}
	answers := make([]chan answer, len(inFlight))
	for i, cc := range inFlight {
		answers[i] = make(chan answer, 1)
		go func() {
			c, err := send(cc, 1, 10*time.Second)
			answers[i] <- answer{c, err}
		}()
	}
	time.Sleep(batchDelay / 4) // the Sends wait for their batch
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()
	time.Sleep(batchDelay / 4)
	for i, cc := range late {
		if c, err := send(cc, 2, batchDelay/4); err == nil {
			t.Errorf("transport %d: a Send made during the shutdown was answered %v", i, c)
		}
	}
	for i, ch := range answers {
		if a := <-ch; a.err != nil || a.code != codes.Changed {
			t.Errorf("transport %d: the Send in flight was answered %v, %v; want 2.04", i, a.code, a.err)
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for _, ep := range []string{"urn:imei:u1", "urn:imei:d1", "urn:imei:u2", "urn:imei:d2"} {
		e, err := st.GetEndpoint(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if ep[len(ep)-1] == '2' {
			want = 0
		}
		if n := len(history(t, st, e.ID, lwm2m.NewPath(3303, 0, 5700))); n != want {
			t.Errorf("%s: %d values stored, want %d", ep, n, want)
		}
	}
}

func mustDialPSK(t *testing.T, addr, identity string) *udpclient.Conn {
	t.Helper()
	cc, err := dialPSK(t, addr, identity, pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}
