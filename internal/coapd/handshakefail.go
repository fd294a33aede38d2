package coapd

import (
	"context"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/dtlsmux"
)

// failureInterval is the shortest time between two log lines, and two
// audit entries, about failed handshakes of one identity (or, without
// one, one source).
const failureInterval = time.Minute

// maxFailureAudits bounds the audit entries about failed handshakes per
// failureInterval over all identities: a client trying many identities
// cannot flood the audit log.
const maxFailureAudits = 100

// handshakeFailed reports a failed handshake: to
// DTLSConfig.OnHandshakeFailure always, and, unless its client may be
// spoofed (dtlsmux.ReasonNoCookie), in a log line and, with an identity,
// in the audit log (device.refused), each at most once per
// failureInterval per identity (or source, without one). A log line says
// how many failures it stands for. It is dtlsmux.Config.OnFailure.
func (s *Server) handshakeFailed(f dtlsmux.Failure) {
	addr, identity, endpoint, reason, err := f.Addr, f.Identity, f.Endpoint, f.Reason, f.Err
	if cb := s.dtlsCfg.OnHandshakeFailure; cb != nil {
		cb(addr, identity, reason)
	}
	if reason == dtlsmux.ReasonNoCookie {
		return
	}
	key := identity
	if key == "" {
		key = dtlsmux.SourceKey(addr.Addr()).String()
	}
	now := time.Now()
	n, logIt, auditIt := s.hsFailures.note(key+"\x00"+reason, identity != "", now)
	if logIt {
		lvl := s.log.Info
		if reason == dtlsmux.ReasonUnknownIdentity || reason == dtlsmux.ReasonBadPSK || reason == dtlsmux.ReasonBadCertificate {
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
