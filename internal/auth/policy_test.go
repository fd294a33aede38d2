package auth

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAuthorize(t *testing.T) {
	admin := Subject{UserID: 1, Name: "root", Admin: true}
	viewer, _ := FlagsOf(ViewOverview, ViewData)
	user := Subject{UserID: 2, Name: "bob", Grants: []Grant{{SiteID: 7, Role: SiteUser, Flags: viewer}}}
	siteAdmin := Subject{UserID: 4, Name: "sue", Grants: []Grant{{SiteID: 8, Role: SiteAdmin}}}
	nobody := Subject{UserID: 5, Name: "new"}
	disabledAdmin := Subject{UserID: 3, Name: "gone", Admin: true, Disabled: true}
	userMay := map[Permission]bool{Public: true, ViewOverview: true, ViewData: true, OwnTokens: true}
	for _, p := range Permissions() {
		if err := Authorize(admin, p); err != nil {
			t.Errorf("admin %s: %v", p, err)
		}
		err := Authorize(user, p)
		if userMay[p] != (err == nil) {
			t.Errorf("user %s: %v; want allowed %v", p, err, userMay[p])
		}
		if err != nil && (!errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), string(p)) ||
			!strings.Contains(err.Error(), `"bob"`)) {
			t.Errorf("user %s: refusal %q should match ErrForbidden and name user and permission", p, err)
		}
		if err := Authorize(siteAdmin, p); (p == Public || p == OwnTokens || FlagOf(p) != 0) != (err == nil) {
			t.Errorf("site admin %s: %v", p, err)
		}
		if err := Authorize(nobody, p); (p == Public) != (err == nil) {
			t.Errorf("user without sites %s: %v", p, err)
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

func TestFlags(t *testing.T) {
	var all Flags
	for i, p := range SitePermissions() {
		if FlagOf(p) != 1<<i {
			t.Errorf("FlagOf(%s) = %b", p, FlagOf(p))
		}
		all |= FlagOf(p)
	}
	if all != AllFlags || !slices.Equal(AllFlags.Permissions(), SitePermissions()) {
		t.Errorf("AllFlags %b, %v", AllFlags, AllFlags.Permissions())
	}
	for _, p := range []Permission{Public, ManageUsers, ManageCredentials, "x"} {
		if FlagOf(p) != 0 {
			t.Errorf("FlagOf(%s) = %b", p, FlagOf(p))
		}
		if _, err := FlagsOf(ViewData, p); err == nil {
			t.Errorf("FlagsOf accepted %s", p)
		}
	}
	f, err := FlagsOf(ViewData, PerformOperations)
	if err != nil || !f.Has(ViewData) || !f.Has(PerformOperations) || f.Has(ViewOverview) || f.Has(ManageUsers) {
		t.Errorf("FlagsOf = %b, %v", f, err)
	}
}

func TestScope(t *testing.T) {
	ops, _ := FlagsOf(ViewData, PerformOperations)
	s := Subject{Name: "bob", Grants: []Grant{{SiteID: 1, Role: SiteUser, Flags: ops}, {SiteID: 2, Role: SiteAdmin},
		{SiteID: 3, Role: SiteUser}}}
	sc := s.Scope(PerformOperations)
	if sc.All || sc.Unassigned || !slices.Equal(sc.Sites, []int64{1, 2}) || !sc.Contains(2) || sc.Contains(3) || sc.Contains(0) {
		t.Errorf("Scope(perform_operations) = %+v", sc)
	}
	if sc := s.Scope(ManageFirmware); !slices.Equal(sc.Sites, []int64{2}) {
		t.Errorf("Scope(manage_firmware) = %+v", sc)
	}
	if sc := s.Scope(ManageUsers); !sc.Empty() {
		t.Errorf("Scope(manage_users) = %+v", sc)
	}
	if sc := (Subject{Name: "x", Disabled: true, Admin: true}).Scope(ViewData); !sc.Empty() {
		t.Errorf("disabled admin's scope %+v", sc)
	}
	admin := Subject{Admin: true}.Scope(ViewData)
	if !admin.All || !admin.Contains(0) || !admin.Contains(99) {
		t.Errorf("admin scope %+v", admin)
	}
	for _, c := range []struct {
		sc   Scope
		v    View
		want Scope
	}{
		{sc, View{}, sc},
		{sc, View{Site: 2}, Scope{Sites: []int64{2}}},
		{sc, View{Site: 3}, Scope{Sites: []int64{}}},
		{sc, View{Unassigned: true}, Scope{Sites: []int64{}}},
		{admin, View{Unassigned: true}, Scope{Sites: []int64{}, Unassigned: true}},
		{admin, View{Site: 9}, Scope{Sites: []int64{9}}},
	} {
		if got := c.sc.Narrow(c.v); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v.Narrow(%+v) = %+v; want %+v", c.sc, c.v, got, c.want)
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
