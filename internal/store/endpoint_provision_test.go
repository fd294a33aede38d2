package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestProvisionAndKnownEndpoints(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mustEndpoint(t, s, "urn:dev:registered")
		n, err := s.ProvisionEndpoints(ctx, []string{"urn:dev:new", "urn:dev:registered"}, AuditEntry{Actor: "admin"})
		if err != nil || n != 1 {
			t.Fatalf("provisioned: %d new, %v; want 1", n, err)
		}
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:dev:psk", Kind: CredentialPSK,
			PSKIdentity: "id", PSKKeyEnc: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]bool{
			"urn:dev:new": true, "urn:dev:registered": true, "urn:dev:psk": true, "urn:dev:stranger": false,
		} {
			if got, err := s.IsKnownEndpoint(ctx, name); err != nil || got != want {
				t.Errorf("IsKnownEndpoint(%q) = %v, %v; want %v", name, got, err, want)
			}
		}
		if got, err := s.GetEndpoint(ctx, "urn:dev:new"); err != nil || got.Online {
			t.Errorf("provisioned endpoint: %+v, %v; want it offline", got, err)
		}
		entries, err := s.ListAudit(ctx, AuditFilter{})
		n = 0
		for _, e := range entries {
			if e.Action == "endpoint.provision" && e.Actor == "admin" {
				n++
			}
		}
		if err != nil || n != 2 {
			t.Errorf("audit: %d provision entries, %v; want 2", n, err)
		}
	})
}

func TestRemoveStaleEndpoints(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		offline := func(name string) Endpoint {
			t.Helper()
			e := mustEndpoint(t, s, name)
			if err := s.SetEndpointOffline(ctx, e.ID); err != nil {
				t.Fatal(err)
			}
			return e
		}
		history := func(e Endpoint, p lwm2m.Path) {
			t.Helper()
			if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: e.ID, Path: p,
				Value: lwm2m.Time(clk.Now()), ReceivedAt: clk.Now()}}); err != nil {
				t.Fatal(err)
			}
		}
		junk := offline("urn:junk")
		history(junk, lwm2m.NewPath(10240, 0, 0))
		history(junk, lwm2m.NewPath(10240, 0, 1))
		data := offline("urn:data")
		history(data, lwm2m.NewPath(3303, 0, 5700))
		offline("urn:prov")
		if _, err := s.ProvisionEndpoints(ctx, []string{"urn:prov"}, AuditEntry{}); err != nil {
			t.Fatal(err)
		}
		offline("urn:psk")
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:psk", Kind: CredentialPSK,
			PSKIdentity: "id", PSKKeyEnc: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		mustEndpoint(t, s, "urn:online")

		if got, err := s.RemoveStaleEndpoints(ctx, clk.Now(), 100); err != nil || len(got) != 0 {
			t.Fatalf("removed %v, %v before the retention passed", got, err)
		}
		clk.Advance(time.Hour)
		offline("urn:junk-later") // heard from within the retention
		got, err := s.RemoveStaleEndpoints(ctx, clk.Now().Add(-time.Minute), 100)
		if err != nil || !slices.Equal(got, []string{"urn:junk"}) {
			t.Fatalf("removed %v, %v; want only urn:junk", got, err)
		}
		if _, err := s.GetEndpoint(ctx, "urn:junk"); err == nil {
			t.Error("urn:junk still stored")
		}
		if got, err := s.RemoveStaleEndpoints(ctx, clk.Now().Add(time.Minute), 1); err != nil || len(got) != 1 {
			t.Errorf("limit 1: removed %v, %v", got, err)
		}
	})
}
