package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/problem"
)

// The default request rate per API token (DefaultRate requests a second,
// bursts of DefaultBurst) and the default limit of a request body
// (firmware uploads have their own, the image store's).
const (
	DefaultRate    = 50
	DefaultBurst   = 100
	DefaultMaxBody = 1 << 20
)

// RateLimiter is a token bucket per API token: each token may make Burst
// requests at once and Rate a second on average. It is safe for
// concurrent use. A bucket that has refilled completely is the same as
// none, so idle buckets are dropped: its memory holds the tokens used in
// about the last Burst/Rate seconds.
type RateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[int64]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewRateLimiter returns a limiter of rate requests a second with bursts
// of burst (burst < 1 means 1) per API token; rate <= 0 returns nil, a
// limiter that allows everything. now nil means time.Now.
func NewRateLimiter(rate float64, burst int, now func() time.Time) *RateLimiter {
	if rate <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now, buckets: map[int64]*bucket{}}
}

// Allow takes one request from the token's bucket. When the bucket is
// empty it returns false and how long until a request is allowed.
func (l *RateLimiter) Allow(tokenID int64) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	b := l.buckets[tokenID]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[tokenID] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// full is how long an unused bucket takes to refill from empty.
func (l *RateLimiter) full() time.Duration {
	return time.Duration(l.burst / l.rate * float64(time.Second))
}

// prune drops the buckets that have refilled, at most once per refill
// time.
func (l *RateLimiter) prune(now time.Time) {
	idle := l.full()
	if now.Sub(l.lastPrune) < max(idle, time.Second) {
		return
	}
	l.lastPrune = now
	for id, b := range l.buckets {
		if now.Sub(b.at) >= idle {
			delete(l.buckets, id)
		}
	}
}

// size is the number of buckets held.
func (l *RateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// writeProblem answers a request the guard refuses with p.
func writeProblem(ctx huma.Context, p *problem.Problem) {
	b, _ := json.Marshal(p)
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(p.Status)
	ctx.BodyWriter().Write(b)
}

// tooManyRequests is the answer to a request over its token's rate, with
// Retry-After in whole seconds (at least 1).
func tooManyRequests(ctx huma.Context, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	writeProblem(ctx, problem.New(http.StatusTooManyRequests, "rate_limited",
		"too many requests with this API token: retry in "+strconv.Itoa(secs)+" s"))
}
