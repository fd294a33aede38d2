package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// sealVersion is the first byte of a sealed key: the key derivation and
// cipher in use. A later change of either gets a new version.
const sealVersion = 1

// HKDF info strings: each use of the secret key gets a key of its own.
const (
	hkdfInfo        = "flownexus credential psk key v1"
	hkdfSessionInfo = "flownexus dtls session state v1"
)

// ErrSealed is matched when a stored key cannot be opened: it was sealed
// under another secret key or the stored bytes were altered.
var ErrSealed = errors.New("credential: stored key cannot be opened (secret key changed?)")

// sealer encrypts PSK keys for the store.
type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (sealer, error) { return newSealerFor(secret, hkdfInfo) }

func newSealerFor(secret, info string) (sealer, error) {
	if secret == "" {
		return sealer{}, errors.New("credential: empty secret key")
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, info, 32)
	if err != nil {
		return sealer{}, fmt.Errorf("credential: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("credential: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, fmt.Errorf("credential: cipher: %w", err)
	}
	return sealer{aead: aead}, nil
}

// additional binds a sealed key to its endpoint and identity, so a key
// moved to another row of the table does not open.
func additional(endpoint, identity string) []byte {
	return []byte(endpoint + "\x00" + identity)
}

// seal returns version || nonce || ciphertext of key.
func (s sealer) seal(key []byte, endpoint, identity string) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(key)+s.aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], key, additional(endpoint, identity))
}

// open reverses seal.
func (s sealer) open(sealed []byte, endpoint, identity string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrSealed
	}
	key, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additional(endpoint, identity))
	if err != nil {
		return nil, ErrSealed
	}
	return key, nil
}
