package dtlsmux

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"

	"github.com/pion/dtls/v3/pkg/protocol/alert"
)

// Reasons a DTLS handshake failed, as Failure reports them.
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
	// the handshake within the handshake timeout.
	ReasonTimeout = "timeout"
	// ReasonNoCookie: the client never returned the HelloVerifyRequest
	// cookie within Config.CookieTimeout. Its address may be spoofed.
	ReasonNoCookie = "no_cookie"
	// ReasonProtocol: any other failure (no common cipher suite, an
	// unsupported version, a malformed message, an alert).
	ReasonProtocol = "protocol"
)

// HandshakeFailureReasons are the reasons a handshake failure is reported
// with, for metrics that list them all from the start.
var HandshakeFailureReasons = []string{ReasonUnknownIdentity, ReasonBadPSK, ReasonBadCertificate,
	ReasonTimeout, ReasonNoCookie, ReasonProtocol}

// Failure is a handshake that failed.
type Failure struct {
	Addr netip.AddrPort // the client's address
	// Identity is the identity the client presented: "psk:ID" or
	// "x509:CN"; "" when none was seen.
	Identity string
	// Endpoint is the endpoint a presented PSK identity is bound to; ""
	// when unknown.
	Endpoint string
	Reason   string // one of HandshakeFailureReasons
	Err      error  // pion's error
}

// failureOf classifies the failed handshake of a by what the demux saw of
// it and pion's error.
func failureOf(a *assoc, err error) Failure {
	f := Failure{Addr: a.first, Reason: failureReason(a, err), Err: err}
	if id := a.identity.Load(); id != nil {
		f.Identity = "psk:" + *id
	}
	if ep := a.endpoint.Load(); ep != nil {
		f.Endpoint = *ep
	}
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA) && unknownCA.Cert != nil:
		f.Identity = "x509:" + unknownCA.Cert.Subject.CommonName
	case errors.As(err, &invalid) && invalid.Cert != nil:
		f.Identity = "x509:" + invalid.Cert.Subject.CommonName
	}
	return f
}

// failureReason is the reason of the failed handshake of a.
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
