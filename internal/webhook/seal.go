package webhook

import (
	"errors"
	"strconv"

	"github.com/flownexus/flownexus/internal/sealbox"
)

// hkdfInfo gives webhook secrets a key of their own, derived from the
// server's secret key (as package credential does for PSK keys).
const hkdfInfo = "flownexus webhook secret v1"

// ErrSealed is matched when a stored secret cannot be opened: it was
// sealed under another secret key, or the stored bytes were altered.
var ErrSealed = errors.New("webhook: stored secret cannot be opened (secret key changed?)")

// sealer encrypts webhook secrets for the store (package sealbox).
type sealer struct{ box sealbox.Box }

func newSealer(secretKey string) (sealer, error) {
	b, err := sealbox.New(secretKey, hkdfInfo)
	return sealer{box: b}, err
}

// additional binds a sealed secret to its owner, so that a secret copied
// into another user's webhook does not open.
func additional(userID int64) []byte { return []byte("webhook owner " + strconv.FormatInt(userID, 10)) }

// seal returns the sealed secret.
func (s sealer) seal(secret []byte, userID int64) []byte {
	return s.box.Seal(secret, additional(userID))
}

// open reverses seal; what does not open is ErrSealed.
func (s sealer) open(sealed []byte, userID int64) ([]byte, error) {
	secret, err := s.box.Open(sealed, additional(userID))
	if err != nil {
		return nil, ErrSealed
	}
	return secret, nil
}
