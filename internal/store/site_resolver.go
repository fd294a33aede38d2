package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// SiteResolver answers which site an endpoint is in, by name, for filters
// of live events (which name their endpoint only) by a user's scope. It
// remembers each answer for its TTL, so a stream of events costs about
// one query per endpoint per TTL; a re-assignment shows in a stream
// within the TTL. It is safe for concurrent use and holds one small entry
// per endpoint seen, forgotten after the TTL.
type SiteResolver struct {
	st  *Store
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]siteEntry
}

type siteEntry struct {
	site  int64 // 0: no site
	known bool  // the endpoint exists
	at    time.Time
}

// SiteResolver returns a resolver remembering answers for ttl (<= 0: 10 s).
func (s *Store) SiteResolver(ttl time.Duration) *SiteResolver {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return &SiteResolver{st: s, ttl: ttl, entries: map[string]siteEntry{}}
}

// Site returns the site of the endpoint (0: none) and whether the
// endpoint exists. A database error is returned and not remembered.
func (r *SiteResolver) Site(ctx context.Context, endpoint string) (int64, bool, error) {
	now := r.st.now()
	r.mu.Lock()
	e, ok := r.entries[endpoint]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < r.ttl {
		return e.site, e.known, nil
	}
	var site *int64
	err := r.st.rdb.QueryRowContext(ctx, "SELECT site_id FROM endpoint WHERE name = $1", endpoint).Scan(&site)
	switch {
	case err == nil:
		e = siteEntry{known: true, at: now}
		if site != nil {
			e.site = *site
		}
	case errors.Is(err, sql.ErrNoRows):
		e = siteEntry{at: now}
	default:
		return 0, false, wrap("site of endpoint "+endpoint, err)
	}
	r.mu.Lock()
	if len(r.entries) >= 4096 {
		for k, old := range r.entries {
			if now.Sub(old.at) >= r.ttl {
				delete(r.entries, k)
			}
		}
	}
	r.entries[endpoint] = e
	r.mu.Unlock()
	return e.site, e.known, nil
}
