package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

func TestAccessScopes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		north, err := s.CreateSite(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		south, err := s.CreateSite(ctx, "south")
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]int64{}
		for _, n := range []string{"urn:n:1", "urn:n:2", "urn:s:1", "urn:x:1"} {
			ids[n] = mustEndpoint(t, s, n).ID
		}
		inNorth := auth.Scope{Sites: []int64{north.ID}}
		// Assignment: by prefix, by names, from a site; only within scope.
		if n, err := s.AssignEndpoints(ctx, Assignment{Prefix: "urn:n:"}, north.ID, auth.Everything); err != nil || n != 2 {
			t.Fatalf("assign by prefix: %d %v", n, err)
		}
		if n, err := s.AssignEndpoints(ctx, Assignment{Names: []string{"urn:s:1", "urn:none"}}, south.ID, auth.Everything); err != nil || n != 1 {
			t.Fatalf("assign by names: %d %v", n, err)
		}
		if n, err := s.AssignEndpoints(ctx, Assignment{Names: []string{"urn:s:1", "urn:x:1", "urn:n:1"}}, 0, inNorth); err != nil || n != 1 {
			t.Fatalf("assign within north: %d %v", n, err)
		}
		if n, err := s.AssignEndpoints(ctx, Assignment{FromSite: 0, FromSiteSet: true}, north.ID, auth.Everything); err != nil || n != 2 {
			t.Fatalf("assign the unassigned: %d %v", n, err)
		}
		if _, err := s.AssignEndpoints(ctx, Assignment{}, north.ID, auth.Everything); err == nil {
			t.Error("an assignment selecting nothing was accepted")
		}
		eps, total, err := s.ListEndpoints(ctx, EndpointFilter{Scope: &auth.Scope{Sites: []int64{south.ID}}})
		if err != nil || total != 1 || eps[0].Name != "urn:s:1" {
			t.Errorf("south's endpoints: %v %d %v", eps, total, err)
		}
		if _, total, _ := s.ListEndpoints(ctx, EndpointFilter{Scope: &auth.Scope{}}); total != 0 {
			t.Errorf("the zero scope listed %d", total)
		}
		// Campaigns: within a scope when all their devices are.
		f, err := s.CreateFirmware(ctx, Firmware{Version: "9.0", Filename: "9.0.bin", Size: 1, SHA256: "x"})
		if err != nil {
			t.Fatal(err)
		}
		campaign := func(devs ...int64) int64 {
			var c FirmwareCampaign
			err := s.WithTx(ctx, func(tx *sql.Tx) error {
				var err error
				c, err = s.CreateFirmwareCampaignTx(ctx, tx, FirmwareCampaign{FirmwareID: f.ID, Version: "9.0", State: "running",
					Concurrency: 1, RatePerMinute: 1, RetryDelay: time.Minute, Selection: []byte(`{}`), NextStartAt: t0}, devs, "waiting")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		northOnly := campaign(ids["urn:n:1"], ids["urn:n:2"])
		mixed := campaign(ids["urn:n:1"], ids["urn:s:1"])
		for _, c := range []struct {
			id   int64
			sc   auth.Scope
			want bool
		}{{northOnly, inNorth, true}, {mixed, inNorth, false}, {mixed, auth.Everything, true}, {northOnly, auth.Scope{}, false}} {
			if got, err := s.CampaignWithin(ctx, c.id, c.sc); err != nil || got != c.want {
				t.Errorf("campaign %d within %+v: %v %v, want %v", c.id, c.sc, got, err, c.want)
			}
		}
		if _, err := s.CampaignWithin(ctx, 999, inNorth); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown campaign: %v", err)
		}
		cs, err := s.ListFirmwareCampaignsWithin(ctx, inNorth, "", 10, 0)
		if err != nil || len(cs) != 1 || cs[0].ID != northOnly {
			t.Errorf("north's campaigns: %+v %v", cs, err)
		}
		if cs, err := s.ListFirmwareCampaignsWithin(ctx, auth.Everything, "running", 10, 0); err != nil || len(cs) != 2 {
			t.Errorf("all running campaigns: %d %v", len(cs), err)
		}
		ups, err := s.ListFirmwareUpdates(ctx, FirmwareUpdateFilter{Scope: &inNorth})
		if err != nil || len(ups) != 0 {
			t.Errorf("updates in north: %v %v", ups, err)
		}
	})
}

func TestAuditFilterByAction(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, a := range []string{"login", "site.create", "login"} {
			if _, err := s.AppendAudit(ctx, AuditEntry{Actor: "t", Action: a}); err != nil {
				t.Fatal(err)
			}
		}
		if es, err := s.ListAudit(ctx, AuditFilter{Action: "login"}); err != nil || len(es) != 2 {
			t.Errorf("login entries: %d %v", len(es), err)
		}
	})
}
