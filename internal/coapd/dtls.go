package coapd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// DTLSConfig tunes the CoAP/DTLS listener. The zero value is valid.
type DTLSConfig struct {
	// HandshakeTimeout bounds one handshake, cookie exchange included;
	// <= 0 means 15 s (several flight retransmissions over a slow
	// cellular link).
	HandshakeTimeout time.Duration
	// MaxHandshakes caps the handshakes in progress at once whose client
	// returned its HelloVerifyRequest cookie (so its address is not
	// spoofed); a returned cookie beyond it is dropped (the device
	// retransmits it). <= 0 means 1024.
	MaxHandshakes int
	// MaxHandshakesPerSource caps those handshakes per source: an IPv4
	// address or an IPv6 /64. <= 0 means 64. Established sessions are not
	// counted: many devices share a carrier NAT's address.
	MaxHandshakesPerSource int
	// MaxUnverified caps the handshakes waiting for their client to return
	// the cookie; beyond it the oldest is dropped, so spoofed ClientHellos
	// cannot lock out devices that answer within the time the flood takes
	// to send MaxUnverified more. <= 0 means 2048 (each costs about 30 KiB
	// and four goroutines until it ends).
	MaxUnverified int
	// CookieTimeout ends a handshake whose client has not returned its
	// cookie; <= 0 means 5 s (a few ClientHello retransmissions).
	CookieTimeout time.Duration
	// Certificate, when set, lets devices authenticate with X.509
	// certificates (ECDHE_ECDSA suites): the server presents it and
	// requires a client certificate that verifies against ClientCAs, which
	// must then be set too. Use ECDSA P-256 and short chains: handshake
	// records of RSA chains exceed constrained devices' buffers. A device
	// is bound to the endpoint named by its certificate's CN or a SAN that
	// has an x509 credential whose CN and fingerprint, where set, match.
	Certificate *tls.Certificate
	ClientCAs   *x509.CertPool
	// SessionFile, when set, keeps sessions across a planned restart:
	// Stop saves the sessions bound to endpoints there (sealed with a key
	// derived from the secret key) and ListenDTLS resumes them and removes
	// the file, so devices go on without a handshake. A session is
	// restored at most once.
	SessionFile string
	// SessionCacheSize bounds the sessions kept for resumption by session
	// ID (RFC 5246 abbreviated handshake), oldest dropped first; 0 means
	// 65536, negative turns resumption off. A session takes about 200
	// bytes.
	SessionCacheSize int
	// SessionCacheTTL is how long a session can be resumed after its full
	// handshake; <= 0 means 24 h.
	SessionCacheTTL time.Duration
	// OnHandshake, when set, is called after each completed handshake with
	// the peer's address, authenticated identity ("psk:ID", "x509:CN") and
	// whether it was an abbreviated one resuming a cached session, on the
	// session's goroutine. Metrics and tests count handshakes with it.
	OnHandshake func(addr netip.AddrPort, identity string, resumed bool)
	// OnHandshakeFailure, when set, is called for each handshake that
	// failed, and for each session closed at once because its identity is
	// bound to no endpoint, with the peer's address, the identity it
	// presented ("psk:ID", "x509:CN"; "" when none was seen) and one of
	// HandshakeFailureReasons, on the handshake's goroutine; it must not
	// block. Handshakes cut short by Stop are not reported.
	OnHandshakeFailure func(addr netip.AddrPort, identity, reason string)
}

// Cipher suites offered to PSK clients: those nRF91 modems and Zephyr's
// mbed TLS offer (CCM_8 is the one LwM2M mandates), strongest AEADs first.
var pskSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_CCM_8,
	dtls.TLS_PSK_WITH_AES_128_CCM,
	dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	dtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
}

// Cipher suites added for certificate clients when a certificate is set.
var certSuites = []dtls.CipherSuiteID{
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
}

// peerKey is the connection-context key of a DTLS session's *peer.
type peerKey struct{}

// peer is what the handshake established about the other side of a DTLS
// session. Plain CoAP connections have none.
type peer struct {
	identity string // "psk:ID" or "x509:CN"
	endpoint string // the endpoint the identity is bound to
}

// peerOf returns the authenticated peer of a connection, nil for plain
// CoAP.
func peerOf(cc *udpclient.Conn) *peer {
	p, _ := cc.Context().Value(peerKey{}).(*peer)
	return p
}

func (p *peer) transport() registry.Transport {
	if p == nil {
		return registry.TransportUDP
	}
	return registry.TransportDTLS
}

// newDTLSServer builds the go-coap DTLS server sharing the UDP server's
// handler, message processing and idle policy.
func (s *Server) newDTLSServer(cfg DTLSConfig, idle time.Duration) *dtlsserver.Server {
	onInactive := func(cc *udpclient.Conn) {
		// A session bound to a live registration is kept as long as the
		// registration, parked: a sleeping device must not pay a handshake
		// per wake-up, nor the server a live session per sleeping device.
		// Others go after the idle timeout.
		if p := peerOf(cc); p != nil && s.sessionOf(p.endpoint) == cc {
			if _, ok := s.reg.ByEndpoint(p.endpoint); ok {
				if !s.park(cc, p.endpoint) {
					cc.InactivityMonitor().Notify() // not parked: kept live
				}
				return
			}
		}
		_ = cc.Close()
	}
	return dtlsserver.New(
		options.WithHandlerFunc(s.handle),
		options.WithOnNewConn(s.newSession),
		options.WithErrors(func(err error) {
			s.log.Debug("coaps transport", "err", err)
		}),
		options.WithProcessReceivedMessageFunc(config.ProcessReceivedMessageFunc[*udpclient.Conn](s.processReceived)),
		options.WithDTLSHandshakeTimeout(cfg.HandshakeTimeout),
		idleMonitor(idle, onInactive),
		periodicRunner(idle, s.sweepParked),
	)
}

// park keeps the idle session cc of endpoint as its exported state and
// closes it without a word to the device (see demux.park); false when it
// cannot be parked and stays live.
func (s *Server) park(cc *udpclient.Conn, endpoint string) bool {
	gc, ok := cc.NetConn().(*gatedConn)
	if !ok {
		return false
	}
	// Muted before the snapshot, the session sends no record the restored
	// one would send again with the same sequence number.
	gc.assoc.muted.Store(true)
	state, ok := gc.ConnectionState()
	var b []byte
	var err error
	if ok {
		b, err = state.MarshalBinary()
		b = bytes.Clone(b) // the encoder's buffer is twice as large
	}
	pk := &parked{endpoint: endpoint, addr: addrOf(gc.RemoteAddr()), state: b}
	if cid := gc.assoc.cid.Load(); cid != nil {
		pk.cid = *cid
	}
	if !ok || err != nil || !gc.assoc.d.park(gc.assoc, pk) {
		// Nothing was sent since the mute, so the live session goes on
		// where it was.
		gc.assoc.muted.Store(false)
		return false
	}
	_ = cc.Close()
	s.log.Debug("DTLS session parked", "endpoint", endpoint, "remote_addr", pk.addr.String())
	return true
}

// DTLSStats counts the DTLS sessions bound to endpoints.
type DTLSStats struct {
	Live   int // sessions with an association, goroutines and buffers
	Parked int // idle sessions kept as their exported state only
	// ParkedStateBytes is the size of the parked sessions' exported
	// states.
	ParkedStateBytes int
}

// DTLSStats returns the current session counts.
func (s *Server) DTLSStats() DTLSStats {
	s.sessionsMu.Lock()
	st := DTLSStats{Live: len(s.sessions)}
	s.sessionsMu.Unlock()
	if l := s.dtlsListener(); l != nil {
		l.demux.mu.Lock()
		st.Parked = len(l.demux.parkedEP)
		for _, pk := range l.demux.parkedEP {
			st.ParkedStateBytes += len(pk.state)
		}
		l.demux.mu.Unlock()
	}
	return st
}

// sweepParked drops the parked sessions whose endpoint has no
// registration any more (restored from the store if need be, as after a
// restart): a device that comes back handshakes again.
func (s *Server) sweepParked() {
	l := s.dtlsListener()
	if l == nil {
		return
	}
	for _, pk := range l.demux.parkedSessions() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.reg.LookupEndpoint(ctx, pk.endpoint)
		cancel()
		if errors.Is(err, registry.ErrNotFound) {
			l.demux.forgetParked(pk.endpoint)
		}
	}
}

// DTLSServerApply installs the inactivity monitor factory on the DTLS
// server.
func (o udpInactivity) DTLSServerApply(cfg *dtlsserver.Config) {
	cfg.CreateInactivityMonitor = o.create
}

// lookupPSK finds the endpoint and key of the PSK identity a client
// presented in the credential store. A failure other than an unknown
// identity is the server's and logged; the handshake's failure is
// reported by handshakeFailed.
func (s *Server) lookupPSK(identity []byte) (endpoint string, key []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	endpoint, key, err = s.creds.LookupPSK(ctx, string(identity))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("DTLS credential lookup failed", "identity", string(identity), "err", err)
	}
	return endpoint, key, err
}

// pskKey is lookupPSK as pion's PSK callback.
func (s *Server) pskKey(identity []byte) ([]byte, error) {
	_, key, err := s.lookupPSK(identity)
	return key, err
}

// newSession runs once a handshake completed, before the session's first
// message is handled: it binds the session to the endpoint of the
// authenticated identity, or closes it.
func (s *Server) newSession(cc *udpclient.Conn) {
	s.dtlsSessions.add(cc)
	sc, ok := cc.NetConn().(interface{ ConnectionState() (dtls.State, bool) })
	if !ok {
		_ = cc.Close()
		return
	}
	state, ok := sc.ConnectionState()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var identity, endpoint, reason string
	var err error
	switch {
	case !ok:
		err, reason = errors.New("no handshake state"), ReasonProtocol
	case len(state.IdentityHint) > 0:
		identity, reason = "psk:"+string(state.IdentityHint), ReasonUnknownIdentity
		// A second lookup: the credential may have been removed since the
		// handshake's.
		endpoint, _, err = s.creds.LookupPSK(ctx, string(state.IdentityHint))
	case len(state.PeerCertificates) > 0:
		reason = ReasonBadCertificate
		identity, endpoint, err = s.certBinding(ctx, state.PeerCertificates[0])
	default:
		err, reason = errors.New("no identity"), ReasonProtocol
	}
	if err != nil {
		_ = cc.Close()
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, errNoCertCredential) && reason != ReasonProtocol {
			s.log.Error("DTLS session closed: credential lookup failed", "identity", identity,
				"remote_addr", connAddr(cc).String(), "err", err)
			return
		}
		s.handshakeFailed(connAddr(cc), identity, "", reason, err)
		return
	}
	cc.SetContextValue(peerKey{}, &peer{identity: identity, endpoint: endpoint})
	s.log.Debug("DTLS session", "identity", identity, "endpoint", endpoint, "remote_addr", connAddr(cc).String())
	if gc, ok := cc.NetConn().(*gatedConn); ok && gc.resumed {
		// No handshake: requests to the device go out on its resumed
		// session.
		s.bindSession(endpoint, cc)
		return
	}
	if s.dtlsCfg.OnHandshake != nil {
		resumed := false
		if gc, ok := cc.NetConn().(*gatedConn); ok {
			resumed = resumedSession(gc.assoc, state.SessionID)
		}
		s.dtlsCfg.OnHandshake(connAddr(cc), identity, resumed)
	}
}

// certBinding finds the endpoint a verified client certificate is bound
// to: the first of its CN, DNS and URI SANs that has an x509 credential
// whose CN and fingerprint (SHA-256 of the DER), where set, match.
func (s *Server) certBinding(ctx context.Context, der []byte) (identity, endpoint string, err error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", fmt.Errorf("client certificate: %w", err)
	}
	identity = "x509:" + cert.Subject.CommonName
	sum := sha256.Sum256(der)
	fp := hex.EncodeToString(sum[:])
	names := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n == "" {
			continue
		}
		c, err := s.creds.Get(ctx, n)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return identity, "", err
		}
		if c.Kind != credential.X509 || (c.CertCN != "" && c.CertCN != cert.Subject.CommonName) ||
			(c.CertFingerprint != "" && c.CertFingerprint != fp) {
			continue
		}
		return identity, n, nil
	}
	return identity, "", fmt.Errorf("%w (CN %q, SHA-256 %s)", errNoCertCredential, cert.Subject.CommonName, fp)
}

// errNoCertCredential is a verified client certificate that no x509
// credential binds to an endpoint.
var errNoCertCredential = errors.New("no x509 credential matches the certificate")

// sessionOf returns the DTLS session an endpoint last talked on, nil when
// none is live.
func (s *Server) sessionOf(endpoint string) *udpclient.Conn {
	s.sessionsMu.Lock()
	defer s.sessionsMu.Unlock()
	return s.sessions[endpoint]
}

// bindSession makes cc the session requests to endpoint go out on. A
// previous session of the endpoint (the device rebooted and handshook
// again) is closed.
func (s *Server) bindSession(endpoint string, cc *udpclient.Conn) {
	s.sessionsMu.Lock()
	old := s.sessions[endpoint]
	if old == cc {
		s.sessionsMu.Unlock()
		return
	}
	s.sessions[endpoint] = cc
	close(s.sessionBound)
	s.sessionBound = make(chan struct{})
	s.sessionsMu.Unlock()
	if l := s.dtlsListener(); l != nil {
		l.demux.forgetParked(endpoint)
	}
	cc.AddOnClose(func() {
		s.sessionsMu.Lock()
		if s.sessions[endpoint] == cc {
			delete(s.sessions, endpoint)
		}
		s.sessionsMu.Unlock()
	})
	if old != nil {
		_ = old.Close()
	}
}

// unparkSession resumes the parked session of endpoint and waits until it
// is bound (see bindSession), at most until ctx ends.
func (s *Server) unparkSession(ctx context.Context, endpoint string) *udpclient.Conn {
	l := s.dtlsListener()
	if l == nil || !l.demux.unpark(endpoint) {
		return nil
	}
	for {
		s.sessionsMu.Lock()
		cc, bound := s.sessions[endpoint], s.sessionBound
		s.sessionsMu.Unlock()
		if cc != nil && cc.Context().Err() == nil {
			return cc
		}
		select {
		case <-bound:
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Server) dtlsListener() *dtlsListener {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	return s.dl
}

// ListenDTLS binds the CoAP/DTLS socket ("127.0.0.1:0", ":5684"). It needs
// Config.Credentials.
func (s *Server) ListenDTLS(addr string) error {
	if s.creds == nil {
		return errors.New("coapd: DTLS needs Config.Credentials")
	}
	gate := newHandshakeGate(s.dtlsCfg.MaxHandshakes, s.dtlsCfg.MaxHandshakesPerSource)
	c, err := listenUDP(addr)
	if err != nil {
		return fmt.Errorf("coapd: listen DTLS %s: %w", addr, err)
	}
	suites := pskSuites
	opts := []dtls.ServerOption{
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(cidLen)),
		dtls.WithLoggerFactory(pionLogs{s.log}),
	}
	if cert := s.dtlsCfg.Certificate; cert != nil {
		if s.dtlsCfg.ClientCAs == nil {
			_ = c.Close()
			return errors.New("coapd: a DTLS certificate needs ClientCAs to verify devices' certificates")
		}
		suites = append(append([]dtls.CipherSuiteID(nil), certSuites...), pskSuites...)
		opts = append(opts, dtls.WithCertificates(*cert), dtls.WithClientCAs(s.dtlsCfg.ClientCAs),
			dtls.WithClientAuth(dtls.RequireAndVerifyClientCert))
	}
	opts = append(opts, dtls.WithCipherSuites(suites...))
	l := &dtlsListener{demux: newDemux(c, cidLen, gate, s.dtlsCfg.MaxUnverified), log: s.log, opts: opts, psk: s.lookupPSK,
		failed: s.assocFailed, cookieTimeout: s.dtlsCfg.CookieTimeout, sessions: s.sessionCache,
		resumeOpts: []dtls.Option{
			dtls.WithPSK(s.pskKey),
			dtls.WithCipherSuites(suites...),
			dtls.WithLoggerFactory(pionLogs{s.log}),
		}}
	if err := s.restoreSessions(l); err != nil {
		_ = l.Close()
		return err
	}
	if err := s.dtls.bind(c.LocalAddr(), func() error { return s.dtlsSrv.Serve(l) }, l.Close); err != nil {
		_ = l.Close()
		return err
	}
	s.dmu.Lock()
	s.dl = l
	s.dmu.Unlock()
	return nil
}

// cidLen is the length of the Connection IDs the server gives clients
// that support them (RFC 9146): 8 bytes, so they cannot be guessed.
const cidLen = 8

// ServeDTLS serves on the socket bound by ListenDTLS until Stop.
func (s *Server) ServeDTLS() error { return s.dtls.run() }

// StartDTLS is ListenDTLS followed by ServeDTLS in a new goroutine; a
// ServeDTLS error is logged.
func (s *Server) StartDTLS(addr string) error { return s.start(s.ListenDTLS, s.ServeDTLS, addr) }

// DTLSAddr returns the bound DTLS address, or the zero AddrPort before
// ListenDTLS.
func (s *Server) DTLSAddr() netip.AddrPort { return s.dtls.bound() }

// dtlsListener hands go-coap the associations of the demultiplexer as
// pion server sessions, gating the handshakes.
type dtlsListener struct {
	demux      *demux
	opts       []dtls.ServerOption // without the PSK callback
	psk        func(identity []byte) (endpoint string, key []byte, err error)
	failed     func(a *assoc, err error) // reports a failed handshake
	resumeOpts []dtls.Option
	log        *slog.Logger
	closed     atomic.Bool
	// cookieTimeout ends a handshake whose client has not returned its
	// cookie.
	cookieTimeout time.Duration
	// sessions are the sessions kept for resumption; nil when off.
	sessions *sessionCache
}

// AcceptWithContext returns the next new association as a pion session.
// One that has not returned its cookie after the cookie timeout is closed.
func (l *dtlsListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, err := l.demux.Accept()
		if err != nil {
			return nil, coapnet.ErrListenerIsClosed
		}
		if a.resume != nil {
			if gc := l.resume(a); gc != nil {
				return gc, nil
			}
			continue
		}
		select {
		case <-a.done:
			// Displaced before it was accepted.
			l.demux.handshakeEnded(a)
			continue
		default:
		}
		time.AfterFunc(l.cookieTimeout, func() {
			if !a.verified.Load() {
				_ = a.Close()
			}
		})
		// The PSK callback is the association's, so that an unknown
		// identity is answered with unknown_psk_identity (see
		// assoc.WriteTo); pion itself says internal_error.
		opts := append(slices.Clip(l.opts), dtls.WithPSK(func(identity []byte) ([]byte, error) {
			id := string(identity)
			a.identity.Store(&id)
			endpoint, key, err := l.psk(identity)
			if errors.Is(err, store.ErrNotFound) {
				a.unknownPSK.Store(true)
			}
			a.endpoint.Store(&endpoint)
			return key, err
		}))
		if l.sessions != nil {
			opts = append(opts, dtls.WithSessionStore(assocSessions{l.sessions, a}))
		}
		dc, err := dtls.ServerWithOptions(a, net.UDPAddrFromAddrPort(a.first), opts...)
		if err != nil {
			l.demux.handshakeEnded(a)
			_ = a.Close()
			l.log.Error("DTLS session setup failed", "err", err)
			continue
		}
		return &gatedConn{Conn: dc, assoc: a, leave: func() { l.demux.handshakeEnded(a) },
			failed: func(err error) { l.failed(a, err) }}, nil
	}
}

// resume makes the session of a parked association; nil when its state
// does not restore (the device handshakes again).
func (l *dtlsListener) resume(a *assoc) *gatedConn {
	var state dtls.State
	err := state.UnmarshalBinary(a.resume.state)
	var dc *dtls.Conn
	if err == nil {
		dc, err = dtls.ResumeWithOptions(&state, a, net.UDPAddrFromAddrPort(a.first), l.resumeOpts...)
	}
	if err != nil {
		l.log.Warn("parked DTLS session not resumed", "endpoint", a.resume.endpoint, "err", err)
		_ = a.Close()
		return nil
	}
	return &gatedConn{Conn: dc, assoc: a, leave: func() {}, resumed: true}
}

// Close closes the socket and every association; go-coap closes the
// sessions on them.
func (l *dtlsListener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	return l.demux.Close()
}

// gatedConn is a DTLS session whose association may hold a handshake slot
// until its handshake ends.
type gatedConn struct {
	*dtls.Conn
	assoc   *assoc
	leave   func()
	failed  func(err error) // reports a failed handshake; nil for a resumed session
	resumed bool            // a parked session resumed: no handshake
}

// HandshakeContext runs the handshake, gives the slot back and, on
// success, lets the association take over its address; a failure not
// caused by the server stopping (ctx cancelled) is reported.
func (c *gatedConn) HandshakeContext(ctx context.Context) error {
	defer c.leave()
	if err := c.Conn.HandshakeContext(ctx); err != nil {
		if c.failed != nil && !errors.Is(ctx.Err(), context.Canceled) {
			c.failed(err)
		}
		return err
	}
	c.assoc.d.established(c.assoc)
	return nil
}

// Close closes the association and gives the slot back if the handshake
// never ran.
func (c *gatedConn) Close() error {
	c.leave()
	return c.Conn.Close()
}

// handshakeGate counts handshakes in progress, in total and per source.
type handshakeGate struct {
	max, perSource int

	mu       sync.Mutex
	total    int                // guarded by mu
	bySource map[netip.Addr]int // guarded by mu
}

func newHandshakeGate(max, perSource int) *handshakeGate {
	if max <= 0 {
		max = 1024
	}
	if perSource <= 0 {
		perSource = 64
	}
	return &handshakeGate{max: max, perSource: perSource, bySource: make(map[netip.Addr]int)}
}

// sourceKey is the source a handshake counts against: an IPv4 address,
// or the /64 of an IPv6 one (one subscriber's prefix).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (g *handshakeGate) enter(src netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max || g.bySource[src] >= g.perSource {
		return false
	}
	g.total++
	g.bySource[src]++
	return true
}

func (g *handshakeGate) leave(src netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if n := g.bySource[src] - 1; n > 0 {
		g.bySource[src] = n
	} else {
		delete(g.bySource, src)
	}
}

func addrOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		return unmapped(ua.AddrPort())
	}
	return netip.AddrPort{}
}

// pionLogs sends pion's log lines to slog at debug level: a device's
// failed handshake is not the server's error.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("scope", "dtls/"+scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(msg string)       { l.log.Debug(msg) }
func (l pionLogger) Infof(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
func (l pionLogger) Warn(msg string) { l.log.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
func (l pionLogger) Error(msg string) { l.log.Debug(msg) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
