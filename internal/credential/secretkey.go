package credential

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flownexus/flownexus/internal/store"
)

// settingKeyCheck names the store setting that holds the fingerprint of
// the secret key the stored PSK keys are sealed with.
const settingKeyCheck = "secret_key_check"

// hkdfCheckInfo derives the key of Fingerprint's HMAC.
const hkdfCheckInfo = "flownexus secret key check v1"

// Fingerprint returns the check value of a secret key, 16 hex digits: the
// first 8 bytes of HMAC-SHA256 of a fixed label under a key derived from
// the secret (HKDF-SHA256, an info string of its own). It tells two keys
// apart without revealing either.
func Fingerprint(secret string) string {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, hkdfCheckInfo, 32)
	if err != nil {
		panic("credential: HKDF of 32 bytes failed: " + err.Error()) // cannot happen for 32 bytes
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("flownexus secret key fingerprint"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// ErrKeyMismatch is matched when the configured secret key is not the one
// the stored PSK keys are sealed with: by CheckSecretKey (as a
// *KeyMismatchError), and by Add and ImportPSK of PSKs when the database
// records another key's fingerprint.
var ErrKeyMismatch = errors.New("credential: the configured secret key is not the one the stored PSK keys are sealed with")

// KeyMismatchError says which keys CheckSecretKey found. It matches
// ErrKeyMismatch.
type KeyMismatchError struct {
	Configured string // fingerprint of the configured key
	Stored     string // fingerprint the database records; "" when it records none (a database from before fingerprints)
	PSKs       int    // stored PSK credentials
	Unreadable int    // of which the configured key does not open
}

func (e *KeyMismatchError) Error() string {
	if e.Stored == "" {
		return fmt.Sprintf("credential: none of the %d stored PSK keys opens with the configured secret key (fingerprint %s); the database records no key fingerprint",
			e.PSKs, e.Configured)
	}
	return fmt.Sprintf("credential: the configured secret key (fingerprint %s) is not the one the stored PSK keys were sealed with (fingerprint %s); %d of %d PSK keys do not open",
		e.Configured, e.Stored, e.Unreadable, e.PSKs)
}

func (e *KeyMismatchError) Unwrap() error { return ErrKeyMismatch }

// KeyCheck is what CheckSecretKey found and did.
type KeyCheck struct {
	Fingerprint string // of the configured key
	// Recorded is set when this check recorded Fingerprint: the database
	// recorded none, or recorded Replaced while no stored PSK key was
	// sealed with that key.
	Recorded bool
	Replaced string
	// Unreadable lists the endpoints whose PSK key does not open with the
	// configured key although others do: left over from an earlier,
	// unrecorded key change in a database from before fingerprints. Those
	// devices cannot handshake until their credential is added again.
	Unreadable []string
}

// Fingerprint returns the fingerprint of the Service's secret key.
func (s *Service) Fingerprint() string { return s.fingerprint }

// CheckSecretKey compares the Service's secret key with the fingerprint
// the database records and must pass before the Service seals or opens
// PSK keys (the server and the commands that add credentials run it at
// start). Equal fingerprints pass at once. Otherwise the stored PSK keys
// decide: when every one opens with the configured key (or there are
// none), its fingerprint is recorded and the check passes; when the
// database records another key's fingerprint, or none and not one PSK
// key opens, it fails with a *KeyMismatchError and changes nothing.
func (s *Service) CheckSecretKey(ctx context.Context) (KeyCheck, error) {
	res := KeyCheck{Fingerprint: s.fingerprint}
	stored, err := s.st.GetSetting(ctx, settingKeyCheck)
	switch {
	case err == nil && stored == s.fingerprint:
		return res, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return res, fmt.Errorf("credential: check secret key: %w", err)
	}
	// Decide and record in one transaction that keeps other writers of
	// credentials, and other starters, out until it ends.
	err = s.st.WithTx(ctx, func(tx *sql.Tx) error {
		if err := s.st.LockCredentialsTx(ctx, tx); err != nil {
			return err
		}
		stored, err := s.st.GetSettingTx(ctx, tx, settingKeyCheck)
		found := err == nil
		switch {
		case found && stored == s.fingerprint:
			return nil // recorded by another starter meanwhile
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		creds, err := s.st.ListCredentialsTx(ctx, tx)
		if err != nil {
			return err
		}
		psks, unreadable := 0, []string(nil)
		for _, c := range creds {
			if c.Kind != PSK {
				continue
			}
			psks++
			if _, err := s.seal.open(c.PSKKeyEnc, c.EndpointName, c.PSKIdentity); err != nil {
				unreadable = append(unreadable, c.EndpointName)
			}
		}
		switch {
		case len(unreadable) == 0:
			if found {
				res.Replaced = stored
			}
		case found || len(unreadable) == psks:
			return &KeyMismatchError{Configured: s.fingerprint, Stored: stored, PSKs: psks, Unreadable: len(unreadable)}
		default:
			res.Unreadable = unreadable
		}
		res.Recorded = true
		return s.st.PutSettingTx(ctx, tx, settingKeyCheck, s.fingerprint)
	})
	var me *KeyMismatchError
	if errors.As(err, &me) {
		return res, err
	}
	if err != nil {
		return res, fmt.Errorf("credential: check secret key: %w", err)
	}
	return res, nil
}

// guardTx fails with ErrKeyMismatch when the database records the
// fingerprint of another secret key than the Service's, inside the
// transaction tx that seals new PSK keys: a server left running with the
// old key after a rotation does not add keys the new one cannot open. A
// database that records none passes (CheckSecretKey records it).
func (s *Service) guardTx(ctx context.Context, tx *sql.Tx) error {
	stored, err := s.st.GetSettingTx(ctx, tx, settingKeyCheck)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && stored == s.fingerprint):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%w (the database records fingerprint %s, the configured key's is %s)", ErrKeyMismatch, stored, s.fingerprint)
}

// ErrOldKey is matched by Rotate when the old key given is not the one the
// stored PSK keys are sealed with.
var ErrOldKey = errors.New("credential: the old secret key given does not open the stored PSK keys")

// RotateResult counts what Rotate did.
type RotateResult struct {
	From, To string // fingerprints of the old and the configured key
	Before   string // the fingerprint the database recorded before; "" for none
	Resealed int    // PSK keys opened with the old key and sealed with the configured one
	Current  int    // PSK keys already sealed with the configured key, left as they were
	Other    int    // credentials without a sealed key (X.509)
}

// Rotate re-seals every stored PSK key from oldSecret to the Service's
// secret key and records the Service's key fingerprint, in one
// transaction that keeps other writers of credentials out, with a
// secret.rotate audit entry. It is all or nothing: every PSK key must open
// with the old key (or already with the configured one) before any is
// changed; otherwise it returns an error matching ErrOldKey that names
// the endpoints whose keys do not open, and changes nothing. When the
// database records a fingerprint it must be the old key's or the
// configured key's (a rotation run again has nothing left to do).
//
// Servers still running with the old key cannot open the re-sealed keys:
// stop them first.
func (s *Service) Rotate(ctx context.Context, by store.Actor, oldSecret string) (RotateResult, error) {
	res := RotateResult{From: Fingerprint(oldSecret), To: s.fingerprint}
	if oldSecret == "" {
		return res, invalid("the old secret key is empty")
	}
	if res.From == res.To {
		return res, invalid("the old secret key is the configured one: set the new key in FLOWNEXUS_SECRET_KEY or FLOWNEXUS_SECRET_KEY_FILE")
	}
	old, err := newSealer(oldSecret)
	if err != nil {
		return res, err
	}
	err = s.st.WithTx(ctx, func(tx *sql.Tx) error {
		if err := s.st.LockCredentialsTx(ctx, tx); err != nil {
			return err
		}
		stored, err := s.st.GetSettingTx(ctx, tx, settingKeyCheck)
		switch {
		case errors.Is(err, store.ErrNotFound):
			stored = ""
		case err != nil:
			return err
		case stored != res.From && stored != res.To:
			return fmt.Errorf("%w: its fingerprint is %s, the database records %s", ErrOldKey, res.From, stored)
		}
		res.Before = stored
		creds, err := s.st.ListCredentialsTx(ctx, tx)
		if err != nil {
			return err
		}
		type reseal struct {
			id  int64
			enc []byte
		}
		var todo []reseal
		var bad []string
		for _, c := range creds {
			if c.Kind != PSK {
				res.Other++
				continue
			}
			if _, err := s.seal.open(c.PSKKeyEnc, c.EndpointName, c.PSKIdentity); err == nil {
				res.Current++
				continue
			}
			key, err := old.open(c.PSKKeyEnc, c.EndpointName, c.PSKIdentity)
			if err != nil {
				bad = append(bad, c.EndpointName)
				continue
			}
			todo = append(todo, reseal{c.ID, s.seal.seal(key, c.EndpointName, c.PSKIdentity)})
			clear(key)
		}
		if len(bad) > 0 {
			return fmt.Errorf("%w (fingerprint %s): the PSK keys of %s open with neither it nor the configured key; nothing changed",
				ErrOldKey, res.From, endpointList(bad))
		}
		if stored == res.To && len(todo) == 0 {
			return nil // rotated already: nothing to write
		}
		for _, r := range todo {
			if err := s.st.UpdateCredentialKeyTx(ctx, tx, r.id, r.enc); err != nil {
				return err
			}
		}
		res.Resealed = len(todo)
		if err := s.st.PutSettingTx(ctx, tx, settingKeyCheck, res.To); err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"from": res.From, "to": res.To, "recorded": stored,
			"resealed": res.Resealed, "current": res.Current})
		_, err = s.st.AppendAuditTx(ctx, tx, by.Entry("secret.rotate", "", detail))
		return err
	})
	if err != nil {
		if errors.Is(err, ErrOldKey) {
			return res, err
		}
		return res, fmt.Errorf("credential: rotate secret key: nothing changed: %w", err)
	}
	return res, nil
}

// ResetResult says what ResetSecretKey found and did.
type ResetResult struct {
	From, To string // the fingerprint the database recorded ("" for none) and the configured key's
	// Unreadable lists the endpoints whose PSK key does not open with the
	// configured key: removed when Dropped is set.
	Unreadable []string
	Dropped    bool // the credentials were removed and the fingerprint recorded: drop was asked and there was something to do
	Kept       int  // PSK credentials that open with the configured key
}

// ResetSecretKey is the way out when the key the stored PSK keys were
// sealed with is lost. It finds the PSK credentials whose keys do not
// open with the Service's secret key; with drop it removes them (a
// credential.remove audit entry each), records the Service's key
// fingerprint and appends a secret.reset audit entry, all in one
// transaction. Without drop it changes nothing and only reports. X.509
// credentials hold no sealed key and are kept.
func (s *Service) ResetSecretKey(ctx context.Context, by store.Actor, drop bool) (ResetResult, error) {
	res := ResetResult{To: s.fingerprint}
	err := s.st.WithTx(ctx, func(tx *sql.Tx) error {
		if err := s.st.LockCredentialsTx(ctx, tx); err != nil {
			return err
		}
		stored, err := s.st.GetSettingTx(ctx, tx, settingKeyCheck)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		res.From = stored
		creds, err := s.st.ListCredentialsTx(ctx, tx)
		if err != nil {
			return err
		}
		var drops []store.Credential
		for _, c := range creds {
			if c.Kind != PSK {
				continue
			}
			if _, err := s.seal.open(c.PSKKeyEnc, c.EndpointName, c.PSKIdentity); err == nil {
				res.Kept++
				continue
			}
			drops = append(drops, c)
			res.Unreadable = append(res.Unreadable, c.EndpointName)
		}
		if !drop || (len(drops) == 0 && stored == res.To) {
			return nil // a dry run, or nothing to change
		}
		for _, c := range drops {
			if err := s.st.DeleteCredentialTx(ctx, tx, c.ID); err != nil {
				return err
			}
			detail, _ := json.Marshal(map[string]string{"kind": string(PSK), "psk_identity": c.PSKIdentity, "via": "secret.reset"})
			if _, err := s.st.AppendAuditTx(ctx, tx, by.Entry("credential.remove", c.EndpointName, detail)); err != nil {
				return err
			}
		}
		if err := s.st.PutSettingTx(ctx, tx, settingKeyCheck, res.To); err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"from": res.From, "to": res.To, "dropped": len(drops), "kept": res.Kept})
		if _, err := s.st.AppendAuditTx(ctx, tx, by.Entry("secret.reset", "", detail)); err != nil {
			return err
		}
		res.Dropped = true
		return nil
	})
	if err != nil {
		return ResetResult{From: res.From, To: res.To}, fmt.Errorf("credential: reset secret key: nothing changed: %w", err)
	}
	return res, nil
}

// ResealSessionFile re-seals the saved DTLS sessions at path (see
// SealSessions) from oldSecret to the Service's key, so that a server
// started with the new key resumes them. The file is replaced atomically
// (a temporary file renamed over it, mode 0600). It reports whether there
// was a file; one that does not open with the old key is ErrSealed and
// left as it is (the server discards it at start, and its devices
// handshake again).
func (s *Service) ResealSessionFile(path, oldSecret string) (bool, error) {
	sealed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("credential: re-seal DTLS sessions: %w", err)
	}
	old, err := newSealerFor(oldSecret, hkdfSessionInfo)
	if err != nil {
		return true, err
	}
	raw, err := old.open(sealed, "dtls-sessions", "")
	if err != nil {
		return true, fmt.Errorf("credential: re-seal DTLS sessions in %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dtls-sessions-*")
	if err != nil {
		return true, fmt.Errorf("credential: re-seal DTLS sessions: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(s.SealSessions(raw))
	clear(raw)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return true, fmt.Errorf("credential: re-seal DTLS sessions: %w", err)
	}
	return true, nil
}

// endpointList names up to 10 endpoints, then how many more there are.
func endpointList(eps []string) string {
	const show = 10
	quoted := make([]string, 0, min(len(eps), show))
	for _, ep := range eps[:min(len(eps), show)] {
		quoted = append(quoted, fmt.Sprintf("%q", ep))
	}
	out := strings.Join(quoted, ", ")
	if len(eps) > show {
		out += fmt.Sprintf(" and %d more", len(eps)-show)
	}
	return out
}
