package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestCredentialRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		psk, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:imei:1", Kind: CredentialPSK,
			PSKIdentity: "id-1", PSKKeyEnc: []byte{0x01, 0x00, 0xff, 0x80}})
		if err != nil {
			t.Fatal(err)
		}
		want := Credential{ID: psk.ID, EndpointName: "urn:imei:1", Kind: CredentialPSK, PSKIdentity: "id-1",
			PSKKeyEnc: []byte{0x01, 0x00, 0xff, 0x80}, CreatedAt: t0}
		if !reflect.DeepEqual(psk, want) {
			t.Fatalf("created %+v", psk)
		}
		if got, err := s.GetCredentialByEndpoint(ctx, "urn:imei:1"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetCredentialByEndpoint = %+v, %v", got, err)
		}
		if got, err := s.GetCredentialByPSKIdentity(ctx, "id-1"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetCredentialByPSKIdentity = %+v, %v", got, err)
		}
		x, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:imei:2", Kind: CredentialX509,
			CertCN: "urn:imei:2", CertFingerprint: "ab:cd"})
		if err != nil {
			t.Fatal(err)
		}
		if x.PSKIdentity != "" || x.PSKKeyEnc != nil || x.CertCN != "urn:imei:2" || x.CertFingerprint != "ab:cd" {
			t.Errorf("x509 credential: %+v", x)
		}
		// A second x509 credential: no PSK identity, no collision on it.
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:imei:3", Kind: CredentialX509, CertCN: "urn:imei:3"}); err != nil {
			t.Errorf("second x509 credential: %v", err)
		}
		list, err := s.ListCredentials(ctx)
		if err != nil || len(list) != 3 || list[0].EndpointName != "urn:imei:1" || list[2].EndpointName != "urn:imei:3" {
			t.Errorf("ListCredentials = %+v, %v", list, err)
		}
		for name, c := range map[string]Credential{
			"same endpoint":     {EndpointName: "urn:imei:1", Kind: CredentialX509},
			"same PSK identity": {EndpointName: "urn:imei:9", Kind: CredentialPSK, PSKIdentity: "id-1", PSKKeyEnc: []byte{1}},
		} {
			if _, err := s.CreateCredential(ctx, c); !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v", name, err)
			}
		}
		for name, c := range map[string]Credential{
			"psk without key":      {EndpointName: "e", Kind: CredentialPSK, PSKIdentity: "i"},
			"psk without identity": {EndpointName: "e", Kind: CredentialPSK, PSKKeyEnc: []byte{1}},
			"x509 with key":        {EndpointName: "e", Kind: CredentialX509, PSKKeyEnc: []byte{1}},
			"unknown kind":         {EndpointName: "e", Kind: "rpk"},
			"no endpoint":          {Kind: CredentialX509},
		} {
			if _, err := s.CreateCredential(ctx, c); err == nil {
				t.Errorf("%s accepted", name)
			}
		}
		if err := s.DeleteCredential(ctx, "urn:imei:1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetCredentialByPSKIdentity(ctx, "id-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted credential by identity: %v", err)
		}
		if _, err := s.GetCredentialByEndpoint(ctx, "urn:imei:1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted credential: %v", err)
		}
		if err := s.DeleteCredential(ctx, "urn:imei:1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}

// TestCredentialTx adds credentials and their audit entries in one
// transaction: a conflict on the last one leaves none of them stored.
func TestCredentialTx(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:imei:0", Kind: CredentialPSK,
			PSKIdentity: "taken", PSKKeyEnc: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		add := func(idents ...string) error {
			return s.WithTx(ctx, func(tx *sql.Tx) error {
				for i, id := range idents {
					ep := fmt.Sprintf("urn:imei:%d", i+1)
					if _, err := s.CreateCredentialTx(ctx, tx, Credential{EndpointName: ep, Kind: CredentialPSK,
						PSKIdentity: id, PSKKeyEnc: []byte{2}}); err != nil {
						return err
					}
					if _, err := s.AppendAuditTx(ctx, tx, AuditEntry{Actor: "test", Action: "credential.add", Target: ep}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := add("a", "b", "taken"); !errors.Is(err, ErrConflict) {
			t.Fatalf("conflicting batch: %v", err)
		}
		list, _ := s.ListCredentials(ctx)
		audit, _ := s.ListAudit(ctx, AuditFilter{})
		if len(list) != 1 || len(audit) != 0 {
			t.Fatalf("after the rolled-back batch: %d credentials, %d audit entries; want 1 and 0", len(list), len(audit))
		}
		if err := add("a", "b"); err != nil {
			t.Fatal(err)
		}
		list, _ = s.ListCredentials(ctx)
		audit, _ = s.ListAudit(ctx, AuditFilter{})
		if len(list) != 3 || len(audit) != 2 {
			t.Fatalf("after the batch: %d credentials, %d audit entries; want 3 and 2", len(list), len(audit))
		}
	})
}
