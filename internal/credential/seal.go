package credential

import (
	"errors"

	"github.com/flownexus/flownexus/internal/sealbox"
)

// HKDF info strings: each use of the secret key gets a key of its own.
const (
	hkdfInfo        = "flownexus credential psk key v1"
	hkdfSessionInfo = "flownexus dtls session state v1"
)

// ErrSealed is matched when a stored key cannot be opened: it was sealed
// under another secret key or the stored bytes were altered.
var ErrSealed = errors.New("credential: stored key cannot be opened (secret key changed?)")

// sealer encrypts PSK keys (and the DTLS session state) for the store.
type sealer struct{ box sealbox.Box }

func newSealer(secret string) (sealer, error) { return newSealerFor(secret, hkdfInfo) }

func newSealerFor(secret, info string) (sealer, error) {
	b, err := sealbox.New(secret, info)
	return sealer{box: b}, err
}

// additional binds a sealed key to its endpoint and identity, so a key
// moved to another row of the table does not open.
func additional(endpoint, identity string) []byte {
	return []byte(endpoint + "\x00" + identity)
}

// seal returns the sealed key (package sealbox's format).
func (s sealer) seal(key []byte, endpoint, identity string) []byte {
	return s.box.Seal(key, additional(endpoint, identity))
}

// open reverses seal; what does not open is ErrSealed.
func (s sealer) open(sealed []byte, endpoint, identity string) ([]byte, error) {
	key, err := s.box.Open(sealed, additional(endpoint, identity))
	if err != nil {
		return nil, ErrSealed
	}
	return key, nil
}
