package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDisableUser(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "gina", "h", false)
		if err != nil {
			t.Fatal(err)
		}
		if u.Disabled() || !u.DisabledAt.IsZero() {
			t.Fatalf("new user disabled: %+v", u)
		}
		hash := "1f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
		if _, err := s.CreateAPIToken(ctx, u.ID, "ci", hash, "fnx_1f86", time.Time{}); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Hour)
		if err := s.DisableUser(ctx, u.ID, at); err != nil {
			t.Fatal(err)
		}
		// Disabling again keeps the first time.
		if err := s.DisableUser(ctx, u.ID, at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for name, get := range map[string]func() (User, error){
			"GetUser":       func() (User, error) { return s.GetUser(ctx, u.ID) },
			"GetUserByName": func() (User, error) { return s.GetUserByName(ctx, "gina") },
			"GetAPITokenByHash": func() (User, error) {
				_, owner, err := s.GetAPITokenByHash(ctx, hash)
				return owner, err
			},
			"ListUsers": func() (User, error) {
				us, err := s.ListUsers(ctx)
				if err != nil || len(us) != 1 {
					return User{}, errors.Join(err, errors.New("want one user"))
				}
				return us[0], nil
			},
		} {
			got, err := get()
			if err != nil || !got.Disabled() || !got.DisabledAt.Equal(at) {
				t.Errorf("%s after disable: %+v, %v", name, got, err)
			}
		}
		if err := s.EnableUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetUser(ctx, u.ID); err != nil || got.Disabled() {
			t.Errorf("after enable: %+v, %v", got, err)
		}
		if err := s.EnableUser(ctx, u.ID); err != nil {
			t.Errorf("enable an enabled user: %v", err)
		}
		if err := s.DisableUser(ctx, u.ID, time.Time{}); err == nil {
			t.Error("disable with a zero time accepted")
		}
		for name, err := range map[string]error{
			"disable": s.DisableUser(ctx, 999999, at),
			"enable":  s.EnableUser(ctx, 999999),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s a missing user: %v", name, err)
			}
		}
	})
}

func TestListAndGetAPITokens(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, _ := s.CreateUser(ctx, "hank", "h", true)
		b, _ := s.CreateUser(ctx, "ivy", "h", false)
		t1, err := s.CreateAPIToken(ctx, a.ID, "one", "h1", "fnx_1", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		t2, _ := s.CreateAPIToken(ctx, b.ID, "two", "h2", "fnx_2", t0.Add(time.Hour))
		t3, _ := s.CreateAPIToken(ctx, a.ID, "three", "h3", "fnx_3", time.Time{})
		all, err := s.ListAllAPITokens(ctx)
		if err != nil || len(all) != 3 || all[0].ID != t3.ID || all[1].ID != t2.ID || all[2].ID != t1.ID {
			t.Fatalf("ListAllAPITokens = %+v, %v", all, err)
		}
		if all[1].UserID != b.ID || !all[1].ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("token two: %+v", all[1])
		}
		got, err := s.GetAPIToken(ctx, t2.ID)
		if err != nil || got != t2 {
			t.Errorf("GetAPIToken = %+v, %v; want %+v", got, err, t2)
		}
		if _, err := s.GetAPIToken(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetAPIToken(missing) = %v", err)
		}
		if err := s.DeleteUser(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if all, err := s.ListAllAPITokens(ctx); err != nil || len(all) != 1 || all[0].ID != t2.ID {
			t.Errorf("after deleting hank: %+v, %v", all, err)
		}
	})
}
