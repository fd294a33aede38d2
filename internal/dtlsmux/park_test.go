package dtlsmux

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// newTestDemux is a demultiplexer on a loopback socket nobody reads from.
func newTestDemux(t *testing.T) *demux {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := newDemux(c, cidLen, newHandshakeGate(0, 0), 0)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// accepted returns the association waiting for Accept, nil if none.
func accepted(d *demux) *assoc {
	select {
	case a := <-d.accept:
		return a
	default:
		return nil
	}
}

var (
	clientHello = []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 12,
		1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	appData = []byte{0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 2, 0xaa, 0xbb}
)

// cidRecord is an application-data record in CID form (RFC 9146) with cid.
func cidRecord(cid string) []byte {
	b := []byte{0x19, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 8}
	b = append(b, cid...)
	return append(b, 0, 2, 0xaa, 0xbb)
}

// parkOne establishes an association at addr with cid and parks it as ep.
func parkOne(t *testing.T, d *demux, addr netip.AddrPort, cid, ep string) *Session {
	t.Helper()
	d.route(clientHello, addr)
	a := accepted(d)
	if a == nil {
		t.Fatal("a ClientHello opened no association")
	}
	a.cid.Store(&cid)
	d.setCID(a, cid)
	d.established(a)
	a.muted.Store(true)
	pk := &Session{Endpoint: ep, Addr: addr, CID: cid, State: []byte("state")}
	if !d.park(a, pk) {
		t.Fatal("park refused")
	}
	_ = a.Close()
	return pk
}

func TestParkedResumedByCIDAndAddress(t *testing.T) {
	d := newTestDemux(t)
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	pk := parkOne(t, d, addr, "cid-0001", "ep-1")

	// An epoch-0 record (no session's) from its address resumes nothing.
	d.route([]byte{0x17, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 2, 0xaa, 0xbb}, addr)
	if accepted(d) != nil || len(d.parkedSessions()) != 1 {
		t.Fatal("an epoch-0 datagram resumed a parked session")
	}

	// A CID record from another address resumes it there.
	d.route(cidRecord("cid-0001"), netip.MustParseAddrPort("192.0.2.9:6000"))
	a := accepted(d)
	if a == nil || a.resume != pk || !a.established.Load() {
		t.Fatalf("CID record: association %+v, want one resuming the parked session", a)
	}
	if len(d.parkedSessions()) != 0 {
		t.Fatal("a resumed session is still parked")
	}
	if d.unpark("ep-1") != true {
		t.Fatal("unpark of an endpoint being resumed must report it on its way")
	}
	if accepted(d) != nil {
		t.Fatal("a session was resumed twice")
	}
	d.forgetParked("ep-1") // bound
	_ = a.Close()

	// Parked by address: application data from it resumes the session.
	pk2 := parkOne(t, d, addr, "cid-0002", "ep-1")
	d.route(appData, addr)
	if a := accepted(d); a == nil || a.resume != pk2 {
		t.Fatalf("datagram from the parked address: %+v", a)
	}
}

// TestParkedClientHello: a ClientHello from a parked session's address is
// a new handshake, which does not take the parked session away until it
// completes; then only its CID reaches the parked one.
func TestParkedClientHello(t *testing.T) {
	d := newTestDemux(t)
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	pk := parkOne(t, d, addr, "cid-0001", "ep-1")

	d.route(clientHello, addr)
	hs := accepted(d)
	if hs == nil || hs.resume != nil || d.pending[addr] != hs {
		t.Fatalf("ClientHello from a parked address: %+v", hs)
	}
	// Application data meanwhile resumes the parked session and reaches the
	// new handshake too: each drops what it cannot authenticate.
	d.route(appData, addr)
	a := accepted(d)
	if a == nil || a.resume != pk {
		t.Fatalf("datagram during a new handshake: %+v", a)
	}
	if len(hs.in) != 2 || len(a.in) != 1 {
		t.Fatalf("queued: handshake %d, resumed %d; want 2 and 1", len(hs.in), len(a.in))
	}
	_ = a.Close()

	pk2 := parkOne(t, d, netip.MustParseAddrPort("192.0.2.2:5000"), "cid-0002", "ep-2")
	d.route(clientHello, pk2.Addr)
	hs2 := accepted(d)
	d.established(hs2)
	if d.parkedAddr[pk2.Addr] != nil || d.parkedCID["cid-0002"] != pk2 {
		t.Fatal("a completed handshake at a parked address must leave the parked session its CID only")
	}
	d.forgetParked("ep-2")
	if len(d.parkedCID)+len(d.parkedAddr)+len(d.parkedEP) != 0 {
		t.Fatalf("forgotten session still indexed: %d %d %d", len(d.parkedCID), len(d.parkedAddr), len(d.parkedEP))
	}
}

// TestParkedQuiesced: once sessions are being saved nothing is parked or
// resumed, so a saved state is never also in use.
func TestParkedQuiesced(t *testing.T) {
	d := newTestDemux(t)
	addr := netip.MustParseAddrPort("192.0.2.1:5000")
	parkOne(t, d, addr, "cid-0001", "ep-1")
	d.quiesce()
	d.route(cidRecord("cid-0001"), addr)
	if accepted(d) != nil || d.unpark("ep-1") {
		t.Fatal("a parked session was resumed after quiesce")
	}
	if len(d.parkedSessions()) != 1 {
		t.Fatal("the parked session was lost")
	}
}

func TestUnknownIdentityAlert(t *testing.T) {
	alert := []byte{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 2, 80}
	got := unknownIdentityAlert(alert)
	if got[14] != 115 || alert[14] != 80 {
		t.Fatalf("alert %v (input %v)", got, alert)
	}
	for _, p := range [][]byte{
		{21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 2, 2, 80}, // epoch 1: encrypted, not ours to touch
		{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 1, 0},  // close_notify
		{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 2, 80}, // not an alert
		{21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 5, 0, 9, 2, 80}, // truncated
		{21, 0xfe},
	} {
		if out := unknownIdentityAlert(p); string(out) != string(p) {
			t.Errorf("%v changed to %v", p, out)
		}
	}
}

func helloWithCookie() []byte {
	// ClientHello body: version, random, empty session_id, 1-byte cookie.
	body := append([]byte{0xfe, 0xfd}, make([]byte, 32)...)
	body = append(body, 0, 1, 0x42)
	hs := append([]byte{1, 0, 0, byte(len(body)), 0, 1, 0, 0, 0, 0, 0, byte(len(body))}, body...)
	rec := []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 10, 0, byte(len(hs))}
	return append(rec, hs...)
}

// TestUnverifiedDisplaced: beyond maxUnverified handshakes waiting for
// their cookie, the oldest is displaced (closed); one that returned its
// cookie holds a gate slot and is not displaced; handshakes that have not
// ended, displaced ones included, cap new associations.
func TestUnverifiedDisplaced(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	gate := newHandshakeGate(1, 1)
	d := newDemux(c, cidLen, gate, 2)
	t.Cleanup(func() { _ = d.Close() })
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 5000)
	}

	d.route(clientHello, addr(1))
	a1 := accepted(d)
	if !helloHasCookie(helloWithCookie()) || helloHasCookie(clientHello) {
		t.Fatal("cookie detection")
	}
	d.route(helloWithCookie(), addr(1))
	if !a1.verified.Load() || gate.total != 1 || len(a1.in) != 2 {
		t.Fatalf("returned cookie: verified %v, gate %d, queued %d", a1.verified.Load(), gate.total, len(a1.in))
	}
	d.route(clientHello, addr(2))
	a2 := accepted(d)
	d.route(helloWithCookie(), addr(2))
	if a2.verified.Load() || len(a2.in) != 1 {
		t.Fatal("a returned cookie was admitted beyond the gate")
	}
	d.route(clientHello, addr(3))
	a3 := accepted(d)
	d.route(clientHello, addr(4)) // displaces a2, the oldest unverified
	a4 := accepted(d)
	select {
	case <-a2.done:
	default:
		t.Fatal("the oldest unverified handshake was not displaced")
	}
	select {
	case <-a1.done:
		t.Fatal("a verified handshake was displaced")
	default:
	}
	if a3 == nil || a4 == nil || d.unverified.Len() != 2 {
		t.Fatalf("unverified %d", d.unverified.Len())
	}
	// 4 handshakes have not ended (a2 displaced but not unwound): at the
	// cap of gate.max + 2*maxUnverified = 5, one more is made, then none.
	d.route(clientHello, addr(5))
	if accepted(d) == nil {
		t.Fatal("fifth handshake refused below the cap")
	}
	d.route(clientHello, addr(6))
	if accepted(d) != nil {
		t.Fatal("a handshake beyond the cap was made")
	}
	d.handshakeEnded(a2)
	d.handshakeEnded(a1)
	if gate.total != 0 {
		t.Fatalf("gate %d after the verified handshake ended", gate.total)
	}
	d.route(clientHello, addr(6))
	if accepted(d) == nil {
		t.Fatal("no handshake after two ended")
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                "192.0.2.7",
		"::ffff:192.0.2.7":         "192.0.2.7",
		"2001:db8:1:2:aaaa::1":     "2001:db8:1:2::",
		"2001:db8:1:2:ffff:ffff::": "2001:db8:1:2::",
	} {
		if got := SourceKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("SourceKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestSessionCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newSessionCache(2, time.Hour, func() time.Time { return now })
	sess := func(id string) dtls.Session { return dtls.Session{ID: []byte(id), Secret: []byte("secret")} }
	if s, err := c.Get([]byte("none")); err != nil || s.ID != nil {
		t.Fatalf("miss: %+v %v; want the zero session and no error", s, err)
	}
	_ = c.Set([]byte("a"), sess("a"))
	_ = c.Set([]byte("b"), sess("b"))
	_ = c.Set([]byte("c"), sess("c")) // drops a, the oldest
	if s, _ := c.Get([]byte("a")); s.ID != nil || c.Len() != 2 {
		t.Fatalf("the oldest session was kept beyond the cap: %+v, %d kept", s, c.Len())
	}
	if s, _ := c.Get([]byte("b")); string(s.ID) != "b" {
		t.Fatalf("b: %+v", s)
	}
	_ = c.Del([]byte("b"))
	if s, _ := c.Get([]byte("b")); s.ID != nil {
		t.Fatal("deleted session returned")
	}
	now = now.Add(time.Hour)
	if s, _ := c.Get([]byte("c")); s.ID != nil || c.Len() != 0 {
		t.Fatalf("expired session returned: %+v", s)
	}
}
