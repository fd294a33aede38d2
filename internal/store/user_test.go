package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

func TestUserRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "admin", "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", true)
		if err != nil {
			t.Fatal(err)
		}
		want := User{ID: u.ID, Username: "admin", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", IsAdmin: true, CreatedAt: t0}
		if !reflect.DeepEqual(u, want) {
			t.Fatalf("created %+v, want %+v", u, want)
		}
		if got, err := s.GetUser(ctx, u.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetUser = %+v, %v", got, err)
		}
		if got, err := s.GetUserByName(ctx, "admin"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetUserByName = %+v, %v", got, err)
		}
		if _, err := s.CreateUser(ctx, "admin", "x", false); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate username: %v", err)
		}
		if _, err := s.CreateUser(ctx, "", "x", false); err == nil {
			t.Error("empty username accepted")
		}
		bob, _ := s.CreateUser(ctx, "bob", "h1", false)
		if err := s.SetPassword(ctx, bob.ID, "h2"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAdmin(ctx, bob.ID, true); err != nil {
			t.Fatal(err)
		}
		login := t0.Add(time.Hour)
		if err := s.TouchLogin(ctx, bob.ID, login); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetUser(ctx, bob.ID)
		if got.PasswordHash != "h2" || !got.IsAdmin || got.LastLoginAt != login {
			t.Errorf("after updates: %+v", got)
		}
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != 2 || users[0].Username != "admin" || users[1].Username != "bob" {
			t.Errorf("ListUsers = %+v, %v", users, err)
		}
		if err := s.DeleteUser(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, bob.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
		for name, err := range map[string]error{
			"password": s.SetPassword(ctx, bob.ID, "x"),
			"admin":    s.SetAdmin(ctx, bob.ID, false),
			"login":    s.TouchLogin(ctx, bob.ID, login),
			"delete":   s.DeleteUser(ctx, bob.ID),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s of a missing user: %v", name, err)
			}
		}
		if _, err := s.GetUserByName(ctx, "bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUserByName(missing) = %v", err)
		}
	})
}

func TestSiteAndMembershipRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		st, err := s.CreateSite(ctx, "Berlin")
		if err != nil {
			t.Fatal(err)
		}
		want := Site{ID: st.ID, Name: "Berlin", CreatedAt: t0}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("created %+v", st)
		}
		if got, err := s.GetSite(ctx, st.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetSite = %+v, %v", got, err)
		}
		if got, err := s.GetSiteByName(ctx, "Berlin"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetSiteByName = %+v, %v", got, err)
		}
		other, _ := s.CreateSite(ctx, "Aachen")
		if _, err := s.RenameSite(ctx, st.ID, "Aachen"); !errors.Is(err, ErrConflict) {
			t.Errorf("rename to a taken name: %v", err)
		}
		renamed, err := s.RenameSite(ctx, st.ID, "Bremen")
		if err != nil || renamed.Name != "Bremen" {
			t.Errorf("rename: %+v, %v", renamed, err)
		}
		sites, err := s.ListSites(ctx)
		if err != nil || len(sites) != 2 || sites[0].Name != "Aachen" || sites[1].Name != "Bremen" {
			t.Errorf("ListSites = %+v, %v", sites, err)
		}

		u, _ := s.CreateUser(ctx, "carol", "h", false)
		v, _ := s.CreateUser(ctx, "dave", "h", false)
		if err := s.SetMembership(ctx, u.ID, st.ID, auth.SiteUser, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMembership(ctx, u.ID, st.ID, auth.SiteUser, 0b10011); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMembership(ctx, u.ID, other.ID, auth.SiteAdmin, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMembership(ctx, v.ID, st.ID, auth.SiteUser, 1); err != nil {
			t.Fatal(err)
		}
		if m, err := s.GetMembership(ctx, u.ID, st.ID); err != nil || m != (Membership{u.ID, st.ID, auth.SiteUser, 0b10011}) {
			t.Errorf("GetMembership = %+v, %v", m, err)
		}
		ms, err := s.ListMemberships(ctx, u.ID)
		wantMs := []Membership{{u.ID, st.ID, auth.SiteUser, 0b10011}, {u.ID, other.ID, auth.SiteAdmin, auth.AllFlags}}
		if st.ID > other.ID {
			wantMs[0], wantMs[1] = wantMs[1], wantMs[0]
		}
		if err != nil || !reflect.DeepEqual(ms, wantMs) {
			t.Errorf("ListMemberships = %+v, %v; want %+v", ms, err, wantMs)
		}
		members, err := s.ListSiteMembers(ctx, st.ID)
		if err != nil || !reflect.DeepEqual(members, []Membership{{u.ID, st.ID, auth.SiteUser, 0b10011}, {v.ID, st.ID, auth.SiteUser, 1}}) {
			t.Errorf("ListSiteMembers = %+v, %v", members, err)
		}
		if err := s.SetMembership(ctx, u.ID, st.ID, "owner", 0); err == nil {
			t.Error("invalid role accepted")
		}
		if err := s.SetMembership(ctx, u.ID, st.ID, auth.SiteUser, 64); err == nil {
			t.Error("invalid flags accepted")
		}
		if sub, err := s.Subject(ctx, u); err != nil || len(sub.Grants) != 2 || auth.Authorize(sub, auth.ManageDevices) != nil ||
			!sub.Scope(auth.PerformOperations).Contains(st.ID) || sub.Scope(auth.ManageFirmware).Contains(st.ID) || !sub.Scope(auth.ManageFirmware).Contains(other.ID) {
			t.Errorf("Subject = %+v, %v", sub, err)
		}
		if err := s.SetMembership(ctx, 999999, st.ID, auth.SiteUser, 1); !errors.Is(err, ErrConflict) {
			t.Errorf("membership of a missing user: %v", err)
		}
		if err := s.DeleteMembership(ctx, v.ID, st.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMembership(ctx, v.ID, st.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete membership twice: %v", err)
		}
		if _, err := s.GetMembership(ctx, v.ID, st.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted membership: %v", err)
		}

		// Deleting a site removes its memberships and detaches endpoints.
		e := mustEndpoint(t, s, "urn:dev:site")
		s.SetEndpointSite(ctx, e.ID, st.ID)
		if err := s.DeleteSite(ctx, st.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetMembership(ctx, u.ID, st.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("membership of a deleted site: %v", err)
		}
		if got, _ := s.GetEndpointByID(ctx, e.ID); got.SiteID != 0 {
			t.Errorf("endpoint of a deleted site: site %d", got.SiteID)
		}
		if err := s.DeleteSite(ctx, st.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
		if _, err := s.GetSite(ctx, st.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted site: %v", err)
		}
		if _, err := s.RenameSite(ctx, st.ID, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rename missing: %v", err)
		}
		if _, err := s.CreateSite(ctx, ""); err == nil {
			t.Error("empty site name accepted")
		}
		// Deleting a user removes its memberships.
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if ms, _ := s.ListSiteMembers(ctx, other.ID); len(ms) != 0 {
			t.Errorf("members after user deletion: %+v", ms)
		}
	})
}

func TestAPITokenRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, "erin", "h", true)
		hash := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		exp := t0.Add(30 * 24 * time.Hour)
		tok, err := s.CreateAPIToken(ctx, u.ID, "ci", hash, "fnx_9f86", exp)
		if err != nil {
			t.Fatal(err)
		}
		want := APIToken{ID: tok.ID, UserID: u.ID, Name: "ci", TokenHash: hash, Prefix: "fnx_9f86", CreatedAt: t0, ExpiresAt: exp, Scope: TokenReadWrite}
		if !reflect.DeepEqual(tok, want) {
			t.Fatalf("created %+v", tok)
		}
		got, gotUser, err := s.GetAPITokenByHash(ctx, hash)
		if err != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotUser, u) {
			t.Fatalf("GetAPITokenByHash = %+v, %+v, %v", got, gotUser, err)
		}
		if got.Expired(exp.Add(-time.Millisecond)) || !got.Expired(exp) {
			t.Error("Expired is wrong around the expiry")
		}
		used := t0.Add(time.Minute)
		if err := s.TouchAPIToken(ctx, tok.ID, used); err != nil {
			t.Fatal(err)
		}
		forever, err := s.CreateAPIToken(ctx, u.ID, "forever", "aa"+hash[2:], "fnx_aa86", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if forever.Expired(t0.Add(100 * 365 * 24 * time.Hour)) {
			t.Error("token without expiry expired")
		}
		list, err := s.ListAPITokens(ctx, u.ID)
		if err != nil || len(list) != 2 || list[0].ID != forever.ID || list[1].LastUsedAt != used {
			t.Errorf("ListAPITokens = %+v, %v", list, err)
		}
		read, err := s.CreateScopedAPIToken(ctx, u.ID, "reader", "cc"+hash[2:], "fnx_cc86", TokenRead, time.Time{})
		if err != nil || !read.ReadOnly() || tok.ReadOnly() {
			t.Errorf("read token %+v, %v", read, err)
		}
		if got, _, err := s.GetAPITokenByHash(ctx, read.TokenHash); err != nil || got.Scope != TokenRead {
			t.Errorf("read token by hash: %+v, %v", got, err)
		}
		if _, err := s.CreateScopedAPIToken(ctx, u.ID, "writer", "dd"+hash[2:], "x", "write", time.Time{}); err == nil {
			t.Error("unknown scope accepted")
		}
		if _, err := s.CreateAPIToken(ctx, u.ID, "dup", hash, "x", time.Time{}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate hash: %v", err)
		}
		if _, err := s.CreateAPIToken(ctx, 999999, "x", "bb"+hash[2:], "x", time.Time{}); !errors.Is(err, ErrConflict) {
			t.Errorf("token of a missing user: %v", err)
		}
		if err := s.DeleteAPIToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetAPITokenByHash(ctx, hash); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted token: %v", err)
		}
		if err := s.DeleteAPIToken(ctx, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
		if err := s.TouchAPIToken(ctx, tok.ID, used); !errors.Is(err, ErrNotFound) {
			t.Errorf("touch deleted: %v", err)
		}
		// Deleting the user revokes its tokens.
		s.DeleteUser(ctx, u.ID)
		if _, _, err := s.GetAPITokenByHash(ctx, forever.TokenHash); !errors.Is(err, ErrNotFound) {
			t.Errorf("token of a deleted user: %v", err)
		}
	})
}

func TestAuditRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, "frank", "h", true)
		a, err := s.AppendAudit(ctx, AuditEntry{
			UserID: u.ID, Actor: "frank", Action: "endpoint.write", Target: "urn:dev:1",
			Detail: json.RawMessage(`{"path":"/1/0/1","value":300}`), RemoteAddr: "203.0.113.5",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := AuditEntry{ID: a.ID, Time: t0, UserID: u.ID, Actor: "frank", Action: "endpoint.write", Target: "urn:dev:1",
			Detail: json.RawMessage(`{"path":"/1/0/1","value":300}`), RemoteAddr: "203.0.113.5"}
		if !reflect.DeepEqual(a, want) {
			t.Fatalf("appended %+v", a)
		}
		b, _ := s.AppendAudit(ctx, AuditEntry{Time: t0.Add(time.Second), Actor: "system", Action: "endpoint.expire"})
		c, _ := s.AppendAudit(ctx, AuditEntry{UserID: u.ID, Actor: "frank", Action: "user.create", Target: "grace"})
		if b.Detail != nil || b.UserID != 0 || b.Time != t0.Add(time.Second) {
			t.Errorf("system entry: %+v", b)
		}
		ids := func(f AuditFilter) []int64 {
			t.Helper()
			es, err := s.ListAudit(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, e := range es {
				out = append(out, e.ID)
			}
			return out
		}
		for name, c := range map[string]struct{ got, want []int64 }{
			"all":    {ids(AuditFilter{}), []int64{c.ID, b.ID, a.ID}},
			"limit":  {ids(AuditFilter{Limit: 1}), []int64{c.ID}},
			"before": {ids(AuditFilter{BeforeID: c.ID}), []int64{b.ID, a.ID}},
			"user":   {ids(AuditFilter{UserID: u.ID}), []int64{c.ID, a.ID}},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: %v, want %v", name, c.got, c.want)
			}
		}
		if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "x"}); err == nil {
			t.Error("entry without action accepted")
		}
		if _, err := s.AppendAudit(ctx, AuditEntry{Action: "x", Detail: json.RawMessage(`{`)}); err == nil {
			t.Error("invalid JSON detail accepted")
		}
		// The log outlives the user.
		s.DeleteUser(ctx, u.ID)
		es, _ := s.ListAudit(ctx, AuditFilter{UserID: u.ID})
		if len(es) != 2 || es[1].Actor != "frank" {
			t.Errorf("entries after user deletion: %+v", es)
		}
	})
}
