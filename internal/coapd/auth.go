package coapd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
)

// errDenied is a request the device's credentials (or their absence over
// plain CoAP) do not allow: 4.03.
var errDenied = errors.New("not allowed with these credentials")

// checkRegister decides whether the peer may register as endpoint: over
// DTLS only as the endpoint its identity is bound to. Over plain CoAP an
// endpoint that has credentials is refused as well, but that is checked
// where the request is stored, in the same transaction and without a
// query of its own: checkPlain says whether to ask for the check, and
// refusal turns the store's refusal into the audited 4.03.
func (s *Server) checkRegister(ctx context.Context, p *peer, endpoint string, addr netip.AddrPort) error {
	if p != nil && endpoint != p.endpoint {
		return s.refuse(ctx, p, endpoint, addr, "identity bound to another endpoint")
	}
	return nil
}

// checkRegistration decides whether the peer may act on reg (Update,
// De-register, Send, notification): the rules of checkRegister, and a
// registration made over DTLS is never touched over plain CoAP.
func (s *Server) checkRegistration(ctx context.Context, p *peer, reg registry.Registration, addr netip.AddrPort) error {
	if p == nil && reg.Transport == registry.TransportDTLS {
		return s.refuse(ctx, nil, reg.Endpoint, addr, "registration made over DTLS: plain CoAP refused")
	}
	return s.checkRegister(ctx, p, reg.Endpoint, addr)
}

// errUnknown is a Register of an endpoint the register policy does not
// know (Config.Known): 4.03.
var errUnknown = errors.New("unknown endpoint")

// checkKnown applies the register policy: with Config.Known set, only a
// known endpoint may register over plain CoAP (over DTLS its credential
// makes it known). A refusal is logged by the handler, not audited: a
// flood of made-up names must not become a flood of audit rows.
func (s *Server) checkKnown(ctx context.Context, p *peer, endpoint string) error {
	if s.known == nil || p != nil {
		return nil
	}
	ok, err := s.known(ctx, endpoint)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w %q: the register policy accepts known endpoints only", errUnknown, endpoint)
	}
	return nil
}

// checkPlain reports whether a request of peer p is to be stored only if
// its endpoint has no credentials: a request over plain CoAP when devices
// may have credentials.
func (s *Server) checkPlain(p *peer) bool { return p == nil && s.creds != nil }

// refusal returns err, or, when it is the store's refusal of a request
// over plain CoAP for an endpoint that has credentials, the audited
// refusal the handler answers 4.03 with.
func (s *Server) refusal(ctx context.Context, err error, endpoint string, addr netip.AddrPort) error {
	if errors.Is(err, credential.ErrRequired) {
		return s.refuse(ctx, nil, endpoint, addr, "endpoint has credentials: plain CoAP refused")
	}
	return err
}

// refuse records a refused request in the audit log (at most once a
// minute per endpoint, identity and reason, so a device retrying in a loop
// cannot flood it) and returns the error the handler answers 4.03 with.
func (s *Server) refuse(ctx context.Context, p *peer, endpoint string, addr netip.AddrPort, reason string) error {
	r := credential.Refusal{Endpoint: endpoint, Reason: reason, RemoteAddr: addr.String()}
	if p != nil {
		r.Identity, r.Bound = p.identity, p.endpoint
	}
	if s.creds != nil && s.refused.allow(r.Endpoint+"\x00"+r.Identity+"\x00"+reason, time.Now()) {
		if err := s.creds.AuditRefusal(ctx, r); err != nil {
			s.log.Error("audit of a refused device failed", "endpoint", endpoint, "err", err)
		}
	}
	return fmt.Errorf("%w: %s", errDenied, reason)
}

// refusalLimiter remembers when a refusal was last audited.
type refusalLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time // guarded by mu
}

// refusalInterval is the shortest time between two audit entries of the
// same refusal.
const refusalInterval = time.Minute

// allow reports whether key may be audited at now, and if so records it.
func (l *refusalLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || len(l.last) > 10000 {
		l.last = make(map[string]time.Time)
	}
	if t, ok := l.last[key]; ok && now.Sub(t) < refusalInterval {
		return false
	}
	l.last[key] = now
	return true
}
