package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAuthorize(t *testing.T) {
	admin := Subject{UserID: 1, Name: "root", Admin: true}
	user := Subject{UserID: 2, Name: "bob"}
	disabledAdmin := Subject{UserID: 3, Name: "gone", Admin: true, Disabled: true}
	userMay := map[Permission]bool{Public: true, ViewOverview: true, ViewData: true, PerformOperations: true}
	for _, p := range Permissions() {
		if err := Authorize(admin, p); err != nil {
			t.Errorf("admin %s: %v", p, err)
		}
		err := Authorize(user, p)
		if userMay[p] != (err == nil) || userMay[p] != NonAdminAllowed(p) {
			t.Errorf("user %s: %v, NonAdminAllowed %v; want allowed %v", p, err, NonAdminAllowed(p), userMay[p])
		}
		if err != nil && (!errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), string(p)) ||
			!strings.Contains(err.Error(), `"bob"`)) {
			t.Errorf("user %s: refusal %q should match ErrForbidden and name user and permission", p, err)
		}
		if err := Authorize(disabledAdmin, p); (p == Public) != (err == nil) {
			t.Errorf("disabled admin %s: %v", p, err)
		}
	}
	for _, s := range []Subject{admin, user} {
		if err := Authorize(s, "launch_missiles"); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s, unknown permission: %v", s.Name, err)
		}
		if err := Authorize(s, ""); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s, empty permission: %v", s.Name, err)
		}
	}
}

func TestDenialLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewDenialLimiter(3, time.Minute, func() time.Time { return now })
	type res struct {
		rec bool
		sup int
	}
	rec := func(user int64) res {
		r, s := l.Record(user)
		return res{r, s}
	}
	for i := range 3 {
		if got := rec(1); got != (res{true, 0}) {
			t.Fatalf("refusal %d: %+v", i+1, got)
		}
	}
	for i := range 5 {
		if got := rec(1); got != (res{false, 0}) {
			t.Fatalf("refusal %d over the burst: %+v", i+4, got)
		}
	}
	// Another user has a budget of its own.
	if got := rec(2); got != (res{true, 0}) {
		t.Fatalf("other user: %+v", got)
	}
	now = now.Add(59 * time.Second)
	if got := rec(1); got != (res{false, 0}) {
		t.Fatalf("still in the window: %+v", got)
	}
	// A new window: recorded again, with the count of those skipped.
	now = now.Add(time.Second)
	if got := rec(1); got != (res{true, 6}) {
		t.Fatalf("next window: %+v", got)
	}
	if got := rec(1); got != (res{true, 0}) {
		t.Fatalf("next window, second: %+v", got)
	}
}

func TestDenialLimiterPrunes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := NewDenialLimiter(1, time.Minute, func() time.Time { return now })
	for id := range int64(2000) {
		l.Record(id)
	}
	l.Record(7) // suppressed: must survive pruning
	now = now.Add(time.Hour)
	l.Record(5000)
	l.mu.Lock()
	n := len(l.users)
	l.mu.Unlock()
	if n > 2 {
		t.Fatalf("%d users kept after their windows ended", n)
	}
	if rec, sup := l.Record(7); !rec || sup != 1 {
		t.Fatalf("user with a pending count: %v %d", rec, sup)
	}
}
