package coapd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/pion/dtls/v3"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/dtlsmux"
	"github.com/flownexus/flownexus/internal/registry"
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
	// dtlsmux.HandshakeFailureReasons, on the handshake's goroutine; it must not
	// block. Handshakes cut short by Stop are not reported.
	OnHandshakeFailure func(addr netip.AddrPort, identity, reason string)
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
// closes it without a word to the device (see dtlsmux.Conn.Park); false
// when it cannot be parked and stays live.
func (s *Server) park(cc *udpclient.Conn, endpoint string) bool {
	dc, ok := cc.NetConn().(*dtlsmux.Conn)
	if !ok || !dc.Park(endpoint) {
		return false
	}
	addr := dtlsmux.AddrOf(dc.RemoteAddr())
	_ = cc.Close()
	s.log.Debug("DTLS session parked", "endpoint", endpoint, "remote_addr", addr.String())
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
		st.Parked, st.ParkedStateBytes = l.ParkedStats()
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
	for _, pk := range l.Parked() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.reg.LookupEndpoint(ctx, pk.Endpoint)
		cancel()
		if errors.Is(err, registry.ErrNotFound) {
			l.ForgetParked(pk.Endpoint)
		}
	}
}

// DTLSServerApply installs the inactivity monitor factory on the DTLS
// server.
func (o udpInactivity) DTLSServerApply(cfg *dtlsserver.Config) {
	cfg.CreateInactivityMonitor = o.create
}

// lookupPSK finds the endpoint and key of the PSK identity a client
// presented in the credential store; an unknown identity matches
// dtlsmux.ErrUnknownIdentity. Another failure is the server's and logged;
// the handshake's failure is reported by handshakeFailed. It is
// dtlsmux.Config.PSK.
func (s *Server) lookupPSK(identity []byte) (endpoint string, key []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	endpoint, key, err = s.creds.LookupPSK(ctx, string(identity))
	switch {
	case errors.Is(err, credential.ErrNotFound):
		err = fmt.Errorf("%w: %w", dtlsmux.ErrUnknownIdentity, err)
	case err != nil:
		s.log.Error("DTLS credential lookup failed", "identity", string(identity), "err", err)
	}
	return endpoint, key, err
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
		err, reason = errors.New("no handshake state"), dtlsmux.ReasonProtocol
	case len(state.IdentityHint) > 0:
		identity, reason = "psk:"+string(state.IdentityHint), dtlsmux.ReasonUnknownIdentity
		// A second lookup: the credential may have been removed since the
		// handshake's.
		endpoint, _, err = s.creds.LookupPSK(ctx, string(state.IdentityHint))
	case len(state.PeerCertificates) > 0:
		reason = dtlsmux.ReasonBadCertificate
		identity, endpoint, err = s.certBinding(ctx, state.PeerCertificates[0])
	default:
		err, reason = errors.New("no identity"), dtlsmux.ReasonProtocol
	}
	if err != nil {
		_ = cc.Close()
		if !errors.Is(err, credential.ErrNotFound) && !errors.Is(err, errNoCertCredential) && reason != dtlsmux.ReasonProtocol {
			s.log.Error("DTLS session closed: credential lookup failed", "identity", identity,
				"remote_addr", connAddr(cc).String(), "err", err)
			return
		}
		s.handshakeFailed(dtlsmux.Failure{Addr: connAddr(cc), Identity: identity, Reason: reason, Err: err})
		return
	}
	cc.SetContextValue(peerKey{}, &peer{identity: identity, endpoint: endpoint})
	s.log.Debug("DTLS session", "identity", identity, "endpoint", endpoint, "remote_addr", connAddr(cc).String())
	dc, _ := cc.NetConn().(*dtlsmux.Conn)
	if dc != nil && dc.Unparked() {
		// No handshake: requests to the device go out on its resumed
		// session.
		s.bindSession(endpoint, cc)
		return
	}
	if s.dtlsCfg.OnHandshake != nil {
		s.dtlsCfg.OnHandshake(connAddr(cc), identity, dc != nil && dc.ResumedCached(state.SessionID))
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
		case errors.Is(err, credential.ErrNotFound):
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
		l.ForgetParked(endpoint)
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
	if l == nil || !l.Unpark(endpoint) {
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

func (s *Server) dtlsListener() *dtlsmux.Listener {
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
	c, err := dtlsmux.ListenUDP(addr)
	if err != nil {
		return fmt.Errorf("coapd: listen DTLS %s: %w", addr, err)
	}
	l, err := dtlsmux.NewListener(c, dtlsmux.Config{
		PSK:                    s.lookupPSK,
		Certificate:            s.dtlsCfg.Certificate,
		ClientCAs:              s.dtlsCfg.ClientCAs,
		MaxHandshakes:          s.dtlsCfg.MaxHandshakes,
		MaxHandshakesPerSource: s.dtlsCfg.MaxHandshakesPerSource,
		MaxUnverified:          s.dtlsCfg.MaxUnverified,
		CookieTimeout:          s.dtlsCfg.CookieTimeout,
		SessionCacheSize:       s.dtlsCfg.SessionCacheSize,
		SessionCacheTTL:        s.dtlsCfg.SessionCacheTTL,
		OnFailure:              s.handshakeFailed,
		Logger:                 s.log,
	})
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("coapd: listen DTLS %s: %w", addr, err)
	}
	if err := s.restoreSessions(l); err != nil {
		_ = l.Close()
		return err
	}
	if err := s.dtls.Bind(c.LocalAddr(), func() error { return s.dtlsSrv.Serve(l) }, l.Close); err != nil {
		_ = l.Close()
		return err
	}
	s.dmu.Lock()
	s.dl = l
	s.dmu.Unlock()
	return nil
}

// ServeDTLS serves on the socket bound by ListenDTLS until Stop.
func (s *Server) ServeDTLS() error { return s.dtls.Run() }

// StartDTLS is ListenDTLS followed by ServeDTLS in a new goroutine; a
// ServeDTLS error is logged.
func (s *Server) StartDTLS(addr string) error { return s.start(s.ListenDTLS, s.ServeDTLS, addr) }

// DTLSAddr returns the bound DTLS address, or the zero AddrPort before
// ListenDTLS.
func (s *Server) DTLSAddr() netip.AddrPort { return s.dtls.Bound() }
