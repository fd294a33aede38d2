package auth

import (
	"errors"
	"strings"
	"testing"
)

var fast = Params{Memory: 1024, Time: 1, Threads: 1}

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if err := VerifyPassword(h, "correct horse"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if err := VerifyPassword(h, "correct horsE"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	h2, _ := HashPassword("correct horse", fast)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestPasswordTooShort(t *testing.T) {
	if _, err := HashPassword("short", fast); err == nil {
		t.Fatal("short password accepted")
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=18$m=1024,t=1,p=1$AA$AA",
		"$argon2id$v=19$m=x$AA$AA", "$argon2id$v=19$m=1024,t=0,p=1$AA$AA", "$argon2id$v=19$m=1024,t=1,p=1$!!$AA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AA$AA"} {
		err := VerifyPassword(h, "whatever1")
		if err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("%q: err %v, want a malformed-hash error", h, err)
		}
	}
}

func TestToken(t *testing.T) {
	tok, hash, display := NewToken()
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) < 40 {
		t.Fatalf("token %q", tok)
	}
	if HashToken(tok) != hash || len(hash) != 64 {
		t.Fatalf("hash %q", hash)
	}
	if !strings.HasPrefix(tok, display) {
		t.Fatalf("display %q not a prefix of the token", display)
	}
	tok2, _, _ := NewToken()
	if tok == tok2 {
		t.Fatal("tokens repeat")
	}
	if len(NewSecretKey()) < 32 {
		t.Fatal("secret key too short")
	}
}
