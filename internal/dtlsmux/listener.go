package dtlsmux

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	coapnet "github.com/plgd-dev/go-coap/v3/net"
)

// Config configures a Listener. PSK is required; the zero value of every
// other field takes the default it names.
type Config struct {
	// PSK finds the PSK identity a client presents: the endpoint it is
	// bound to and its key. An identity it does not know returns an error
	// matching ErrUnknownIdentity (the client is then told
	// unknown_psk_identity); any other error fails the handshake as the
	// server's. It is called on the handshake's goroutine.
	PSK func(identity []byte) (endpoint string, key []byte, err error)
	// Certificate, when set, lets clients authenticate with X.509
	// certificates (ECDHE_ECDSA suites): the listener presents it and
	// requires a client certificate that verifies against ClientCAs,
	// which must then be set too.
	Certificate *tls.Certificate
	ClientCAs   *x509.CertPool
	// MaxHandshakes caps the handshakes in progress whose client returned
	// its HelloVerifyRequest cookie; <= 0 means 1024.
	MaxHandshakes int
	// MaxHandshakesPerSource caps them per source (SourceKey); <= 0 means
	// 64.
	MaxHandshakesPerSource int
	// MaxUnverified caps the handshakes waiting for their cookie, the
	// oldest displaced beyond it; <= 0 means 2048.
	MaxUnverified int
	// CookieTimeout ends a handshake whose client has not returned its
	// cookie; <= 0 means 5 s.
	CookieTimeout time.Duration
	// SessionCacheSize bounds the sessions kept for resumption by session
	// ID (RFC 5246 abbreviated handshake), oldest dropped first; 0 means
	// 65536, negative turns resumption off.
	SessionCacheSize int
	// SessionCacheTTL is how long a session can be resumed after its full
	// handshake; <= 0 means 24 h.
	SessionCacheTTL time.Duration
	// OnFailure, when set, is called for each handshake that failed, on
	// its goroutine; it must not block. Handshakes cut short because the
	// accepting server stopped (their context cancelled) are not
	// reported.
	OnFailure func(Failure)
	// Logger receives pion's log lines at debug level and the listener's
	// own; nil means slog.Default().
	Logger *slog.Logger
}

// ErrUnknownIdentity is matched by the error of Config.PSK for an
// identity it does not know.
var ErrUnknownIdentity = errors.New("dtlsmux: unknown PSK identity")

// cidLen is the length of the Connection IDs the listener gives clients
// that support them (RFC 9146): 8 bytes, so they cannot be guessed.
const cidLen = 8

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

// Listener is a DTLS 1.2 server socket: the demultiplexer (see the
// package documentation) hands it associations, which it returns to the
// server loop (go-coap's DTLS server) as pion sessions (*Conn), new ones
// with their handshake still to run and parked ones resumed. It is safe
// for concurrent use.
type Listener struct {
	demux      *demux
	opts       []dtls.ServerOption // without the PSK callback
	psk        func(identity []byte) (endpoint string, key []byte, err error)
	onFailure  func(Failure)
	resumeOpts []dtls.Option
	log        *slog.Logger
	closed     atomic.Bool
	// cookieTimeout ends a handshake whose client has not returned its
	// cookie.
	cookieTimeout time.Duration
	// sessions are the sessions kept for resumption; nil when off.
	sessions *sessionCache
}

// NewListener serves DTLS on conn, which it owns from then on (Close
// closes it).
func NewListener(conn *net.UDPConn, cfg Config) (*Listener, error) {
	if cfg.PSK == nil {
		return nil, errors.New("dtlsmux: Config.PSK is required")
	}
	if cfg.Certificate != nil && cfg.ClientCAs == nil {
		return nil, errors.New("dtlsmux: a certificate needs ClientCAs to verify devices' certificates")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	suites := pskSuites
	opts := []dtls.ServerOption{
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(cidLen)),
		dtls.WithLoggerFactory(pionLogs{log}),
	}
	if cert := cfg.Certificate; cert != nil {
		suites = append(append([]dtls.CipherSuiteID(nil), certSuites...), pskSuites...)
		opts = append(opts, dtls.WithCertificates(*cert), dtls.WithClientCAs(cfg.ClientCAs),
			dtls.WithClientAuth(dtls.RequireAndVerifyClientCert))
	}
	opts = append(opts, dtls.WithCipherSuites(suites...))
	l := &Listener{
		opts:          opts,
		psk:           cfg.PSK,
		onFailure:     cfg.OnFailure,
		log:           log,
		cookieTimeout: cfg.CookieTimeout,
		resumeOpts: []dtls.Option{
			dtls.WithPSK(func(identity []byte) ([]byte, error) {
				_, key, err := cfg.PSK(identity)
				return key, err
			}),
			dtls.WithCipherSuites(suites...),
			dtls.WithLoggerFactory(pionLogs{log}),
		},
	}
	if l.cookieTimeout <= 0 {
		l.cookieTimeout = 5 * time.Second
	}
	if cfg.SessionCacheSize >= 0 {
		size, ttl := cfg.SessionCacheSize, cfg.SessionCacheTTL
		if size == 0 {
			size = 65536
		}
		if ttl <= 0 {
			ttl = 24 * time.Hour
		}
		l.sessions = newSessionCache(size, ttl, time.Now)
	}
	gate := newHandshakeGate(cfg.MaxHandshakes, cfg.MaxHandshakesPerSource)
	l.demux = newDemux(conn, cidLen, gate, cfg.MaxUnverified)
	return l, nil
}

// AcceptWithContext returns the next session: a new association as a
// pion server session whose handshake runs when the caller asks for it
// (Conn.HandshakeContext), or a parked session resumed. A new one that
// has not returned its cookie after the cookie timeout is closed. It is
// go-coap's DTLS listener method; once the listener is closed it returns
// go-coap's ErrListenerIsClosed.
func (l *Listener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, err := l.demux.Accept()
		if err != nil {
			return nil, coapnet.ErrListenerIsClosed
		}
		if a.resume != nil {
			if c := l.resume(a); c != nil {
				return c, nil
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
			if errors.Is(err, ErrUnknownIdentity) {
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
		return &Conn{Conn: dc, assoc: a, leave: func() { l.demux.handshakeEnded(a) },
			failed: func(err error) { l.failed(a, err) }}, nil
	}
}

// resume makes the session of a parked association; nil when its state
// does not restore (the device handshakes again).
func (l *Listener) resume(a *assoc) *Conn {
	var state dtls.State
	err := state.UnmarshalBinary(a.resume.State)
	var dc *dtls.Conn
	if err == nil {
		dc, err = dtls.ResumeWithOptions(&state, a, net.UDPAddrFromAddrPort(a.first), l.resumeOpts...)
	}
	if err != nil {
		l.log.Warn("parked DTLS session not resumed", "endpoint", a.resume.Endpoint, "err", err)
		_ = a.Close()
		return nil
	}
	return &Conn{Conn: dc, assoc: a, leave: func() {}, unparked: true}
}

// failed reports the failed handshake of the association a.
func (l *Listener) failed(a *assoc, err error) {
	if l.onFailure != nil {
		l.onFailure(failureOf(a, err))
	}
}

// Close stops accepting sessions. The sessions accepted keep the socket
// until they are closed (so they can still say close_notify); the last
// one closes it.
func (l *Listener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	return l.demux.Close()
}

// Addr returns the socket's local address.
func (l *Listener) Addr() net.Addr { return l.demux.Addr() }

// Drain stops opening associations: a ClientHello is dropped and so is a
// datagram for a parked session (their devices retransmit them to the
// restarted server), while established sessions and handshakes under way
// go on. It is the first step of a shutdown.
func (l *Listener) Drain() { l.demux.drain() }

// CloseAll closes every association, in handshake or established,
// accepted or not; after Close the last one closes the socket. Sessions
// on them see their packet connection closed: a session blocked in a
// read returns.
func (l *Listener) CloseAll() { l.demux.closeAll() }

// Quiesce drops every write of every session from now on and stops
// parking and resuming, so that no session sends a record after its
// state was exported (Conn.Export, Parked) for saving: pion/dtls v3
// restores a state safely only if the original sends nothing after it.
func (l *Listener) Quiesce() { l.demux.quiesce() }

// Unpark resumes the parked session of endpoint: it is handed to
// AcceptWithContext as a session with no handshake. It reports whether
// there was one and it is on its way, or already was.
func (l *Listener) Unpark(endpoint string) bool { return l.demux.unpark(endpoint) }

// ForgetParked drops the parked session of endpoint, if any, and forgets
// that one was being resumed: the endpoint has a newer session, or its
// resumed session is bound.
func (l *Listener) ForgetParked(endpoint string) { l.demux.forgetParked(endpoint) }

// AddParked parks a session restored from saved state, replacing a parked
// session of the same endpoint; it is resumed when its peer next sends
// (by Connection ID or from its address) or on Unpark.
func (l *Listener) AddParked(s Session) { l.demux.addParked(&s) }

// Parked returns the parked sessions.
func (l *Listener) Parked() []Session {
	ps := l.demux.parkedSessions()
	out := make([]Session, len(ps))
	for i, pk := range ps {
		out[i] = *pk
	}
	return out
}

// ParkedStats returns the number of parked sessions and the size of their
// exported states.
func (l *Listener) ParkedStats() (n, stateBytes int) {
	l.demux.mu.Lock()
	defer l.demux.mu.Unlock()
	for _, pk := range l.demux.parkedEP {
		stateBytes += len(pk.State)
	}
	return len(l.demux.parkedEP), stateBytes
}

// Conn is a DTLS session of a Listener: pion's session on one
// association of the demultiplexer, which may hold a handshake slot until
// its handshake ends.
type Conn struct {
	*dtls.Conn
	assoc    *assoc
	leave    func()
	failed   func(err error) // reports a failed handshake; nil for a resumed session
	unparked bool            // a parked session resumed: no handshake
}

// HandshakeContext runs the handshake, gives the slot back and, on
// success, lets the association take over its address; a failure not
// caused by the server stopping (ctx cancelled) is reported to
// Config.OnFailure.
func (c *Conn) HandshakeContext(ctx context.Context) error {
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

// Close closes the session and its association and gives the slot back
// if the handshake never ran.
func (c *Conn) Close() error {
	c.leave()
	return c.Conn.Close()
}

// Done is closed once the session's association is closed.
func (c *Conn) Done() <-chan struct{} { return c.assoc.done }

// Unparked reports whether c is a parked session resumed, with no
// handshake.
func (c *Conn) Unparked() bool { return c.unparked }

// ResumedCached reports whether c's handshake, which established the
// session ID id (its ConnectionState's SessionID), was an abbreviated one
// that resumed a session of the listener's session cache (pion gives a
// full handshake a new session ID).
func (c *Conn) ResumedCached(id []byte) bool { return resumedSession(c.assoc, id) }

// Export returns the session's exported state, bound to endpoint, for
// saving; false when it has none. Quiesce the listener first.
func (c *Conn) Export(endpoint string) (Session, bool) {
	state, ok := c.ConnectionState()
	if !ok {
		return Session{}, false
	}
	b, err := state.MarshalBinary()
	if err != nil {
		return Session{}, false
	}
	s := Session{Endpoint: endpoint, Addr: AddrOf(c.RemoteAddr()), State: b}
	if cid := c.assoc.cid.Load(); cid != nil {
		s.CID = *cid
	}
	return s, true
}

// Park keeps the idle session c as its exported state, bound to
// endpoint, and releases its association without a word to the peer (see
// the package documentation): muted before the snapshot, it sends no
// record the resumed session would send again with the same sequence
// number. On true the caller closes the session (its close sends
// nothing); on false nothing was parked and the session goes on where
// it was, as when the listener is closing or saving.
func (c *Conn) Park(endpoint string) bool {
	c.assoc.muted.Store(true)
	state, ok := c.ConnectionState()
	var b []byte
	var err error
	if ok {
		b, err = state.MarshalBinary()
		b = bytes.Clone(b) // the encoder's buffer is twice as large
	}
	pk := &Session{Endpoint: endpoint, Addr: AddrOf(c.RemoteAddr()), State: b}
	if cid := c.assoc.cid.Load(); cid != nil {
		pk.CID = *cid
	}
	if !ok || err != nil || !c.assoc.d.park(c.assoc, pk) {
		// Nothing was sent since the mute.
		c.assoc.muted.Store(false)
		return false
	}
	return true
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
