// Package auth hashes and verifies operator passwords (argon2id, PHC string
// format), makes and hashes API tokens, and is the one place that decides
// what a user may do: every route of the REST API (and of the dashboard to
// come) declares a Permission, and Authorize decides it for the user.
//
// Users are global administrators or members of sites. A membership is
// a site role: a Site Admin has every site permission in its site, a Site
// User the ones its flags name. Authorize decides whether a user may use
// a route at all; Subject.Scope decides which devices it reaches:
//
//	permission          global admin  site member          routes
//	public              yes           yes                  OpenAPI document, login
//	view_overview       everywhere    flag, in its sites   list and get endpoints, overview
//	view_data           everywhere    flag, in its sites   values, history, events, observations, event stream
//	view_firmware       everywhere    flag, in its sites   firmware images, updates and campaigns
//	manage_firmware     everywhere    flag, in its sites   upload and remove images, start and cancel updates, campaigns
//	perform_operations  everywhere    flag, in its sites   device operations, queued operations
//	manage_devices      everywhere    flag, in its sites   assign endpoints to sites (into and out of its own)
//	own_tokens          yes           any site permission  the caller's own API tokens (no device)
//	manage_credentials  yes           no                   device credentials
//	manage_users        yes           no                   users, sites, memberships, tokens, audit log
//
// A device in no site is seen by global administrators only. A device
// outside a user's scope is treated as absent (404), never as forbidden,
// so that its name leaks nothing; lists, counts and event streams leave
// it out. An API token acts as its user. Things reached through devices
// follow them: a queued operation or a firmware update is in scope when
// its device is; a firmware campaign when every one of its devices is
// (so a site member sees and manages the campaigns over its own sites'
// devices only), and a site member creates a campaign by naming devices
// in its scope (choosing them by a filter, which reaches every site, is
// for global administrators). An API token is read or read-write: a read
// token may make GET and HEAD requests only (the event stream included),
// whatever its user may do. Firmware images are not per site: anyone
// with view_firmware sees them.
// A disabled user may do nothing but public things. The policy holds no
// state; DenialLimiter keeps the little state needed to record refusals
// without letting a loop flood the audit log. The store keeps only the
// hashes this package produces.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultParams follow the OWASP recommendation for argon2id (19 MiB, two
// passes, one lane): about 30 ms per hash on a small server.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// MinPasswordLen is the shortest password HashPassword accepts.
const MinPasswordLen = 8

// ErrMismatch is returned by VerifyPassword for a wrong password.
var ErrMismatch = errors.New("auth: password does not match")

// HashPassword returns the argon2id hash of password in PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash) with a random 16-byte salt.
func HashPassword(password string, p Params) (string, error) {
	if len(password) < MinPasswordLen {
		return "", fmt.Errorf("auth: password must be at least %d characters", MinPasswordLen)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword checks password against a hash made by HashPassword, with
// the parameters recorded in the hash. It returns ErrMismatch for a wrong
// password and another error for a malformed hash.
func VerifyPassword(hash, password string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("auth: not an argon2id hash")
	}
	var version int
	var p Params
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("auth: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Time == 0 || p.Threads == 0 || p.Memory > 1<<22 {
		return errors.New("auth: bad argon2 parameters")
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return errors.New("auth: bad argon2 salt or key")
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// TokenPrefix starts every API token, so leaked tokens are easy to find.
const TokenPrefix = "fnx_"

// NewToken returns a new random API token (shown to the user once), the
// hash to store, and a short display prefix that identifies it in lists.
func NewToken() (token, hash, display string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), token[:len(TokenPrefix)+6]
}

// HashToken returns the stored form of a token: hex SHA-256. Tokens carry
// 256 random bits, so a fast hash is enough.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewSecretKey returns a random secret key suitable for FLOWNEXUS_SECRET_KEY.
func NewSecretKey() string {
	b := make([]byte, 48)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
