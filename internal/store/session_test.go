package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "sam", "h", false)
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateUser(ctx, "olga", "h", false)
		if err != nil {
			t.Fatal(err)
		}
		mk := func(id string, user int64, created time.Time) {
			t.Helper()
			if err := s.CreateSession(ctx, Session{ID: id, UserID: user, CSRFToken: "c-" + id,
				CreatedAt: created, ExpiresAt: created.Add(7 * 24 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		mk("a", u.ID, t0)
		mk("b", u.ID, t0.Add(time.Minute))
		mk("c", other.ID, t0)
		if err := s.CreateSession(ctx, Session{ID: "a", UserID: u.ID, CSRFToken: "x", CreatedAt: t0}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate id: %v, want ErrConflict", err)
		}
		if err := s.CreateSession(ctx, Session{ID: "z", UserID: 999, CSRFToken: "x", CreatedAt: t0}); !errors.Is(err, ErrConflict) {
			t.Errorf("missing user: %v, want ErrConflict", err)
		}
		ss, owner, err := s.GetSession(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if owner.Username != "sam" || ss.CSRFToken != "c-a" || !ss.CreatedAt.Equal(t0) || !ss.LastSeenAt.Equal(t0) ||
			!ss.ExpiresAt.Equal(t0.Add(7*24*time.Hour)) {
			t.Errorf("got %+v of %+v", ss, owner)
		}
		if err := s.TouchSession(ctx, "a", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ss, _, _ = s.GetSession(ctx, "a"); !ss.LastSeenAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("last seen %v after touch", ss.LastSeenAt)
		}
		if err := s.TouchSession(ctx, "nope", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("touch missing: %v", err)
		}
		if _, _, err := s.GetSession(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get missing: %v", err)
		}
		list, err := s.ListSessions(ctx, u.ID)
		if err != nil || len(list) != 2 || list[0].ID != "b" {
			t.Fatalf("list: %+v %v", list, err)
		}
		// Idle since before t0+30m: b (last seen t0+1m); a was touched.
		if n, err := s.DeleteExpiredSessions(ctx, t0.Add(2*time.Hour), t0.Add(30*time.Minute)); err != nil || n != 2 {
			t.Fatalf("expired: %d %v, want b and c", n, err)
		}
		if _, _, err := s.GetSession(ctx, "a"); err != nil {
			t.Errorf("a gone: %v", err)
		}
		if err := s.DeleteSession(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, "a"); err != nil {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestPasswordChangeAndDisableEndSessions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, "pat", "h", false)
		keep, _ := s.CreateUser(ctx, "kim", "h", false)
		for i, id := range []string{"p1", "p2", "k1"} {
			owner := u.ID
			if i == 2 {
				owner = keep.ID
			}
			if err := s.CreateSession(ctx, Session{ID: id, UserID: owner, CSRFToken: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetPassword(ctx, u.ID, "h2"); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.ListSessions(ctx, u.ID); len(l) != 0 {
			t.Errorf("sessions after password change: %+v", l)
		}
		if l, _ := s.ListSessions(ctx, keep.ID); len(l) != 1 {
			t.Errorf("other user's sessions: %+v", l)
		}
		if err := s.SetPassword(ctx, 999, "h"); !errors.Is(err, ErrNotFound) {
			t.Errorf("password of missing user: %v", err)
		}
		if err := s.DisableUser(ctx, keep.ID, t0); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.ListSessions(ctx, keep.ID); len(l) != 0 {
			t.Errorf("sessions after disable: %+v", l)
		}
	})
}
