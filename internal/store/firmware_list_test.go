package store

import (
	"context"
	"database/sql"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
)

func TestFirmwareListsInScope(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b, c, north, _ := scopedFleet(t, s)
		f, err := s.CreateFirmware(ctx, Firmware{Version: "2.0", Filename: "2.0.bin", Size: 1, SHA256: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var camp FirmwareCampaign
		if err := s.WithTx(ctx, func(tx *sql.Tx) error {
			camp, err = s.CreateFirmwareCampaignTx(ctx, tx, FirmwareCampaign{Name: "all", FirmwareID: f.ID, Version: "2.0",
				State: "running", Concurrency: 1, RatePerMinute: 1, NextStartAt: t0}, []int64{a.ID, b.ID, c.ID}, "waiting")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var other FirmwareCampaign
		if err := s.WithTx(ctx, func(tx *sql.Tx) error {
			other, err = s.CreateFirmwareCampaignTx(ctx, tx, FirmwareCampaign{Name: "b only", FirmwareID: f.ID, Version: "2.0",
				State: "running", Concurrency: 1, RatePerMinute: 1, NextStartAt: t0}, []int64{b.ID}, "waiting")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, "starter", "x", false)
		if err != nil {
			t.Fatal(err)
		}
		ua, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: a.ID, FirmwareID: f.ID, State: "pending", CampaignID: camp.ID, CreatedBy: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		ub, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: b.ID, FirmwareID: f.ID, State: "pending"})
		if err != nil {
			t.Fatal(err)
		}
		northOnly := auth.Scope{Sites: []int64{north}}

		ups, more, err := s.PageFirmwareUpdates(ctx, FirmwareUpdatePage{Scope: auth.Everything, Limit: 1})
		if err != nil || !more || len(ups) != 1 || ups[0].ID != ub.ID || ups[0].Endpoint != "urn:b" || ups[0].Version != "2.0" {
			t.Errorf("first page = %+v %v %v", ups, more, err)
		}
		ups, more, err = s.PageFirmwareUpdates(ctx, FirmwareUpdatePage{Scope: auth.Everything, Before: ub.ID})
		if err != nil || more || len(ups) != 1 || ups[0].ID != ua.ID || ups[0].CreatedByName != "starter" {
			t.Errorf("second page = %+v %v %v", ups, more, err)
		}
		if ups, _, _ := s.PageFirmwareUpdates(ctx, FirmwareUpdatePage{Scope: northOnly}); len(ups) != 1 || ups[0].ID != ua.ID {
			t.Errorf("north = %+v", ups)
		}
		if ups, _, _ := s.PageFirmwareUpdates(ctx, FirmwareUpdatePage{Scope: auth.Everything, CampaignID: camp.ID}); len(ups) != 1 {
			t.Errorf("of the campaign = %+v", ups)
		}
		if ups, _, _ := s.PageFirmwareUpdates(ctx, FirmwareUpdatePage{}); len(ups) != 0 {
			t.Errorf("zero scope = %+v", ups)
		}

		cs, err := s.CampaignsIn(ctx, northOnly, 0)
		if err != nil || len(cs) != 1 || cs[0].ID != camp.ID {
			t.Errorf("campaigns in north = %+v, %v", cs, err)
		}
		if cs, _ := s.CampaignsIn(ctx, auth.Everything, 0); len(cs) != 2 || cs[0].ID != other.ID {
			t.Errorf("all campaigns = %+v", cs)
		}
		sum, outside, err := s.CampaignSummaryIn(ctx, camp.ID, northOnly)
		if err != nil || sum["waiting"] != 1 || len(sum) != 1 || outside != 2 {
			t.Errorf("north summary = %v %d %v", sum, outside, err)
		}
		if sum, outside, _ := s.CampaignSummaryIn(ctx, camp.ID, auth.Everything); sum["waiting"] != 3 || outside != 0 {
			t.Errorf("summary = %v %d", sum, outside)
		}
		devs, more, err := s.CampaignDevicesIn(ctx, camp.ID, auth.Everything, 0, 2)
		if err != nil || !more || len(devs) != 2 || devs[0].Endpoint != "urn:a" {
			t.Errorf("devices = %+v %v %v", devs, more, err)
		}
		devs, more, _ = s.CampaignDevicesIn(ctx, camp.ID, auth.Everything, devs[1].EndpointID, 2)
		if more || len(devs) != 1 || devs[0].Endpoint != "urn:c" {
			t.Errorf("devices after = %+v %v", devs, more)
		}
		if devs, _, _ := s.CampaignDevicesIn(ctx, camp.ID, northOnly, 0, 0); len(devs) != 1 || devs[0].Endpoint != "urn:a" {
			t.Errorf("north devices = %+v", devs)
		}
		idle, err := s.CreateFirmware(ctx, Firmware{Version: "3.0", Filename: "3.0.bin", Size: 1, SHA256: "y"})
		if err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{"first", "second"} {
			if _, err := s.AppendAudit(ctx, Actor{Name: who}.Entry("firmware.upload", "3.0", nil)); err != nil {
				t.Fatal(err)
			}
		}
		facts, err := s.FirmwareImageFacts(ctx)
		if err != nil || !facts[f.ID].InUse || facts[f.ID].UploadedBy != "" || facts[idle.ID] != (ImageFacts{UploadedBy: "second"}) {
			t.Errorf("image facts = %+v, %v", facts, err)
		}
	})
}
