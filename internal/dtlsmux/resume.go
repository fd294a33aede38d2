package dtlsmux

import (
	"container/list"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
)

// sessionCache keeps the DTLS sessions the server handed out by session
// ID, so a device that lost its session state but kept its session cache
// (nRF91 modems, mbed TLS) resumes with an abbreviated handshake: no key
// exchange and one round trip less, which matters on NB-IoT. It holds at
// most max sessions, each for ttl after its handshake; the oldest goes
// first. It is pion's dtls.SessionStore for the server.
type sessionCache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	byID  map[string]*list.Element // of *cachedSession; guarded by mu
	order list.List                // oldest first; guarded by mu
}

type cachedSession struct {
	id      string
	session dtls.Session
	expires time.Time
}

func newSessionCache(max int, ttl time.Duration, now func() time.Time) *sessionCache {
	return &sessionCache{max: max, ttl: ttl, now: now, byID: make(map[string]*list.Element)}
}

// Set keeps s under its session ID.
func (c *sessionCache) Set(key []byte, s dtls.Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := string(key)
	if e := c.byID[id]; e != nil {
		c.order.Remove(e)
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.byID, oldest.Value.(*cachedSession).id)
	}
	c.byID[id] = c.order.PushBack(&cachedSession{id: id, session: s, expires: c.now().Add(c.ttl)})
	return nil
}

// Get returns the session with ID key; an unknown or expired one is the
// zero Session, which pion takes as "do a full handshake" (an error would
// abort the handshake).
func (c *sessionCache) Get(key []byte) (dtls.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byID[string(key)]
	if e == nil {
		return dtls.Session{}, nil
	}
	cs := e.Value.(*cachedSession)
	if !c.now().Before(cs.expires) {
		c.order.Remove(e)
		delete(c.byID, cs.id)
		return dtls.Session{}, nil
	}
	return cs.session, nil
}

// Del forgets the session with ID key.
func (c *sessionCache) Del(key []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byID[string(key)]; e != nil {
		c.order.Remove(e)
		delete(c.byID, string(key))
	}
	return nil
}

// Len returns the number of sessions kept.
func (c *sessionCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// assocSessions is the session cache as one association sees it: it
// records which cached session the client offered to resume.
type assocSessions struct {
	*sessionCache
	a *assoc
}

func (s assocSessions) Get(key []byte) (dtls.Session, error) {
	sess, err := s.sessionCache.Get(key)
	if len(sess.ID) > 0 {
		id := string(sess.ID)
		s.a.offeredSession.Store(&id)
	}
	return sess, err
}

// resumedSession reports whether the handshake of a, which established
// session ID id, resumed the cached session its client offered (pion
// gives a full handshake a new ID).
func resumedSession(a *assoc, id []byte) bool {
	offered := a.offeredSession.Load()
	return offered != nil && len(id) > 0 && *offered == string(id)
}
