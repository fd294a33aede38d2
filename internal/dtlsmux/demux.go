package dtlsmux

import (
	"bytes"
	"container/list"
	"encoding/binary"
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
//     device's session away; the Listener's user (the CoAP server)
//     closes the old session when the new one is bound to its endpoint;
//   - otherwise to the association of its source address, or, when it is
//     a ClientHello from an unknown address, to a new association;
//     anything else from an unknown address is dropped.
//
// A new association is unverified until its client returns the cookie of
// the HelloVerifyRequest (a ClientHello with a cookie after its first
// one): until then its source address may be spoofed. Unverified
// associations are capped (maxUnverified) and the oldest is dropped for a
// new one, so a flood of ClientHellos from spoofed addresses cannot keep
// devices that answer their cookie out; the listener also ends each after
// a short timeout. The returned cookie takes a slot of the handshake gate
// (a cap in total and per source), or is dropped while the gate is full
// (the device retransmits it).
//
// When the server stops, the demultiplexer first drains (no new
// association, no resumption: those datagrams are dropped and their
// devices retransmit them) and then closes every association it opened,
// whatever its state, so no session is left reading a socket.
//
// A ClientHello's record-layer version is taken as any {254, x}
// (normalizeHelloVersion), as RFC 5246 Appendix E.1 asks of servers.
//
// An established session idle long enough is parked (see park): its
// association, goroutines and buffers are released and only pion's
// exported state is kept. The next datagram from its address or with its
// Connection ID, or a request of the server to its endpoint (unpark),
// resumes it on a new association with no handshake; a ClientHello from
// its address starts a new handshake as for an established association.
type demux struct {
	conn   *net.UDPConn
	cidLen int
	accept chan *assoc
	done   chan struct{}

	mu      sync.Mutex
	byAddr  map[netip.AddrPort]*assoc // established or first association of an address; guarded by mu
	pending map[netip.AddrPort]*assoc // a new handshake from an address with an established association; guarded by mu
	byCID   map[string]*assoc         // guarded by mu
	all     map[*assoc]struct{}       // associations not yet closed; guarded by mu

	parkedAddr    map[netip.AddrPort]*Session // guarded by mu
	parkedCID     map[string]*Session         // guarded by mu
	parkedEP      map[string]*Session         // by endpoint; every parked session is here; guarded by mu
	resuming      map[string]*assoc           // by endpoint: parked sessions resumed and not yet bound; guarded by mu
	gate          *handshakeGate
	maxUnverified int
	unverified    list.List // *assoc, oldest first; guarded by mu
	handshaking   int       // associations whose handshake has not ended, displaced ones included; guarded by mu

	quiet    atomic.Bool // writes are dropped: sessions are being saved
	draining bool        // no new associations nor resumptions: the server is stopping; guarded by mu
	closed   bool        // no new associations; the socket closes with the last one; guarded by mu
}

// acceptBacklog bounds the new associations waiting for Accept; a
// ClientHello beyond it is dropped and retransmitted by its client.
const acceptBacklog = 256

// assocQueue bounds the datagrams waiting to be read by one association.
const assocQueue = 16

// maxDatagram is the largest datagram read: an IPv4 UDP payload.
const maxDatagram = 65507

// newDemux reads conn. gate admits the handshakes that returned their
// cookie; maxUnverified <= 0 means 2048.
func newDemux(conn *net.UDPConn, cidLen int, gate *handshakeGate, maxUnverified int) *demux {
	if maxUnverified <= 0 {
		maxUnverified = 2048
	}
	d := &demux{
		conn:          conn,
		cidLen:        cidLen,
		gate:          gate,
		maxUnverified: maxUnverified,
		accept:        make(chan *assoc, acceptBacklog),
		done:          make(chan struct{}),
		byAddr:        make(map[netip.AddrPort]*assoc),
		pending:       make(map[netip.AddrPort]*assoc),
		byCID:         make(map[string]*assoc),
		all:           make(map[*assoc]struct{}),

		parkedAddr: make(map[netip.AddrPort]*Session),
		parkedCID:  make(map[string]*Session),
		parkedEP:   make(map[string]*Session),
		resuming:   make(map[string]*assoc),
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
		d.route(buf[:n], Unmapped(from))
	}
}

// route hands one datagram to its association; see demux.
func (d *demux) route(b []byte, from netip.AddrPort) {
	if len(b) == 0 {
		return
	}
	normalizeHelloVersion(b)
	d.mu.Lock()
	to, also, evicted := d.routeLocked(b, from)
	d.mu.Unlock()
	if to != nil {
		if !to.established.Load() {
			to.sawHandshake(b)
		}
		to.deliver(b, from)
	}
	if also != nil {
		also.deliver(b, from)
	}
	if evicted != nil {
		_ = evicted.Close()
	}
}

// routeLocked returns the associations b goes to, and an unverified one
// that a new association displaced, which the caller closes. d.mu must be
// held.
func (d *demux) routeLocked(b []byte, from netip.AddrPort) (to, also, evicted *assoc) {
	if d.cidLen > 0 && protocol.ContentType(b[0]) == protocol.ContentTypeConnectionID {
		cid := d.cidOf(b)
		a := d.byCID[cid]
		if pk := d.parkedCID[cid]; a == nil && pk != nil && isProtected(b) {
			a = d.unparkLocked(pk)
		}
		return a, nil, nil
	}
	a, p := d.byAddr[from], d.pending[from]
	var pk *Session
	if a == nil {
		pk = d.parkedAddr[from]
	}
	switch {
	case p != nil && (a == nil && pk == nil || isHandshakeOrCCS(b)):
		// The new handshake from this address goes on.
		return d.admitLocked(p, b), nil, nil
	case p != nil:
		// Application data or an alert while a new handshake is under
		// way: it belongs to the old session or, once the new one has
		// completed and before it took over the address, to the new one.
		// Each drops what it cannot authenticate.
		if a == nil && isProtected(b) {
			a = d.unparkLocked(pk)
		}
		return a, p, nil
	case (pk != nil || a != nil && a.established.Load()) && isClientHello(b):
		// A new handshake from the address of a session (the device
		// rebooted): the session keeps the address until it completes.
		if a, evicted = d.newAssocLocked(from); a != nil {
			d.pending[from] = a
		}
		return a, nil, evicted
	case pk != nil:
		if !isProtected(b) {
			return nil, nil, nil // nothing a parked session could take
		}
		return d.unparkLocked(pk), nil, nil
	case a == nil:
		if !isClientHello(b) {
			return nil, nil, nil
		}
		if a, evicted = d.newAssocLocked(from); a != nil {
			d.byAddr[from] = a
		}
		return a, nil, evicted
	}
	return d.admitLocked(a, b), nil, nil
}

// admitLocked returns a, the association b goes to, or nil when b must be
// dropped: the returned cookie of an unverified association while the
// handshake gate is full. d.mu must be held.
func (d *demux) admitLocked(a *assoc, b []byte) *assoc {
	if a.uv == nil || !isClientHello(b) {
		return a
	}
	if a.hellos++; a.hellos == 1 || !helloHasCookie(b) {
		return a
	}
	if a.ended || !d.gate.enter(d.gateKey(a)) {
		return nil
	}
	a.slot = true
	d.unverified.Remove(a.uv)
	a.uv = nil
	a.verified.Store(true)
	return a
}

func (d *demux) gateKey(a *assoc) netip.Addr { return SourceKey(a.first.Addr()) }

// handshakeEnded gives back a's gate slot, if it holds one, and forgets it
// as unverified and handshaking: its handshake completed or failed, or
// will never run.
func (d *demux) handshakeEnded(a *assoc) {
	d.mu.Lock()
	a.ended = true
	if a.hs {
		a.hs = false
		d.handshaking--
	}
	slot := a.slot
	a.slot = false
	if a.uv != nil {
		d.unverified.Remove(a.uv)
		a.uv = nil
	}
	d.mu.Unlock()
	if slot {
		d.gate.leave(d.gateKey(a))
	}
}

// newAssocLocked makes an unverified association and queues it for
// Accept; nil when the backlog is full. When maxUnverified are waiting for
// their cookie, the oldest is forgotten and returned as evicted for the
// caller to close. d.mu must be held.
func (d *demux) newAssocLocked(from netip.AddrPort) (a, evicted *assoc) {
	if d.closed || d.draining || d.handshaking >= d.gate.max+2*d.maxUnverified {
		// Displaced handshakes that have not unwound yet count too: the
		// goroutines of handshakes stay bounded under any flood.
		return nil, nil
	}
	a = newAssoc(d, from)
	a.hellos = 1 // the ClientHello it is made for
	a.hs = true
	select {
	case d.accept <- a:
		d.all[a] = struct{}{}
	default:
		return nil, nil
	}
	if d.unverified.Len() >= d.maxUnverified {
		evicted = d.unverified.Remove(d.unverified.Front()).(*assoc)
		evicted.uv = nil
		d.forgetLocked(evicted)
	}
	a.uv = d.unverified.PushBack(a)
	d.handshaking++
	return a, evicted
}

func newAssoc(d *demux, from netip.AddrPort) *assoc {
	return &assoc{d: d, first: from, in: make(chan datagram, assocQueue), done: make(chan struct{}),
		dlChanged: make(chan struct{})}
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
		// A session parked at this address is reachable by its
		// Connection ID and endpoint only.
		delete(d.parkedAddr, a.first)
	}
}

// remove forgets a closed association; the last one closes a closed
// demultiplexer's socket.
func (d *demux) remove(a *assoc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.all, a)
	if d.closed && len(d.all) == 0 {
		_ = d.conn.Close()
	}
	if a.uv != nil {
		d.unverified.Remove(a.uv)
		a.uv = nil
	}
	d.forgetLocked(a)
}

// forgetLocked removes a from the routing tables. d.mu must be held.
func (d *demux) forgetLocked(a *assoc) {
	if d.byAddr[a.first] == a {
		delete(d.byAddr, a.first)
	}
	if d.pending[a.first] == a {
		delete(d.pending, a.first)
	}
	if cid := a.cid.Load(); cid != nil && d.byCID[*cid] == a {
		delete(d.byCID, *cid)
	}
	if a.resume != nil && d.resuming[a.resume.Endpoint] == a {
		delete(d.resuming, a.resume.Endpoint)
	}
}

// quiesce drops every write from now on, so that no session sends a
// record after its state is saved.
func (d *demux) quiesce() { d.quiet.Store(true) }

// Session is an established DTLS session kept as pion's exported state
// with no association, parked (a sleeping device's session costs its
// state, not a session's goroutines and buffers) or saved across a
// restart. The State must be resumed at most once.
type Session struct {
	Endpoint string         // the name the session is bound to
	Addr     netip.AddrPort // the peer's address when it was exported
	CID      string         // the Connection ID the server gave; "" if none
	State    []byte         // pion's State.MarshalBinary: keys, record counters, Connection IDs
}

// park replaces the established association a by the parked session pk,
// reachable by pk.Addr (unless another association holds that address),
// pk.CID and pk.Endpoint, replacing an older parked session of the
// endpoint. a must be muted before its state was exported, and closed by
// the caller after park returns. It reports false, and parks nothing, once
// the demultiplexer is closing.
func (d *demux) park(a *assoc, pk *Session) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.quiet.Load() {
		return false
	}
	if d.byAddr[a.first] == a {
		delete(d.byAddr, a.first)
	}
	if cid := a.cid.Load(); cid != nil && d.byCID[*cid] == a {
		delete(d.byCID, *cid)
	}
	d.forgetParkedLocked(pk.Endpoint)
	d.parkedEP[pk.Endpoint] = pk
	if d.byAddr[pk.Addr] == nil {
		d.parkedAddr[pk.Addr] = pk
	}
	if pk.CID != "" {
		d.parkedCID[pk.CID] = pk
	}
	return true
}

// unparkLocked forgets the parked session pk and returns a new established
// association that resumes it, queued for Accept; nil (pk stays parked)
// when the backlog is full or the demultiplexer is closing or saving.
// d.mu must be held.
func (d *demux) unparkLocked(pk *Session) *assoc {
	if d.closed || d.draining || d.quiet.Load() {
		return nil
	}
	a := newAssoc(d, pk.Addr)
	a.resume = pk
	a.established.Store(true)
	select {
	case d.accept <- a:
	default:
		return nil
	}
	d.all[a] = struct{}{}
	d.forgetParkedLocked(pk.Endpoint)
	d.resuming[pk.Endpoint] = a
	if d.byAddr[pk.Addr] == nil {
		d.byAddr[pk.Addr] = a
	}
	if pk.CID != "" {
		a.cid.Store(&pk.CID)
		d.byCID[pk.CID] = a
	}
	return a
}

// unpark resumes the parked session of endpoint; it reports whether there
// was one and it is on its way to Accept, or already was.
func (d *demux) unpark(endpoint string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resuming[endpoint] != nil {
		return true
	}
	pk := d.parkedEP[endpoint]
	return pk != nil && d.unparkLocked(pk) != nil
}

// forgetParked drops the parked session of endpoint, if any: the endpoint
// has a newer session, or its resumed session is bound.
func (d *demux) forgetParked(endpoint string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetParkedLocked(endpoint)
	delete(d.resuming, endpoint)
}

// addParked parks a session restored from saved state.
func (d *demux) addParked(pk *Session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetParkedLocked(pk.Endpoint)
	d.parkedEP[pk.Endpoint] = pk
	d.parkedAddr[pk.Addr] = pk
	if pk.CID != "" {
		d.parkedCID[pk.CID] = pk
	}
}

func (d *demux) forgetParkedLocked(endpoint string) {
	pk := d.parkedEP[endpoint]
	if pk == nil {
		return
	}
	delete(d.parkedEP, endpoint)
	if d.parkedAddr[pk.Addr] == pk {
		delete(d.parkedAddr, pk.Addr)
	}
	if pk.CID != "" && d.parkedCID[pk.CID] == pk {
		delete(d.parkedCID, pk.CID)
	}
}

// parkedSessions returns the parked sessions.
func (d *demux) parkedSessions() []*Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*Session, 0, len(d.parkedEP))
	for _, pk := range d.parkedEP {
		out = append(out, pk)
	}
	return out
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
	idle := len(d.all) == 0
	d.mu.Unlock()
	if idle {
		return d.conn.Close()
	}
	for {
		select {
		case a := <-d.accept:
			d.handshakeEnded(a)
			_ = a.Close()
		default:
			return nil
		}
	}
}

// drain stops opening associations: a ClientHello is dropped and so is a
// datagram for a parked session (their devices retransmit them to the
// restarted server), while established associations and handshakes under
// way go on.
func (d *demux) drain() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
}

// closeAll closes every association, in handshake or established,
// accepted or not; on a closed demultiplexer the last one closes the
// socket. Sessions on them see their packet connection closed: a session
// blocked in a read returns.
func (d *demux) closeAll() {
	d.mu.Lock()
	all := make([]*assoc, 0, len(d.all))
	for a := range d.all {
		all = append(all, a)
	}
	d.mu.Unlock()
	for _, a := range all {
		_ = a.Close()
	}
}

func (d *demux) Addr() net.Addr { return d.conn.LocalAddr() }

// normalizeHelloVersion rewrites, in place, the record-layer version of
// every epoch-0 ClientHello record of b that carries a DTLS version pion
// does not take ({254, x} other than DTLS 1.0 and 1.2) to DTLS 1.0, the
// version a ClientHello record may always carry. RFC 5246 Appendix E.1
// has servers accept any record version on a ClientHello, since a client
// cannot know the server's yet; mbed TLS 2.28 without a minimum version
// configured sends {254, 0}. The handshake itself, whose transcript does
// not cover record headers, negotiates by the ClientHello's own version.
func normalizeHelloVersion(b []byte) {
	const versionOff, epochOff, lenOff = 1, 3, recordlayer.FixedHeaderSize - 2
	for off := 0; off+recordlayer.FixedHeaderSize < len(b); {
		r := b[off:]
		if protocol.ContentType(r[0]) == protocol.ContentTypeConnectionID {
			return // its header is longer; epoch-0 records never are CID records
		}
		n := int(binary.BigEndian.Uint16(r[lenOff:]))
		if protocol.ContentType(r[0]) == protocol.ContentTypeHandshake && r[epochOff] == 0 && r[epochOff+1] == 0 &&
			handshake.Type(r[recordlayer.FixedHeaderSize]) == handshake.TypeClientHello &&
			r[versionOff] == protocol.Version1_0.Major &&
			r[versionOff+1] != protocol.Version1_0.Minor && r[versionOff+1] != protocol.Version1_2.Minor {
			r[versionOff+1] = protocol.Version1_0.Minor
		}
		off += recordlayer.FixedHeaderSize + n
	}
}

// isHandshake reports whether b starts with a handshake record.
func isHandshake(b []byte) bool {
	return len(b) > 0 && protocol.ContentType(b[0]) == protocol.ContentTypeHandshake
}

// isProtected reports whether b starts with a record of an established
// session (epoch 1 or later), the only kind that resumes a parked session:
// a stray or spoofed datagram of another kind costs no resumption.
func isProtected(b []byte) bool {
	const epochOff = 3
	return len(b) >= recordlayer.FixedHeaderSize && (b[epochOff] != 0 || b[epochOff+1] != 0)
}

// helloHasCookie reports whether the ClientHello that starts b carries a
// cookie.
func helloHasCookie(b []byte) bool {
	// record header, handshake header, client_version, random
	off := recordlayer.FixedHeaderSize + handshake.HeaderLength + 2 + handshake.RandomLength
	if len(b) <= off {
		return false
	}
	off += 1 + int(b[off]) // session_id
	return len(b) > off && b[off] > 0
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
	verified    atomic.Bool // the client returned its cookie
	muted       atomic.Bool // writes are dropped: the session is being parked
	unknownPSK  atomic.Bool // the client presented a PSK identity the server does not know
	// What the handshake showed, for the report of a failed one.
	identity    atomic.Pointer[string] // the PSK identity the client presented
	endpoint    atomic.Pointer[string] // the endpoint that identity is bound to
	sawFinished atomic.Bool            // the client sent a protected record (its Finished) before the handshake completed
	sentAlert   atomic.Int32           // 1 + the description of the fatal plaintext alert the server sent; 0 none
	peerAlert   atomic.Int32           // 1 + the description of the fatal plaintext alert the client sent; 0 none
	// offeredSession is the ID of the cached session the client asked to
	// resume; the handshake resumed it if the session ends up with that ID.
	offeredSession atomic.Pointer[string]
	resume         *Session // the parked session this association resumes; set before Accept

	uv     *list.Element // in demux.unverified while waiting for the cookie; guarded by d.mu
	hellos int           // ClientHellos received while unverified; guarded by d.mu
	slot   bool          // holds a gate slot; guarded by d.mu
	hs     bool          // counted in demux.handshaking; guarded by d.mu
	ended  bool          // the handshake completed or failed; guarded by d.mu

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
	if a.d.quiet.Load() || a.muted.Load() {
		return len(p), nil
	}
	if !a.established.Load() {
		if desc, ok := fatalPlainAlert(p); ok {
			a.sentAlert.Store(int32(desc) + 1)
		}
	}
	if a.unknownPSK.Load() {
		p = unknownIdentityAlert(p)
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("dtlsmux: not a UDP address")
	}
	return a.d.conn.WriteToUDP(p, ua)
}

// unknownIdentityAlert returns p with a fatal internal_error alert in
// epoch 0 turned into unknown_psk_identity (RFC 4279 §2), the answer to a
// PSK identity the server does not know; other datagrams are returned as
// they are. Only the handshake's plaintext alert is touched: it is not
// authenticated, so nothing else changes.
func unknownIdentityAlert(p []byte) []byte {
	const (
		alertLen           = 2
		fatal              = 2
		internalError      = 80
		unknownPSKIdentity = 115
	)
	out := p
	for off := 0; off+recordlayer.FixedHeaderSize <= len(p); {
		h := p[off:]
		n := int(binary.BigEndian.Uint16(h[recordlayer.FixedHeaderSize-2:]))
		end := off + recordlayer.FixedHeaderSize + n
		if end > len(p) {
			break
		}
		if protocol.ContentType(h[0]) == protocol.ContentTypeAlert && h[3] == 0 && h[4] == 0 &&
			n == alertLen && h[recordlayer.FixedHeaderSize] == fatal && h[recordlayer.FixedHeaderSize+1] == internalError {
			if &out[0] == &p[0] {
				out = bytes.Clone(p)
			}
			out[off+recordlayer.FixedHeaderSize+1] = unknownPSKIdentity
		}
		off = end
	}
	return out
}

// sawHandshake notes what a datagram of a handshake under way tells about
// its outcome: a protected record means the client sent its Finished (so
// it derived keys from its PSK), a fatal plaintext alert that it gave up.
func (a *assoc) sawHandshake(b []byte) {
	forRecords(b, func(ct protocol.ContentType, epoch uint16, body []byte) bool {
		switch {
		case epoch != 0 || ct == protocol.ContentTypeConnectionID:
			a.sawFinished.Store(true)
		case ct == protocol.ContentTypeAlert && len(body) == 2 && body[0] == alertFatal:
			a.peerAlert.Store(int32(body[1]) + 1)
		}
		return true
	})
}

// alertFatal is the level of a fatal alert.
const alertFatal = 2

// fatalPlainAlert returns the description of the first fatal epoch-0
// alert record of the datagram p.
func fatalPlainAlert(p []byte) (desc byte, ok bool) {
	forRecords(p, func(ct protocol.ContentType, epoch uint16, body []byte) bool {
		if ct == protocol.ContentTypeAlert && epoch == 0 && len(body) == 2 && body[0] == alertFatal {
			desc, ok = body[1], true
			return false
		}
		return true
	})
	return desc, ok
}

// forRecords calls fn with the content type, epoch and body of each
// complete record of the datagram b until fn returns false. A Connection
// ID record ends the walk after fn saw it (with no body): its header
// length depends on the CID.
func forRecords(b []byte, fn func(ct protocol.ContentType, epoch uint16, body []byte) bool) {
	const epochOff, lenOff = 3, recordlayer.FixedHeaderSize - 2
	for off := 0; off+recordlayer.FixedHeaderSize <= len(b); {
		r := b[off:]
		ct, epoch := protocol.ContentType(r[0]), binary.BigEndian.Uint16(r[epochOff:])
		if ct == protocol.ContentTypeConnectionID {
			fn(ct, epoch, nil)
			return
		}
		end := recordlayer.FixedHeaderSize + int(binary.BigEndian.Uint16(r[lenOff:]))
		if end > len(r) || !fn(ct, epoch, r[recordlayer.FixedHeaderSize:end]) {
			return
		}
		off += end
	}
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
