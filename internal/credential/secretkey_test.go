package credential

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

const (
	keyA = "the first secret key, sealed the PSKs"
	keyB = "the second secret key, rotated to it"
	keyC = "a third secret key nobody configured"
)

// forEachEngine runs fn against a freshly migrated store on SQLite (a
// file in a temporary directory) and, when FLOWNEXUS_TEST_POSTGRES_URL is
// set, on PostgreSQL (a database of its own).
func forEachEngine(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, openStore(t)) })
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
		st, err := store.Open(ctx, storetest.PostgresURL(t), store.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		fn(t, st)
	})
}

// addPSKs adds PSK credentials ep-1..ep-n (identity id-i, key keyOf(i))
// and one X.509 credential, sealed by s.
func addPSKs(t *testing.T, s *Service, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := s.Add(context.Background(), store.Actor{Name: "test"}, AddRequest{Endpoint: fmt.Sprintf("ep-%d", i),
			PSKIdentity: fmt.Sprintf("id-%d", i), PSKKey: keyOf(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Add(context.Background(), store.Actor{Name: "test"}, AddRequest{Endpoint: "ep-x509", CertCN: "ep-x509"}); err != nil {
		t.Fatal(err)
	}
}

func keyOf(i int) []byte { return []byte(fmt.Sprintf("psk-key-of-%05d", i)) }

// sealedKeys returns every stored sealed key by endpoint.
func sealedKeys(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	cs, err := st.ListCredentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		out[c.EndpointName] = hex.EncodeToString(c.PSKKeyEnc)
	}
	return out
}

func recorded(t *testing.T, st *store.Store) string {
	t.Helper()
	v, err := st.GetSetting(context.Background(), settingKeyCheck)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func auditActions(t *testing.T, st *store.Store) []string {
	t.Helper()
	entries, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action)
	}
	return out
}

// lookupAll checks that s opens every PSK of ep-1..ep-n to its key.
func lookupAll(t *testing.T, s *Service, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		ep, key, err := s.LookupPSK(context.Background(), fmt.Sprintf("id-%d", i))
		if err != nil || ep != fmt.Sprintf("ep-%d", i) || !bytes.Equal(key, keyOf(i)) {
			t.Fatalf("LookupPSK(id-%d) = %q %q %v", i, ep, key, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	fa := Fingerprint(keyA)
	if len(fa) != 16 || strings.Trim(fa, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint = %q, want 16 hex digits", fa)
	}
	if Fingerprint(keyA) != fa || Fingerprint(keyB) == fa {
		t.Fatal("Fingerprint is not a function of the key alone")
	}
	// Pinned (computed independently with Python's hmac and hashlib: HKDF
	// with an all-zero salt, then HMAC): a change of the derivation makes
	// every recorded fingerprint a mismatch.
	if got := Fingerprint("flownexus-development-secret-key-not-for-production"); got != "857e6b5bc2119824" {
		t.Fatalf("Fingerprint(development key) = %s", got)
	}
}

// TestCheckSecretKey: the first key used is recorded; another key is
// refused while PSKs are sealed with the first, and nothing changes.
func TestCheckSecretKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		res, err := a.CheckSecretKey(ctx)
		if err != nil || !res.Recorded || res.Fingerprint != Fingerprint(keyA) || recorded(t, st) != Fingerprint(keyA) {
			t.Fatalf("first check = %+v, %v; recorded %q", res, err, recorded(t, st))
		}
		if res, err := a.CheckSecretKey(ctx); err != nil || res.Recorded {
			t.Fatalf("second check = %+v, %v", res, err)
		}
		addPSKs(t, a, 2)
		before := sealedKeys(t, st)

		_, err = b.CheckSecretKey(ctx)
		var me *KeyMismatchError
		if !errors.As(err, &me) || !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("check with another key = %v, want a *KeyMismatchError", err)
		}
		want := KeyMismatchError{Configured: Fingerprint(keyB), Stored: Fingerprint(keyA), PSKs: 2, Unreadable: 2}
		if *me != want {
			t.Fatalf("mismatch %+v, want %+v", *me, want)
		}
		for _, fp := range []string{Fingerprint(keyA), Fingerprint(keyB)} {
			if !strings.Contains(err.Error(), fp) {
				t.Errorf("error %q does not name fingerprint %s", err, fp)
			}
		}
		if strings.Contains(err.Error(), keyA) || strings.Contains(err.Error(), keyB) {
			t.Fatalf("error shows a key: %v", err)
		}
		if recorded(t, st) != Fingerprint(keyA) || !reflect.DeepEqual(sealedKeys(t, st), before) {
			t.Fatal("a refused check changed the database")
		}

		// A Service with the other key seals no PSK.
		if _, err := b.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-9", PSKIdentity: "id-9", PSKKey: keyOf(9)}); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Add under another key: %v, want ErrKeyMismatch", err)
		}
		if _, err := b.ImportPSK(ctx, store.Actor{}, strings.NewReader("ep-9,id-9,"+hex.EncodeToString(keyOf(9))+"\n")); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("ImportPSK under another key: %v, want ErrKeyMismatch", err)
		}
		if !reflect.DeepEqual(sealedKeys(t, st), before) {
			t.Fatal("a refused Add or ImportPSK stored a credential")
		}
		// X.509 bindings seal nothing.
		if _, err := b.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-x2", CertCN: "ep-x2"}); err != nil {
			t.Fatalf("X.509 Add under another key: %v", err)
		}
	})
}

// TestCheckSecretKeyNothingSealed: with no PSK stored, another key is
// recorded in place of the first, and says which it replaced.
func TestCheckSecretKeyNothingSealed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-x", CertCN: "ep-x"}); err != nil {
			t.Fatal(err)
		}
		res, err := b.CheckSecretKey(ctx)
		if err != nil || !res.Recorded || res.Replaced != Fingerprint(keyA) || recorded(t, st) != Fingerprint(keyB) {
			t.Fatalf("check = %+v, %v; recorded %q", res, err, recorded(t, st))
		}
	})
}

// TestCheckSecretKeyUpgradedDatabase: a database from before fingerprints
// (PSKs, no fingerprint) is checked by opening its PSKs.
func TestCheckSecretKeyUpgradedDatabase(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		addPSKs(t, a, 3) // no check ran: nothing recorded
		if recorded(t, st) != "" {
			t.Fatal("Add recorded a fingerprint")
		}
		_, err := b.CheckSecretKey(ctx)
		var me *KeyMismatchError
		if !errors.As(err, &me) || me.Stored != "" || me.PSKs != 3 || me.Unreadable != 3 || recorded(t, st) != "" {
			t.Fatalf("check with a key that opens none = %v (%+v), recorded %q", err, me, recorded(t, st))
		}
		if !strings.Contains(err.Error(), "records no key fingerprint") {
			t.Errorf("error %q does not say the database records none", err)
		}
		// A PSK sealed with another key before this change: the key that
		// opens the others is recorded, and the odd one reported.
		if _, err := b.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-odd", PSKIdentity: "id-odd", PSKKey: keyOf(7)}); err != nil {
			t.Fatal(err)
		}
		res, err := a.CheckSecretKey(ctx)
		if err != nil || !res.Recorded || !reflect.DeepEqual(res.Unreadable, []string{"ep-odd"}) || recorded(t, st) != Fingerprint(keyA) {
			t.Fatalf("check with the key that opens most = %+v, %v", res, err)
		}
	})
}

// TestRotate re-seals every PSK from the old key to the new one: the new
// key opens them to the same keys, the old one no longer does, and the
// fingerprint and the audit log say so.
func TestRotate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		addPSKs(t, a, 3)
		res, err := b.Rotate(ctx, store.Actor{Name: "cli"}, keyA)
		want := RotateResult{From: Fingerprint(keyA), To: Fingerprint(keyB), Before: Fingerprint(keyA), Resealed: 3, Other: 1}
		if err != nil || res != want {
			t.Fatalf("Rotate = %+v, %v; want %+v", res, err, want)
		}
		lookupAll(t, b, 3)
		if _, _, err := a.LookupPSK(ctx, "id-1"); !errors.Is(err, ErrSealed) {
			t.Fatalf("old key after rotation: %v, want ErrSealed", err)
		}
		if res, err := b.CheckSecretKey(ctx); err != nil || res.Recorded {
			t.Fatalf("check after rotation = %+v, %v", res, err)
		}
		if _, err := a.CheckSecretKey(ctx); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("old key checked after rotation: %v", err)
		}
		// A server left running with the old key adds no PSK.
		if _, err := a.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-9", PSKIdentity: "id-9", PSKKey: keyOf(9)}); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Add with the old key after rotation: %v", err)
		}
		entries, err := st.ListAudit(ctx, store.AuditFilter{Limit: 1})
		if err != nil || len(entries) != 1 || entries[0].Action != "secret.rotate" || entries[0].Actor != "cli" ||
			!strings.Contains(string(entries[0].Detail), `"resealed":3`) || !strings.Contains(string(entries[0].Detail), Fingerprint(keyB)) {
			t.Fatalf("audit: %+v %v", entries, err)
		}
		// Run again: nothing left to do, nothing written.
		n := len(auditActions(t, st))
		if res, err := b.Rotate(ctx, store.Actor{Name: "cli"}, keyA); err != nil || res.Resealed != 0 || res.Current != 3 || res.Before != Fingerprint(keyB) {
			t.Fatalf("second Rotate = %+v, %v", res, err)
		}
		if len(auditActions(t, st)) != n {
			t.Fatal("a rotation with nothing to do wrote an audit entry")
		}
		// And on to a third key.
		c := newService(t, st, keyC)
		if res, err := c.Rotate(ctx, store.Actor{}, keyB); err != nil || res.Resealed != 3 {
			t.Fatalf("Rotate to a third key = %+v, %v", res, err)
		}
		lookupAll(t, c, 3)
	})
}

// TestRotateRefusals: a wrong old key, the same key or an empty one
// change nothing.
func TestRotateRefusals(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		addPSKs(t, a, 2)
		before, actions := sealedKeys(t, st), len(auditActions(t, st))
		for name, c := range map[string]struct {
			old  string
			want error
		}{
			"wrong old key": {keyC, ErrOldKey},
			"same key":      {keyB, ErrInvalid},
			"empty":         {"", ErrInvalid},
		} {
			_, err := b.Rotate(ctx, store.Actor{}, c.old)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", name, err, c.want)
			}
		}
		_, err := b.Rotate(ctx, store.Actor{}, keyC)
		for _, fp := range []string{Fingerprint(keyC), Fingerprint(keyA)} {
			if !strings.Contains(err.Error(), fp) {
				t.Errorf("wrong old key: %q does not name %s", err, fp)
			}
		}
		if !reflect.DeepEqual(sealedKeys(t, st), before) || recorded(t, st) != Fingerprint(keyA) || len(auditActions(t, st)) != actions {
			t.Fatal("a refused rotation changed the database")
		}
	})
}

// TestRotateAllOrNothing: one PSK that opens with neither key stops the
// rotation before anything changes, and is named.
func TestRotateAllOrNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, c := newService(t, st, keyA), newService(t, st, keyC)
		addPSKs(t, a, 3) // a database from before fingerprints
		if _, err := c.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-stray", PSKIdentity: "id-stray", PSKKey: keyOf(8)}); err != nil {
			t.Fatal(err)
		}
		before := sealedKeys(t, st)
		_, err := newService(t, st, keyB).Rotate(ctx, store.Actor{}, keyA)
		if !errors.Is(err, ErrOldKey) || !strings.Contains(err.Error(), `"ep-stray"`) || strings.Contains(err.Error(), `"ep-1"`) {
			t.Fatalf("Rotate over a stray PSK: %v", err)
		}
		if !reflect.DeepEqual(sealedKeys(t, st), before) || recorded(t, st) != "" {
			t.Fatal("a refused rotation changed the database")
		}
		lookupAll(t, a, 3)
	})
}

// TestRotateInterrupted: the database fails the rotation after it
// re-sealed some keys; the transaction leaves every key, the fingerprint
// and the audit log as they were, and the old key still opens them all.
func TestRotateInterrupted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := newService(t, st, keyA)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		addPSKs(t, a, 5)
		// A real failure inside the database on the fourth update
		// (endpoints are re-sealed in name order).
		trigger := []string{`CREATE TRIGGER fail_rotation BEFORE UPDATE OF psk_key_enc ON credential
			WHEN NEW.endpoint_name = 'ep-4' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
		if st.Dialect() == store.DialectPostgres {
			trigger = []string{`CREATE FUNCTION fail_rotation() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.endpoint_name = 'ep-4' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER fail_rotation BEFORE UPDATE OF psk_key_enc ON credential
				FOR EACH ROW EXECUTE FUNCTION fail_rotation()`}
		}
		for _, q := range trigger {
			if _, err := st.WriteDB().ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		before, actions := sealedKeys(t, st), len(auditActions(t, st))
		b := newService(t, st, keyB)
		_, err := b.Rotate(ctx, store.Actor{}, keyA)
		if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "nothing changed") {
			t.Fatalf("interrupted Rotate: %v", err)
		}
		if !reflect.DeepEqual(sealedKeys(t, st), before) || recorded(t, st) != Fingerprint(keyA) || len(auditActions(t, st)) != actions {
			t.Fatal("an interrupted rotation left changes behind")
		}
		lookupAll(t, a, 5)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatalf("old key after the interrupted rotation: %v", err)
		}
	})
}

// TestResetSecretKey: with the old key lost, the PSKs it sealed are
// listed, then dropped with the new key recorded; X.509 bindings and PSKs
// the new key opens stay.
func TestResetSecretKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a, b := newService(t, st, keyA), newService(t, st, keyB)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		addPSKs(t, a, 2)
		before := sealedKeys(t, st)
		res, err := b.ResetSecretKey(ctx, store.Actor{Name: "cli"}, false)
		if err != nil || res.Dropped || !reflect.DeepEqual(res.Unreadable, []string{"ep-1", "ep-2"}) ||
			res.From != Fingerprint(keyA) || res.To != Fingerprint(keyB) {
			t.Fatalf("dry run = %+v, %v", res, err)
		}
		if !reflect.DeepEqual(sealedKeys(t, st), before) || recorded(t, st) != Fingerprint(keyA) {
			t.Fatal("the dry run changed the database")
		}
		res, err = b.ResetSecretKey(ctx, store.Actor{Name: "cli"}, true)
		if err != nil || !res.Dropped || len(res.Unreadable) != 2 {
			t.Fatalf("reset = %+v, %v", res, err)
		}
		if got := sealedKeys(t, st); len(got) != 1 || got["ep-x509"] != "" {
			t.Fatalf("after reset: %v, want the X.509 binding alone", got)
		}
		if recorded(t, st) != Fingerprint(keyB) {
			t.Fatal("reset did not record the configured key")
		}
		if got := strings.Join(auditActions(t, st)[:3], ","); got != "secret.reset,credential.remove,credential.remove" {
			t.Fatalf("audit: %s", got)
		}
		if _, err := b.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-1", PSKIdentity: "id-1", PSKKey: keyOf(1)}); err != nil {
			t.Fatalf("add again after reset: %v", err)
		}
		lookupAll(t, b, 1)
	})
}

// TestResealSessionFile: saved DTLS sessions follow the key, atomically;
// a file sealed with another key is left alone.
func TestResealSessionFile(t *testing.T) {
	st := openStore(t)
	a, b := newService(t, st, keyA), newService(t, st, keyB)
	path := filepath.Join(t.TempDir(), "dtls-sessions")
	if ok, err := b.ResealSessionFile(path, keyA); ok || err != nil {
		t.Fatalf("no file: %v, %v", ok, err)
	}
	if err := os.WriteFile(path, a.SealSessions([]byte("saved sessions")), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.ResealSessionFile(path, keyA); !ok || err != nil {
		t.Fatalf("ResealSessionFile = %v, %v", ok, err)
	}
	sealed, _ := os.ReadFile(path)
	if got, err := b.OpenSessions(sealed); err != nil || string(got) != "saved sessions" {
		t.Fatalf("re-sealed file opens to %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if ok, err := newService(t, st, keyC).ResealSessionFile(path, keyA); !ok || !errors.Is(err, ErrSealed) {
		t.Fatalf("file sealed with another key: %v, %v", ok, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, sealed) {
		t.Fatal("a file that did not open was changed")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestAddDuringRotation: an Add with the old key that runs while a
// rotation holds the credentials waits for it, then sees the new
// fingerprint and stores nothing.
func TestAddDuringRotation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := newService(t, st, keyA)
		if _, err := a.CheckSecretKey(ctx); err != nil {
			t.Fatal(err)
		}
		// What Rotate does, held open.
		tx, err := st.WriteDB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := st.LockCredentialsTx(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := st.PutSettingTx(ctx, tx, settingKeyCheck, Fingerprint(keyB)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := a.Add(ctx, store.Actor{}, AddRequest{Endpoint: "ep-1", PSKIdentity: "id-1", PSKKey: keyOf(1)})
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Add did not wait for the rotation: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Add after the rotation committed: %v, want ErrKeyMismatch", err)
		}
		if got := sealedKeys(t, st); len(got) != 0 {
			t.Fatalf("stored %v", got)
		}
	})
}

// TestResetNothingToDo: a reset where the configured key opens every PSK
// and is recorded writes nothing.
func TestResetNothingToDo(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	a := newService(t, st, keyA)
	if _, err := a.CheckSecretKey(ctx); err != nil {
		t.Fatal(err)
	}
	addPSKs(t, a, 1)
	n := len(auditActions(t, st))
	res, err := a.ResetSecretKey(ctx, store.Actor{}, true)
	if err != nil || res.Dropped || res.Kept != 1 || len(res.Unreadable) != 0 || len(auditActions(t, st)) != n {
		t.Fatalf("reset with nothing to do = %+v, %v", res, err)
	}
}
