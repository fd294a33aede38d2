package credential

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/store"
)

// ErrInvalid is matched when an Add request is malformed: the message says
// which field.
var ErrInvalid = errors.New("invalid credential")

// ErrNotFound is matched by the error of Get, Remove and LookupPSK when no
// credential has the endpoint or PSK identity asked for. The error
// matches store.ErrNotFound as well.
var ErrNotFound = errors.New("no such credential")

// ErrRequired is matched by the error of a device's write (a Register,
// Update, De-register, Send or notification over plain CoAP) that the
// store refused because the endpoint has credentials: such an endpoint
// talks DTLS only. It is store.ErrCredentialRequired, under the name of
// the package that owns credentials, so that the CoAP server need not
// import the store.
var ErrRequired = store.ErrCredentialRequired

// notFound adds ErrNotFound to the chain of a store error that is the
// store's not-found.
func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Limits on what Add accepts.
const (
	MaxEndpointLen = 255 // the CoAP server's bound on ep=
	MaxIdentityLen = 128 // RFC 4279 allows 2^16-1; devices use short ones
	MinKeyLen      = 8   // bytes; nRF91 and Zephyr use 16 or 32
	MaxKeyLen      = 64  // bytes
)

// Kind is the security mode of a credential.
type Kind = store.CredentialKind

// The credential kinds.
const (
	PSK  = store.CredentialPSK
	X509 = store.CredentialX509
)

// Service adds, lists, removes and looks up credentials. It is safe for
// concurrent use.
type Service struct {
	st          *store.Store
	seal        sealer
	sessions    sealer
	fingerprint string // Fingerprint of the secret key
}

// New returns a Service over st whose PSK keys are sealed with a key
// derived from secret (config.Config.SecretKey). Run CheckSecretKey before
// using it to seal or open keys.
func New(st *store.Store, secret string) (*Service, error) {
	if st == nil {
		return nil, errors.New("credential: nil store")
	}
	s, err := newSealer(secret)
	if err != nil {
		return nil, err
	}
	ss, err := newSealerFor(secret, hkdfSessionInfo)
	if err != nil {
		return nil, err
	}
	return &Service{st: st, seal: s, sessions: ss, fingerprint: Fingerprint(secret)}, nil
}

// SealSessions encrypts saved DTLS session state (which holds session
// keys) under a key of its own derived from the secret key.
func (s *Service) SealSessions(state []byte) []byte {
	return s.sessions.seal(state, "dtls-sessions", "")
}

// OpenSessions reverses SealSessions; altered data or another secret key
// is ErrSealed.
func (s *Service) OpenSessions(sealed []byte) ([]byte, error) {
	return s.sessions.open(sealed, "dtls-sessions", "")
}

// AddRequest binds credentials to an endpoint: either PSKIdentity and
// PSKKey, or at least one of CertCN and CertFingerprint.
type AddRequest struct {
	Endpoint    string
	PSKIdentity string
	PSKKey      []byte
	CertCN      string
	// CertFingerprint is the SHA-256 of the client certificate (DER), in
	// hex with or without colons; it is stored lower-case without colons.
	CertFingerprint string
}

// Info is a credential without its key material.
type Info struct {
	Endpoint        string
	Kind            Kind
	PSKIdentity     string
	CertCN          string
	CertFingerprint string
	CreatedAt       time.Time
}

func infoOf(c store.Credential) Info {
	return Info{Endpoint: c.EndpointName, Kind: c.Kind, PSKIdentity: c.PSKIdentity,
		CertCN: c.CertCN, CertFingerprint: c.CertFingerprint, CreatedAt: c.CreatedAt}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// validate checks r and returns it normalized.
func (r AddRequest) validate() (AddRequest, error) {
	switch {
	case r.Endpoint == "":
		return r, invalid("empty endpoint name")
	case len(r.Endpoint) > MaxEndpointLen:
		return r, invalid("endpoint name longer than %d bytes", MaxEndpointLen)
	case !printable(r.Endpoint):
		return r, invalid("endpoint name has control characters")
	}
	isPSK := r.PSKIdentity != "" || len(r.PSKKey) > 0
	isCert := r.CertCN != "" || r.CertFingerprint != ""
	switch {
	case isPSK && isCert:
		return r, invalid("give a PSK identity and key or a certificate binding, not both")
	case !isPSK && !isCert:
		return r, invalid("give a PSK identity and key or a certificate CN or fingerprint")
	case isPSK:
		switch {
		case r.PSKIdentity == "":
			return r, invalid("a PSK needs an identity")
		case len(r.PSKIdentity) > MaxIdentityLen:
			return r, invalid("PSK identity longer than %d bytes", MaxIdentityLen)
		case !printable(r.PSKIdentity):
			return r, invalid("PSK identity has control characters")
		case len(r.PSKKey) < MinKeyLen || len(r.PSKKey) > MaxKeyLen:
			return r, invalid("PSK key is %d bytes, want %d to %d", len(r.PSKKey), MinKeyLen, MaxKeyLen)
		}
	default:
		if len(r.CertCN) > MaxEndpointLen || !printable(r.CertCN) {
			return r, invalid("certificate CN must be printable and at most %d bytes", MaxEndpointLen)
		}
		if r.CertFingerprint != "" {
			fp := strings.ToLower(strings.ReplaceAll(r.CertFingerprint, ":", ""))
			if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
				return r, invalid("certificate fingerprint %q: want the SHA-256 in hex", r.CertFingerprint)
			}
			r.CertFingerprint = fp
		}
	}
	return r, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Add stores the credential of r.Endpoint with a credential.add audit
// entry, in one transaction. A malformed request is ErrInvalid; an
// endpoint that already has a credential, or a PSK identity already in
// use, matches store.ErrConflict; a PSK while the database records another
// secret key's fingerprint, ErrKeyMismatch.
func (s *Service) Add(ctx context.Context, by store.Actor, r AddRequest) (Info, error) {
	r, err := r.validate()
	if err != nil {
		return Info{}, err
	}
	c := store.Credential{EndpointName: r.Endpoint, Kind: X509, CertCN: r.CertCN, CertFingerprint: r.CertFingerprint}
	if r.PSKIdentity != "" {
		c.Kind, c.PSKIdentity = PSK, r.PSKIdentity
		c.PSKKeyEnc = s.seal.seal(r.PSKKey, r.Endpoint, r.PSKIdentity)
	}
	var info Info
	err = s.st.WithTx(ctx, func(tx *sql.Tx) error {
		out, err := s.st.CreateCredentialTx(ctx, tx, c)
		if err != nil {
			return err
		}
		// After the insert: it waits for a rotation in progress, and this
		// then sees the rotated fingerprint.
		if c.Kind == PSK {
			if err := s.guardTx(ctx, tx); err != nil {
				return err
			}
		}
		info = infoOf(out)
		detail := map[string]string{"kind": string(info.Kind)}
		if info.PSKIdentity != "" {
			detail["psk_identity"] = info.PSKIdentity
		}
		if info.CertCN != "" {
			detail["cert_cn"] = info.CertCN
		}
		if info.CertFingerprint != "" {
			detail["cert_fingerprint"] = info.CertFingerprint
		}
		raw, _ := json.Marshal(detail)
		_, err = s.st.AppendAuditTx(ctx, tx, by.Entry("credential.add", r.Endpoint, raw))
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("credential: add: %w", err)
	}
	return info, nil
}

// List returns every credential, ordered by endpoint name, without keys.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	cs, err := s.st.ListCredentials(ctx)
	if err != nil {
		return nil, fmt.Errorf("credential: list: %w", err)
	}
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, infoOf(c))
	}
	return out, nil
}

// Get returns the credential bound to endpoint, without its key; an
// endpoint without one matches ErrNotFound.
func (s *Service) Get(ctx context.Context, endpoint string) (Info, error) {
	c, err := s.st.GetCredentialByEndpoint(ctx, endpoint)
	if err != nil {
		return Info{}, fmt.Errorf("credential: get: %w", notFound(err))
	}
	return infoOf(c), nil
}

// Remove deletes the credential of endpoint and appends a
// credential.remove audit entry. An endpoint without one matches
// ErrNotFound.
func (s *Service) Remove(ctx context.Context, by store.Actor, endpoint string) error {
	if err := s.st.DeleteCredential(ctx, endpoint); err != nil {
		return fmt.Errorf("credential: remove: %w", notFound(err))
	}
	return s.audit(ctx, by, "credential.remove", endpoint, nil)
}

// LookupPSK returns the endpoint bound to a PSK identity and the key in
// clear, for the DTLS handshake. An unknown identity matches
// ErrNotFound; a key that does not open, ErrSealed.
func (s *Service) LookupPSK(ctx context.Context, identity string) (endpoint string, key []byte, err error) {
	c, err := s.st.GetCredentialByPSKIdentity(ctx, identity)
	if err != nil {
		return "", nil, fmt.Errorf("credential: PSK identity %q: %w", identity, notFound(err))
	}
	key, err = s.seal.open(c.PSKKeyEnc, c.EndpointName, c.PSKIdentity)
	if err != nil {
		return "", nil, fmt.Errorf("credential: PSK identity %q: %w", identity, err)
	}
	return c.EndpointName, key, nil
}

// Refusal is a device request refused because of its credentials.
type Refusal struct {
	Endpoint   string // the endpoint the request claimed
	Identity   string // the authenticated identity ("psk:ID", "x509:CN"), "" over plain CoAP
	Bound      string // the endpoint the identity is bound to, if any
	Reason     string
	RemoteAddr string
}

// AuditRefusal appends a device.refused audit entry for r.
func (s *Service) AuditRefusal(ctx context.Context, r Refusal) error {
	detail := map[string]string{"reason": r.Reason}
	if r.Identity != "" {
		detail["identity"] = r.Identity
	}
	if r.Bound != "" {
		detail["bound_endpoint"] = r.Bound
	}
	return s.audit(ctx, store.Actor{Name: "device", RemoteAddr: r.RemoteAddr}, "device.refused", r.Endpoint, detail)
}

func (s *Service) audit(ctx context.Context, by store.Actor, action, target string, detail map[string]string) error {
	var raw json.RawMessage
	if detail != nil {
		raw, _ = json.Marshal(detail)
	}
	_, err := s.st.AppendAudit(ctx, by.Entry(action, target, raw))
	if err != nil {
		return fmt.Errorf("credential: audit %s: %w", action, err)
	}
	return nil
}

// ParseKey decodes a PSK key given in hex (as the CLI and API take it,
// colons and spaces allowed between bytes).
func ParseKey(s string) ([]byte, error) {
	clean := strings.NewReplacer(":", "", " ", "").Replace(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, invalid("PSK key is not hex")
	}
	return b, nil
}
