package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

func TestSettings(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.GetSetting(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSetting of a missing name: %v, want ErrNotFound", err)
		}
		// The first value wins; a second InitSetting returns it.
		if v, err := s.InitSetting(ctx, "k", "first"); err != nil || v != "first" {
			t.Fatalf("InitSetting = %q, %v", v, err)
		}
		if v, err := s.InitSetting(ctx, "k", "second"); err != nil || v != "first" {
			t.Fatalf("second InitSetting = %q, %v; want the first value", v, err)
		}
		// PutSettingTx replaces, and only when its transaction commits.
		boom := errors.New("boom")
		err := s.WithTx(ctx, func(tx *sql.Tx) error {
			if err := s.PutSettingTx(ctx, tx, "k", "rolled back"); err != nil {
				return err
			}
			if v, err := s.GetSettingTx(ctx, tx, "k"); err != nil || v != "rolled back" {
				t.Errorf("GetSettingTx inside the transaction = %q, %v", v, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if v, err := s.GetSetting(ctx, "k"); err != nil || v != "first" {
			t.Fatalf("after a rolled back put: %q, %v", v, err)
		}
		err = s.WithTx(ctx, func(tx *sql.Tx) error {
			if err := s.PutSettingTx(ctx, tx, "k", "replaced"); err != nil {
				return err
			}
			return s.PutSettingTx(ctx, tx, "other", "new")
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"k": "replaced", "other": "new"} {
			if v, err := s.GetSetting(ctx, name); err != nil || v != want {
				t.Errorf("GetSetting(%q) = %q, %v; want %q", name, v, err, want)
			}
		}
		if _, err := s.InitSetting(ctx, "", "x"); err == nil {
			t.Error("InitSetting with an empty name succeeded")
		}
	})
}

// TestCredentialsTx rewrites and deletes credentials in one transaction,
// which LockCredentialsTx keeps other writers out of until it ends.
func TestCredentialsTx(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, err := s.CreateCredential(ctx, Credential{EndpointName: "a", Kind: CredentialPSK, PSKIdentity: "id-a", PSKKeyEnc: []byte{1}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.CreateCredential(ctx, Credential{EndpointName: "b", Kind: CredentialPSK, PSKIdentity: "id-b", PSKKeyEnc: []byte{2}})
		if err != nil {
			t.Fatal(err)
		}
		x, err := s.CreateCredential(ctx, Credential{EndpointName: "x", Kind: CredentialX509, CertCN: "x"})
		if err != nil {
			t.Fatal(err)
		}

		tx, err := s.WriteDB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := s.LockCredentialsTx(ctx, tx); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListCredentialsTx(ctx, tx)
		if err != nil || len(list) != 3 || list[0].ID != a.ID || list[2].ID != x.ID {
			t.Fatalf("ListCredentialsTx = %+v, %v", list, err)
		}
		if err := s.UpdateCredentialKeyTx(ctx, tx, a.ID, []byte{9, 9}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateCredentialKeyTx(ctx, tx, x.ID, []byte{9}); !errors.Is(err, ErrNotFound) {
			t.Errorf("key of an x509 credential: %v, want ErrNotFound", err)
		}
		if err := s.UpdateCredentialKeyTx(ctx, tx, a.ID, nil); err == nil {
			t.Error("empty key accepted")
		}
		if err := s.DeleteCredentialTx(ctx, tx, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCredentialTx(ctx, tx, b.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		// Another writer waits for the transaction.
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = s.CreateCredential(wctx, Credential{EndpointName: "c", Kind: CredentialPSK, PSKIdentity: "id-c", PSKKeyEnc: []byte{3}})
		cancel()
		if err == nil {
			t.Fatal("a credential was added while the credentials were locked")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "c", Kind: CredentialPSK, PSKIdentity: "id-c", PSKKeyEnc: []byte{3}}); err != nil {
			t.Fatalf("add after the lock ended: %v", err)
		}
		got, err := s.GetCredentialByEndpoint(ctx, "a")
		if err != nil || string(got.PSKKeyEnc) != "\x09\x09" {
			t.Errorf("a after commit: %+v, %v", got, err)
		}
		if _, err := s.GetCredentialByEndpoint(ctx, "b"); !errors.Is(err, ErrNotFound) {
			t.Errorf("b after commit: %v, want ErrNotFound", err)
		}
	})
}
