package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// CredentialKind is the DTLS security mode of a credential.
type CredentialKind string

// The credential kinds.
const (
	CredentialPSK  CredentialKind = "psk"
	CredentialX509 CredentialKind = "x509"
)

// Credential binds DTLS credentials to an endpoint name: a PSK identity and
// key, or an X.509 certificate's common name and fingerprint. PSKKeyEnc is
// the key as encrypted by the caller; the store never sees it in clear.
type Credential struct {
	ID              int64
	EndpointName    string
	Kind            CredentialKind
	PSKIdentity     string // psk only, unique
	PSKKeyEnc       []byte // psk only
	CertCN          string // x509
	CertFingerprint string // x509, e.g. hex SHA-256 of the certificate
	CreatedAt       time.Time
}

const credentialCols = "id, endpoint_name, kind, psk_identity, psk_key_enc, cert_cn, cert_fingerprint, created_at"

func scanCredential(r rowScanner) (Credential, error) {
	var c Credential
	var identity sql.NullString
	var created int64
	if err := r.Scan(&c.ID, &c.EndpointName, &c.Kind, &identity, &c.PSKKeyEnc, &c.CertCN, &c.CertFingerprint, &created); err != nil {
		return Credential{}, err
	}
	c.PSKIdentity, c.CreatedAt = identity.String, fromMillis(created)
	return c, nil
}

// CreateCredential stores a credential. A psk credential needs PSKIdentity
// and PSKKeyEnc; an x509 one has neither. An endpoint name or PSK identity
// already stored is ErrConflict.
func (s *Store) CreateCredential(ctx context.Context, c Credential) (Credential, error) {
	return s.createCredential(ctx, s.wdb, c)
}

// CreateCredentialTx is CreateCredential inside the transaction tx (see
// WithTx), so that many credentials commit together or not at all.
func (s *Store) CreateCredentialTx(ctx context.Context, tx *sql.Tx, c Credential) (Credential, error) {
	return s.createCredential(ctx, tx, c)
}

func (s *Store) createCredential(ctx context.Context, q querier, c Credential) (Credential, error) {
	op := fmt.Sprintf("create credential for %q", c.EndpointName)
	if c.EndpointName == "" {
		return Credential{}, fmt.Errorf("store: %s: empty endpoint name", op)
	}
	var key any
	switch c.Kind {
	case CredentialPSK:
		if c.PSKIdentity == "" || len(c.PSKKeyEnc) == 0 {
			return Credential{}, fmt.Errorf("store: %s: a psk credential needs an identity and a key", op)
		}
		key = c.PSKKeyEnc
	case CredentialX509:
		if c.PSKIdentity != "" || len(c.PSKKeyEnc) != 0 {
			return Credential{}, fmt.Errorf("store: %s: an x509 credential has no PSK identity or key", op)
		}
	default:
		return Credential{}, fmt.Errorf("store: %s: invalid kind %q", op, c.Kind)
	}
	out, err := scanCredential(q.QueryRowContext(ctx, `
		INSERT INTO credential (endpoint_name, kind, psk_identity, psk_key_enc, cert_cn, cert_fingerprint, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+credentialCols,
		c.EndpointName, c.Kind, nullText(c.PSKIdentity), key, c.CertCN, c.CertFingerprint, millis(s.now())))
	return out, wrap(op, err)
}

// GetCredentialByEndpoint returns the credential bound to the endpoint name.
func (s *Store) GetCredentialByEndpoint(ctx context.Context, endpointName string) (Credential, error) {
	c, err := scanCredential(s.rdb.QueryRowContext(ctx,
		"SELECT "+credentialCols+" FROM credential WHERE endpoint_name = $1", endpointName))
	return c, wrap(fmt.Sprintf("get credential for %q", endpointName), err)
}

// GetCredentialByPSKIdentity returns the psk credential with the identity.
func (s *Store) GetCredentialByPSKIdentity(ctx context.Context, identity string) (Credential, error) {
	c, err := scanCredential(s.rdb.QueryRowContext(ctx,
		"SELECT "+credentialCols+" FROM credential WHERE psk_identity = $1", identity))
	return c, wrap(fmt.Sprintf("get credential by PSK identity %q", identity), err)
}

// ListCredentials returns all credentials ordered by endpoint name.
func (s *Store) ListCredentials(ctx context.Context) ([]Credential, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+credentialCols+" FROM credential ORDER BY endpoint_name")
	if err != nil {
		return nil, wrap("list credentials", err)
	}
	out, err := collect(rows, scanCredential)
	return out, wrap("list credentials", err)
}

// DeleteCredential removes the credential bound to the endpoint name.
func (s *Store) DeleteCredential(ctx context.Context, endpointName string) error {
	return wrap(fmt.Sprintf("delete credential for %q", endpointName), requireRow(s.wdb.ExecContext(ctx,
		"DELETE FROM credential WHERE endpoint_name = $1", endpointName)))
}
