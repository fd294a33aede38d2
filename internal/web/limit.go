package web

import (
	"sync"
	"time"
)

// loginLimiter counts failed logins per key (an account, a client
// address) in a sliding window: after limit failures within window the key
// is refused until the oldest of them leaves the window. It is safe for
// concurrent use; its memory holds the recent failures of recently failing
// keys only.
type loginLimiter struct {
	limit  int
	window time.Duration

	mu       sync.Mutex
	failures map[string][]time.Time // guarded by mu; oldest first
}

func newLoginLimiter(limit int, window time.Duration) *loginLimiter {
	return &loginLimiter{limit: limit, window: window, failures: map[string][]time.Time{}}
}

// blocked reports whether any of keys has reached the limit at now.
func (l *loginLimiter) blocked(now time.Time, keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if len(l.recent(k, now)) >= l.limit {
			return true
		}
	}
	return false
}

// fail records a failure of each of keys at now.
func (l *loginLimiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 10000 {
		for k := range l.failures {
			l.recent(k, now)
		}
	}
	for _, k := range keys {
		l.failures[k] = append(l.recent(k, now), now)
	}
}

// recent drops the failures of k that left the window and returns the
// others. Called with mu held.
func (l *loginLimiter) recent(k string, now time.Time) []time.Time {
	fs := l.failures[k]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= l.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.failures, k)
		return nil
	}
	l.failures[k] = fs
	return fs
}
