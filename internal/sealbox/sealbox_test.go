package sealbox

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := New("a secret key of some length", "test purpose v1")
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("psk bytes")
	sealed := b.Seal(plain, []byte("row 1"))
	if sealed[0] != version || bytes.Contains(sealed, plain) {
		t.Fatalf("sealed %x", sealed)
	}
	if got, err := b.Open(sealed, []byte("row 1")); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if bytes.Equal(b.Seal(plain, nil), b.Seal(plain, nil)) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	other, _ := New("a secret key of some length", "another purpose v1")
	otherKey, _ := New("another secret key", "test purpose v1")
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other additional data": func() ([]byte, error) { return b.Open(sealed, []byte("row 2")) },
		"other purpose":         func() ([]byte, error) { return other.Open(sealed, []byte("row 1")) },
		"other secret key":      func() ([]byte, error) { return otherKey.Open(sealed, []byte("row 1")) },
		"altered":               func() ([]byte, error) { return b.Open(altered, []byte("row 1")) },
		"short":                 func() ([]byte, error) { return b.Open(sealed[:10], []byte("row 1")) },
		"other version":         func() ([]byte, error) { return b.Open(append([]byte{2}, sealed[1:]...), []byte("row 1")) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
	if _, err := New("", "p"); err == nil {
		t.Error("an empty secret key was accepted")
	}
}
