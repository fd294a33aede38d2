package api

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewRateLimiter(2, 4, func() time.Time { return now })
	for i := range 4 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow(1)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("fifth request: %v, wait %v; want refused, about 500ms", ok, wait)
	}
	if ok, _ := l.Allow(2); !ok {
		t.Fatal("another token held back")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow(1); !ok {
		t.Fatal("refilled request refused")
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("a second request in the refill allowed")
	}
	// Many tokens, each used once; once they have refilled they are
	// dropped.
	for id := range int64(1000) {
		l.Allow(100 + id)
	}
	if n := l.size(); n < 1000 {
		t.Fatalf("%d buckets, want the 1000 just used", n)
	}
	now = now.Add(3 * time.Second)
	l.Allow(1)
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets after all refilled, want 1", n)
	}
	var off *RateLimiter = NewRateLimiter(0, 10, nil)
	if ok, _ := off.Allow(1); !ok || off != nil {
		t.Error("rate 0 limits")
	}
}
