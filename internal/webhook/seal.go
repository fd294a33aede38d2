package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
)

// sealVersion is the first byte of a sealed secret: the key derivation
// and cipher in use.
const sealVersion = 1

// hkdfInfo gives webhook secrets a key of their own, derived from the
// server's secret key (as package credential does for PSK keys).
const hkdfInfo = "flownexus webhook secret v1"

// ErrSealed is matched when a stored secret cannot be opened: it was
// sealed under another secret key, or the stored bytes were altered.
var ErrSealed = errors.New("webhook: stored secret cannot be opened (secret key changed?)")

// sealer encrypts webhook secrets for the store with AES-256-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(secretKey string) (sealer, error) {
	if secretKey == "" {
		return sealer{}, errors.New("webhook: empty secret key")
	}
	key, err := hkdf.Key(sha256.New, []byte(secretKey), nil, hkdfInfo, 32)
	if err != nil {
		return sealer{}, fmt.Errorf("webhook: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("webhook: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, fmt.Errorf("webhook: cipher: %w", err)
	}
	return sealer{aead: aead}, nil
}

// additional binds a sealed secret to its owner, so that a secret copied
// into another user's webhook does not open.
func additional(userID int64) []byte { return []byte("webhook owner " + strconv.FormatInt(userID, 10)) }

// seal returns version || nonce || ciphertext of secret.
func (s sealer) seal(secret []byte, userID int64) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], secret, additional(userID))
}

// open reverses seal.
func (s sealer) open(sealed []byte, userID int64) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrSealed
	}
	secret, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additional(userID))
	if err != nil {
		return nil, ErrSealed
	}
	return secret, nil
}
