package coapd

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// demux owns the DTLS socket and gives every association (one DTLS
// session with one peer, in handshake or established) a packet connection
// of its own, which pion runs the session on. It routes a datagram:
//
//   - carrying a Connection ID record (RFC 9146) to the association that
//     was given that CID, whatever its source address;
//   - from an address with an established association that starts a new
//     handshake (a ClientHello, epoch 0: the device rebooted and lost its
//     session) to a new association, so the device gets a session at once
//     instead of being sent to the stale one until it times out (RFC 6347
//     §4.2.8). The old association keeps its address until the new
//     handshake completes, so a spoofed ClientHello cannot take a
//     device's session away; the coapd server then closes it when the new
//     session registers;
//   - otherwise to the association of its source address, or, when it is
//     a handshake record from an unknown address, to a new association;
//     anything else from an unknown address is dropped.
type demux struct {
	conn   *net.UDPConn
	cidLen int
	accept chan *assoc
	done   chan struct{}

	mu      sync.Mutex
	byAddr  map[netip.AddrPort]*assoc // established or first association of an address; guarded by mu
	pending map[netip.AddrPort]*assoc // a new handshake from an address with an established association; guarded by mu
	byCID   map[string]*assoc         // guarded by mu
	live    int                       // associations not yet closed; guarded by mu
	quiet   atomic.Bool               // writes are dropped: sessions are being saved
	closed  bool                      // no new associations; the socket closes with the last one; guarded by mu
}

// acceptBacklog bounds the new associations waiting for Accept; a
// ClientHello beyond it is dropped and retransmitted by its client.
const acceptBacklog = 256

// assocQueue bounds the datagrams waiting to be read by one association.
const assocQueue = 16

// maxDatagram is the largest datagram read: an IPv4 UDP payload.
const maxDatagram = 65507

func newDemux(conn *net.UDPConn, cidLen int) *demux {
	d := &demux{
		conn:    conn,
		cidLen:  cidLen,
		accept:  make(chan *assoc, acceptBacklog),
		done:    make(chan struct{}),
		byAddr:  make(map[netip.AddrPort]*assoc),
		pending: make(map[netip.AddrPort]*assoc),
		byCID:   make(map[string]*assoc),
	}
	go d.readLoop()
	return d
}

func (d *demux) readLoop() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP unreachable reported on the socket
		}
		d.route(buf[:n], unmapped(from))
	}
}

// route hands one datagram to its association; see demux.
func (d *demux) route(b []byte, from netip.AddrPort) {
	if len(b) == 0 {
		return
	}
	d.mu.Lock()
	if d.cidLen > 0 && protocol.ContentType(b[0]) == protocol.ContentTypeConnectionID {
		a := d.byCID[d.cidOf(b)]
		d.mu.Unlock()
		if a != nil {
			a.deliver(b, from)
		}
		return
	}
	a, p := d.byAddr[from], d.pending[from]
	switch {
	case p != nil && (a == nil || isHandshakeOrCCS(b)):
		// The new handshake from this address goes on.
		a = p
	case p != nil:
		// Application data or an alert while a new handshake is under
		// way: it belongs to the old session or, once the new one has
		// completed and before it took over the address, to the new one.
		// Each drops what it cannot authenticate.
		d.mu.Unlock()
		a.deliver(b, from)
		p.deliver(b, from)
		return
	case a == nil:
		if !isHandshake(b) {
			d.mu.Unlock()
			return
		}
		if a = d.newAssocLocked(from); a == nil {
			d.mu.Unlock()
			return
		}
		d.byAddr[from] = a
	case a.established.Load() && isClientHello(b):
		if a = d.newAssocLocked(from); a == nil {
			d.mu.Unlock()
			return
		}
		d.pending[from] = a
	}
	d.mu.Unlock()
	a.deliver(b, from)
}

// newAssocLocked makes an association and queues it for Accept; nil when
// the backlog is full. d.mu must be held.
func (d *demux) newAssocLocked(from netip.AddrPort) *assoc {
	if d.closed {
		return nil
	}
	a := &assoc{d: d, first: from, in: make(chan datagram, assocQueue), done: make(chan struct{}),
		dlChanged: make(chan struct{})}
	select {
	case d.accept <- a:
		d.live++
		return a
	default:
		return nil
	}
}

// cidOf returns the Connection ID of the first CID record of b, "" when
// there is none. d.mu must be held (for cidLen only).
func (d *demux) cidOf(b []byte) string {
	pkts, err := recordlayer.ContentAwareUnpackDatagram(b, d.cidLen)
	if err != nil {
		return ""
	}
	for _, p := range pkts {
		h := recordlayer.Header{ConnectionID: make([]byte, d.cidLen)}
		if h.Unmarshal(p) == nil && h.ContentType == protocol.ContentTypeConnectionID {
			return string(h.ConnectionID)
		}
	}
	return ""
}

// established is called when a's handshake completed: a takes over its
// address from any older association there.
func (d *demux) established(a *assoc) {
	a.established.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[a.first] == a || d.byAddr[a.first] == nil {
		delete(d.pending, a.first)
		d.byAddr[a.first] = a
	}
}

// remove forgets a closed association; the last one closes a closed
// demultiplexer's socket.
func (d *demux) remove(a *assoc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live--; d.closed && d.live == 0 {
		_ = d.conn.Close()
	}
	if d.byAddr[a.first] == a {
		delete(d.byAddr, a.first)
	}
	if d.pending[a.first] == a {
		delete(d.pending, a.first)
	}
	if cid := a.cid.Load(); cid != nil && d.byCID[*cid] == a {
		delete(d.byCID, *cid)
	}
}

// quiesce drops every write from now on, so that no session sends a
// record after its state is saved.
func (d *demux) quiesce() { d.quiet.Store(true) }

// restoredAssoc makes an established association for a session restored
// from saved state, reachable by address and Connection ID.
func (d *demux) restoredAssoc(addr netip.AddrPort, cid string) *assoc {
	a := &assoc{d: d, first: addr, in: make(chan datagram, assocQueue), done: make(chan struct{}),
		dlChanged: make(chan struct{})}
	a.established.Store(true)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live++
	d.byAddr[addr] = a
	if cid != "" {
		a.cid.Store(&cid)
		d.byCID[cid] = a
	}
	return a
}

// setCID records the Connection ID the server gave a in its ServerHello.
func (d *demux) setCID(a *assoc, cid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byCID[cid] = a
}

// Accept returns the next new association.
func (d *demux) Accept() (*assoc, error) {
	select {
	case a := <-d.accept:
		return a, nil
	case <-d.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting associations. Those accepted keep the socket
// until they are closed (their sessions can still say close_notify); the
// last one closes it.
func (d *demux) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.done)
	idle := d.live == 0
	d.mu.Unlock()
	if idle {
		return d.conn.Close()
	}
	for {
		select {
		case a := <-d.accept:
			_ = a.Close()
		default:
			return nil
		}
	}
}

func (d *demux) Addr() net.Addr { return d.conn.LocalAddr() }

// isHandshake reports whether b starts with a handshake record.
func isHandshake(b []byte) bool {
	return len(b) > 0 && protocol.ContentType(b[0]) == protocol.ContentTypeHandshake
}

// isHandshakeOrCCS reports whether b starts with a record of a handshake
// in progress: handshake messages or ChangeCipherSpec.
func isHandshakeOrCCS(b []byte) bool {
	return len(b) > 0 && (protocol.ContentType(b[0]) == protocol.ContentTypeHandshake ||
		protocol.ContentType(b[0]) == protocol.ContentTypeChangeCipherSpec)
}

// isClientHello reports whether b starts with a ClientHello in epoch 0:
// the start of a new handshake.
func isClientHello(b []byte) bool {
	const epochOff, hsTypeOff = 3, recordlayer.FixedHeaderSize
	return isHandshake(b) && len(b) > hsTypeOff && b[epochOff] == 0 && b[epochOff+1] == 0 &&
		handshake.Type(b[hsTypeOff]) == handshake.TypeClientHello
}

// datagram is one received datagram and its source.
type datagram struct {
	b    []byte
	from netip.AddrPort
}

// assoc is the packet connection of one association.
type assoc struct {
	d           *demux
	first       netip.AddrPort // the address its first datagram came from
	in          chan datagram
	done        chan struct{}
	closeOnce   sync.Once
	established atomic.Bool
	cid         atomic.Pointer[string]

	dlMu      sync.Mutex
	deadline  time.Time     // guarded by dlMu
	dlChanged chan struct{} // closed and replaced when deadline changes; guarded by dlMu
}

// deliver queues a copy of b; a full queue drops it, as a full socket
// buffer would.
func (a *assoc) deliver(b []byte, from netip.AddrPort) {
	select {
	case a.in <- datagram{b: bytes.Clone(b), from: from}:
	case <-a.done:
	default:
	}
}

// ReadFrom returns the next datagram of the association and its source.
func (a *assoc) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		a.dlMu.Lock()
		dl, changed := a.deadline, a.dlChanged
		a.dlMu.Unlock()
		var expire <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			expire = t.C
		}
		var dg datagram
		var err error
		got := false
		select {
		case dg = <-a.in:
			got = true
		case <-a.done:
			err = net.ErrClosed
		case <-changed:
		case <-expire:
			err = os.ErrDeadlineExceeded
		}
		if t != nil {
			t.Stop()
		}
		switch {
		case got:
			return copy(p, dg.b), net.UDPAddrFromAddrPort(dg.from), nil
		case err != nil:
			return 0, nil, err
		}
	}
}

// WriteTo sends p to addr over the shared socket. Until the association
// has a Connection ID, outgoing ServerHellos are looked at for the one the
// server gives.
func (a *assoc) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-a.done:
		return 0, net.ErrClosed
	default:
	}
	if a.d.cidLen > 0 && a.cid.Load() == nil && !a.established.Load() {
		if cid, ok := serverHelloCID(p); ok {
			a.cid.Store(&cid)
			a.d.setCID(a, cid)
		}
	}
	if a.d.quiet.Load() {
		return len(p), nil
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("coapd: not a UDP address")
	}
	return a.d.conn.WriteToUDP(p, ua)
}

// serverHelloCID returns the Connection ID extension of a ServerHello in
// the datagram p.
func serverHelloCID(p []byte) (string, bool) {
	if !isHandshake(p) {
		return "", false
	}
	pkts, err := recordlayer.UnpackDatagram(p)
	if err != nil {
		return "", false
	}
	for _, pkt := range pkts {
		if len(pkt) <= recordlayer.FixedHeaderSize+handshake.HeaderLength ||
			protocol.ContentType(pkt[0]) != protocol.ContentTypeHandshake {
			continue
		}
		var hh handshake.Header
		if hh.Unmarshal(pkt[recordlayer.FixedHeaderSize:]) != nil || hh.Type != handshake.TypeServerHello {
			continue
		}
		var sh handshake.MessageServerHello
		if sh.Unmarshal(pkt[recordlayer.FixedHeaderSize+handshake.HeaderLength:]) != nil {
			continue
		}
		for _, ext := range sh.Extensions {
			if c, ok := ext.(*extension.ConnectionID); ok && len(c.CID) > 0 {
				return string(c.CID), true
			}
		}
	}
	return "", false
}

// Close ends the association and forgets it.
func (a *assoc) Close() error {
	a.closeOnce.Do(func() {
		close(a.done)
		a.d.remove(a)
	})
	return nil
}

func (a *assoc) LocalAddr() net.Addr { return a.d.conn.LocalAddr() }

// SetDeadline sets the read deadline; writes go straight to the socket.
func (a *assoc) SetDeadline(t time.Time) error { return a.SetReadDeadline(t) }

// SetReadDeadline makes a blocked or later ReadFrom fail at t; zero means
// no deadline.
func (a *assoc) SetReadDeadline(t time.Time) error {
	a.dlMu.Lock()
	a.deadline = t
	close(a.dlChanged)
	a.dlChanged = make(chan struct{})
	a.dlMu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: a UDP write does not block for long.
func (a *assoc) SetWriteDeadline(time.Time) error { return nil }
