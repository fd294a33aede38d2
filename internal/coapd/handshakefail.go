package coapd

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/protocol/alert"

	"github.com/flownexus/flownexus/internal/credential"
)

// Reasons a DTLS handshake failed, as reported to
// DTLSConfig.OnHandshakeFailure, logged and audited.
const (
	// ReasonUnknownIdentity: the client presented a PSK identity the
	// credential store does not know (or no longer knows).
	ReasonUnknownIdentity = "unknown_identity"
	// ReasonBadPSK: the identity is known but the client's key is not
	// its key: the client's Finished could not be decrypted or verified.
	// The server notices this when the handshake times out.
	ReasonBadPSK = "bad_psk"
	// ReasonBadCertificate: the client's certificate was refused (no
	// certificate, not signed by the client CA, expired, ...), or no x509
	// credential binds it to an endpoint.
	ReasonBadCertificate = "bad_certificate"
	// ReasonTimeout: the client returned its cookie but did not complete
	// the handshake within DTLSConfig.HandshakeTimeout.
	ReasonTimeout = "timeout"
	// ReasonNoCookie: the client never returned the HelloVerifyRequest
	// cookie within DTLSConfig.CookieTimeout. Its address may be spoofed:
	// this is counted, not logged nor audited.
	ReasonNoCookie = "no_cookie"
	// ReasonProtocol: any other failure (no common cipher suite, an
	// unsupported version, a malformed message, an alert).
	ReasonProtocol = "protocol"
)

// HandshakeFailureReasons are the reasons a handshake failure is reported
// with, for metrics that list them all from the start.
var HandshakeFailureReasons = []string{ReasonUnknownIdentity, ReasonBadPSK, ReasonBadCertificate,
	ReasonTimeout, ReasonNoCookie, ReasonProtocol}

// failureInterval is the shortest time between two log lines, and two
// audit entries, about failed handshakes of one identity (or, without
// one, one source).
const failureInterval = time.Minute

// maxFailureAudits bounds the audit entries about failed handshakes per
// failureInterval over all identities: a client trying many identities
// cannot flood the audit log.
const maxFailureAudits = 100

// failureReason classifies the failed handshake of a by what the demux
// saw of it and pion's error.
func failureReason(a *assoc, err error) string {
	sent, got := alert.Description(a.sentAlert.Load()-1), alert.Description(a.peerAlert.Load()-1)
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case a.unknownPSK.Load():
		return ReasonUnknownIdentity
	case certAlert(sent) || certAlert(got) || errors.As(err, &unknownCA) || errors.As(err, &invalid):
		return ReasonBadCertificate
	case a.identity.Load() != nil && (a.sawFinished.Load() || sent == alert.HandshakeFailure || sent == alert.DecryptError):
		// The client derived its keys from a PSK and sent its Finished,
		// which the server could not decrypt (dropped silently, so the
		// handshake timed out) or verify.
		return ReasonBadPSK
	case !a.verified.Load():
		return ReasonNoCookie
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	}
	return ReasonProtocol
}

// certAlert reports whether d is an alert about a certificate.
func certAlert(d alert.Description) bool {
	switch d {
	case alert.BadCertificate, alert.UnsupportedCertificate, alert.CertificateRevoked, alert.CertificateExpired,
		alert.CertificateUnknown, alert.UnknownCA, alert.NoCertificate, alert.AccessDenied:
		return true
	}
	return false
}

// assocFailed reports the failed handshake of the association a.
func (s *Server) assocFailed(a *assoc, err error) {
	reason := failureReason(a, err)
	var identity, endpoint string
	if id := a.identity.Load(); id != nil {
		identity = "psk:" + *id
	}
	if ep := a.endpoint.Load(); ep != nil {
		endpoint = *ep
	}
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA) && unknownCA.Cert != nil:
		identity = "x509:" + unknownCA.Cert.Subject.CommonName
	case errors.As(err, &invalid) && invalid.Cert != nil:
		identity = "x509:" + invalid.Cert.Subject.CommonName
	}
	s.handshakeFailed(a.first, identity, endpoint, reason, err)
}

// handshakeFailed reports a failed handshake from addr: to
// DTLSConfig.OnHandshakeFailure always, and, unless its client may be
// spoofed (ReasonNoCookie), in a log line and, with an identity, in the
// audit log (device.refused), each at most once per failureInterval per
// identity (or source, without one). A log line says how many failures
// it stands for.
func (s *Server) handshakeFailed(addr netip.AddrPort, identity, endpoint, reason string, err error) {
	if f := s.dtlsCfg.OnHandshakeFailure; f != nil {
		f(addr, identity, reason)
	}
	if reason == ReasonNoCookie {
		return
	}
	key := identity
	if key == "" {
		key = sourceKey(addr.Addr()).String()
	}
	now := time.Now()
	n, logIt, auditIt := s.hsFailures.note(key+"\x00"+reason, identity != "", now)
	if logIt {
		lvl := s.log.Info
		if reason == ReasonUnknownIdentity || reason == ReasonBadPSK || reason == ReasonBadCertificate {
			lvl = s.log.Warn
		}
		lvl("DTLS handshake failed", "reason", reason, "identity", identity, "endpoint", endpoint,
			"remote_addr", addr.String(), "failures", n, "err", err)
	}
	if auditIt && s.creds != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.creds.AuditRefusal(ctx, credential.Refusal{Endpoint: endpoint, Identity: identity,
			Reason: "DTLS handshake failed: " + reason, RemoteAddr: addr.String()}); err != nil {
			s.log.Error("audit of a failed DTLS handshake failed", "identity", identity, "err", err)
		}
	}
}

// failureLimiter rate-limits the log lines and audit entries about failed
// handshakes. The zero failureLimiter is ready for use.
type failureLimiter struct {
	mu          sync.Mutex
	keys        map[string]*failureKey // guarded by mu
	windowStart time.Time              // guarded by mu
	audits      int                    // audit entries since windowStart; guarded by mu
}

type failureKey struct {
	last time.Time // of the last log line
	n    int       // failures since (and including) the one logged last
}

// note records a failure under key at now and reports how many failures
// of key the log line stands for (this one and those not logged since
// the last line), and whether to log it and (when it is auditable) to
// audit it.
func (l *failureLimiter) note(key string, auditable bool, now time.Time) (n int, logIt, auditIt bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil || len(l.keys) > 10000 {
		l.keys = make(map[string]*failureKey)
	}
	k := l.keys[key]
	if k == nil {
		k = &failureKey{}
		l.keys[key] = k
	}
	k.n++
	if !k.last.IsZero() && now.Sub(k.last) < failureInterval {
		return k.n, false, false
	}
	n, k.n, k.last = k.n, 0, now
	if now.Sub(l.windowStart) >= failureInterval {
		l.windowStart, l.audits = now, 0
	}
	if auditable && l.audits < maxFailureAudits {
		l.audits++
		auditIt = true
	}
	return n, true, auditIt
}
