package credential

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "flownexus.db"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func newService(t *testing.T, st *store.Store, secret string) *Service {
	t.Helper()
	s, err := New(st, secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var key16 = []byte("0123456789abcdef")

func TestAddLookupRemove(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s := newService(t, st, "a secret key of sufficient length!!")
	by := store.Actor{Name: "cli"}

	info, err := s.Add(ctx, by, AddRequest{Endpoint: "urn:imei:1", PSKIdentity: "dev-1", PSKKey: key16})
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != PSK || info.PSKIdentity != "dev-1" || info.Endpoint != "urn:imei:1" {
		t.Fatalf("Add = %+v", info)
	}
	// The key is not stored in clear.
	c, err := st.GetCredentialByEndpoint(ctx, "urn:imei:1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(c.PSKKeyEnc, key16) || len(c.PSKKeyEnc) <= len(key16) {
		t.Fatalf("stored key %x holds the key in clear", c.PSKKeyEnc)
	}
	ep, key, err := s.LookupPSK(ctx, "dev-1")
	if err != nil || ep != "urn:imei:1" || !bytes.Equal(key, key16) {
		t.Fatalf("LookupPSK = %q %x %v", ep, key, err)
	}
	// Not found is the package's own error, and still the store's.
	notFound := func(err error) bool { return errors.Is(err, ErrNotFound) && errors.Is(err, store.ErrNotFound) }
	if _, _, err := s.LookupPSK(ctx, "nobody"); !notFound(err) {
		t.Fatalf("unknown identity: %v", err)
	}
	if _, err := s.Get(ctx, "urn:imei:none"); !notFound(err) {
		t.Fatalf("Get of an endpoint without credential: %v", err)
	}

	x, err := s.Add(ctx, by, AddRequest{Endpoint: "urn:imei:2", CertCN: "urn:imei:2",
		CertFingerprint: strings.Repeat("AB:", 31) + "AB"})
	if err != nil {
		t.Fatal(err)
	}
	if x.Kind != X509 || x.CertFingerprint != strings.Repeat("ab", 32) {
		t.Fatalf("x509 Add = %+v", x)
	}
	if _, err := s.Add(ctx, by, AddRequest{Endpoint: "urn:imei:1", CertCN: "x"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second credential for an endpoint: %v", err)
	}
	if _, err := s.Add(ctx, by, AddRequest{Endpoint: "urn:imei:3", PSKIdentity: "dev-1", PSKKey: key16}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("identity in use: %v", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Endpoint != "urn:imei:1" || list[1].Endpoint != "urn:imei:2" {
		t.Fatalf("List = %+v %v", list, err)
	}
	if got, err := s.Get(ctx, "urn:imei:2"); err != nil || got.CertCN != "urn:imei:2" {
		t.Fatalf("Get = %+v %v", got, err)
	}
	if err := s.Remove(ctx, by, "urn:imei:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, by, "urn:imei:1"); !notFound(err) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, _, err := s.LookupPSK(ctx, "dev-1"); !notFound(err) {
		t.Fatalf("removed identity: %v", err)
	}

	if err := s.AuditRefusal(ctx, Refusal{Endpoint: "urn:imei:9", Identity: "psk:dev-2", Bound: "urn:imei:2",
		Reason: "identity bound to another endpoint", RemoteAddr: "192.0.2.1:5000"}); err != nil {
		t.Fatal(err)
	}
	audit, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action+" "+a.Target)
		if bytes.Contains(a.Detail, key16) || bytes.Contains(a.Detail, []byte("30313233")) {
			t.Errorf("audit entry %s holds the key: %s", a.Action, a.Detail)
		}
	}
	want := "device.refused urn:imei:9,credential.remove urn:imei:1,credential.add urn:imei:2,credential.add urn:imei:1"
	if got := strings.Join(actions, ","); got != want {
		t.Fatalf("audit log:\n got %s\nwant %s", got, want)
	}
}

func TestSecretKeyChange(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s := newService(t, st, "first secret key, long enough to use")
	if _, err := s.Add(ctx, store.Actor{}, AddRequest{Endpoint: "e", PSKIdentity: "i", PSKKey: key16}); err != nil {
		t.Fatal(err)
	}
	other := newService(t, st, "second secret key, long enough too!")
	if _, _, err := other.LookupPSK(ctx, "i"); !errors.Is(err, ErrSealed) {
		t.Fatalf("lookup under another secret: %v", err)
	}
}

func TestSealBindsRow(t *testing.T) {
	s, err := newSealer("secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.seal(key16, "ep-a", "id-a")
	if _, err := s.open(sealed, "ep-b", "id-a"); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another endpoint: %v", err)
	}
	if _, err := s.open(sealed, "ep-a", "id-b"); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another identity: %v", err)
	}
	for _, bad := range [][]byte{nil, {1}, sealed[:len(sealed)-1], append([]byte{2}, sealed[1:]...)} {
		if _, err := s.open(bad, "ep-a", "id-a"); !errors.Is(err, ErrSealed) {
			t.Errorf("open(%x): %v", bad, err)
		}
	}
	if again := s.seal(key16, "ep-a", "id-a"); bytes.Equal(again, sealed) {
		t.Error("two seals of one key are equal: nonce reused")
	}
}

func TestAddValidation(t *testing.T) {
	s := newService(t, openStore(t), "secret")
	for name, r := range map[string]AddRequest{
		"no endpoint":        {PSKIdentity: "i", PSKKey: key16},
		"long endpoint":      {Endpoint: strings.Repeat("e", MaxEndpointLen+1), PSKIdentity: "i", PSKKey: key16},
		"control character":  {Endpoint: "e\n", PSKIdentity: "i", PSKKey: key16},
		"nothing":            {Endpoint: "e"},
		"both":               {Endpoint: "e", PSKIdentity: "i", PSKKey: key16, CertCN: "e"},
		"no identity":        {Endpoint: "e", PSKKey: key16},
		"no key":             {Endpoint: "e", PSKIdentity: "i"},
		"short key":          {Endpoint: "e", PSKIdentity: "i", PSKKey: key16[:7]},
		"long key":           {Endpoint: "e", PSKIdentity: "i", PSKKey: make([]byte, MaxKeyLen+1)},
		"long identity":      {Endpoint: "e", PSKIdentity: strings.Repeat("i", MaxIdentityLen+1), PSKKey: key16},
		"bad fingerprint":    {Endpoint: "e", CertFingerprint: "xyz"},
		"short fingerprint":  {Endpoint: "e", CertFingerprint: "abcd"},
		"invalid utf-8 name": {Endpoint: "e\xff", CertCN: "e"},
	} {
		if _, err := s.Add(context.Background(), store.Actor{}, r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]string{
		"000102":      "\x00\x01\x02",
		"0x0A0b":      "\x0a\x0b",
		"de:ad:be:ef": "\xde\xad\xbe\xef",
	} {
		got, err := ParseKey(in)
		if err != nil || string(got) != want {
			t.Errorf("ParseKey(%q) = %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "zz", "12 3"} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKey(%q): %v", bad, err)
		}
	}
}

func TestSealSessions(t *testing.T) {
	st := openStore(t)
	s := newService(t, st, "secret one")
	sealed := s.SealSessions([]byte("session keys"))
	if bytes.Contains(sealed, []byte("session keys")) {
		t.Fatal("state in clear")
	}
	if got, err := s.OpenSessions(sealed); err != nil || string(got) != "session keys" {
		t.Fatalf("OpenSessions = %q, %v", got, err)
	}
	if _, err := newService(t, st, "secret two").OpenSessions(sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("open under another secret: %v", err)
	}
	// The session key is not the PSK key: a sealed PSK does not open as
	// session state.
	if _, err := s.OpenSessions(s.seal.seal([]byte("k"), "dtls-sessions", "")); !errors.Is(err, ErrSealed) {
		t.Fatalf("PSK sealer opened session state: %v", err)
	}
}
