// Package sealbox seals small secrets for storage (device PSK keys, DTLS
// session state, webhook secrets) under the server's secret key: AES-256-GCM
// with a key derived by HKDF-SHA256 from the secret key and a purpose
// string, so that each use of the secret key has a key of its own. A
// sealed value is version (1) || nonce || ciphertext; additional data
// binds it to where it is stored, so a value copied elsewhere does not
// open.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// version is the first byte of a sealed value: the key derivation and
// cipher in use. A later change of either gets a new version.
const version = 1

// ErrOpen is returned by Open for a value sealed under another key or
// purpose, with other additional data, or altered.
var ErrOpen = errors.New("sealbox: sealed value cannot be opened")

// Box seals and opens values. The zero Box is not usable; a Box is safe
// for concurrent use.
type Box struct{ aead cipher.AEAD }

// New returns the Box of secretKey for purpose (a fixed string naming the
// use, e.g. "flownexus credential psk key v1").
func New(secretKey, purpose string) (Box, error) {
	if secretKey == "" {
		return Box{}, errors.New("sealbox: empty secret key")
	}
	key, err := hkdf.Key(sha256.New, []byte(secretKey), nil, purpose, 32)
	if err != nil {
		return Box{}, fmt.Errorf("sealbox: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return Box{}, fmt.Errorf("sealbox: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Box{}, fmt.Errorf("sealbox: cipher: %w", err)
	}
	return Box{aead: aead}, nil
}

// Seal returns plain sealed with a random nonce, bound to additional.
func (b Box) Seal(plain, additional []byte) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	out[0] = version
	_, _ = rand.Read(out[1:])
	return b.aead.Seal(out, out[1:], plain, additional)
}

// Open reverses Seal; anything else is ErrOpen.
func (b Box) Open(sealed, additional []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additional)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
