package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestFirmwareCampaignRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f, err := s.CreateFirmware(ctx, Firmware{Version: "9.0", Filename: "9.0.bin", Size: 1, SHA256: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, name := range []string{"urn:c:a", "urn:c:b", "urn:c:c"} {
			ids = append(ids, mustEndpoint(t, s, name).ID)
		}
		var c FirmwareCampaign
		err = s.WithTx(ctx, func(tx *sql.Tx) error {
			var err error
			c, err = s.CreateFirmwareCampaignTx(ctx, tx, FirmwareCampaign{Name: "roll", FirmwareID: f.ID, Version: "9.0",
				State: "running", Concurrency: 2, RatePerMinute: 100, MaxRetries: 1, RetryDelay: time.Minute,
				Selection: []byte(`{"all":true}`), NextStartAt: t0}, ids, "waiting")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := FirmwareCampaign{ID: c.ID, Name: "roll", FirmwareID: f.ID, Version: "9.0", State: "running", Concurrency: 2,
			RatePerMinute: 100, MaxRetries: 1, RetryDelay: time.Minute, Selection: []byte(`{"all":true}`), NextStartAt: t0,
			CreatedAt: t0, UpdatedAt: t0}
		if got, err := s.GetFirmwareCampaign(ctx, c.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetFirmwareCampaign = %+v, %v\nwant %+v", got, err, want)
		}
		if err := s.DeleteFirmware(ctx, f.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("delete the image of a running campaign: %v", err)
		}
		devs, err := s.CampaignDevices(ctx, c.ID, CampaignDeviceFilter{States: []string{"waiting"}, DueBy: t0})
		if err != nil || len(devs) != 3 || devs[0].Endpoint != "urn:c:a" || devs[0].State != "waiting" {
			t.Fatalf("CampaignDevices = %+v, %v", devs, err)
		}
		u, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: ids[0], FirmwareID: f.ID, State: "pending", CampaignID: c.ID})
		if err != nil || u.CampaignID != c.ID {
			t.Fatalf("update of the campaign: %+v, %v", u, err)
		}
		d := devs[0]
		d.State, d.Attempts, d.UpdateID, d.Error, d.NextTryAt = "running", 1, u.ID, "e", t0.Add(time.Hour)
		if err := s.UpdateCampaignDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.CampaignDevices(ctx, c.ID, CampaignDeviceFilter{States: []string{"running"}}); len(got) != 1 ||
			got[0].UpdateID != u.ID || got[0].Attempts != 1 || !got[0].NextTryAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("running devices: %+v", got)
		}
		if got, _ := s.CampaignDevices(ctx, c.ID, CampaignDeviceFilter{DueBy: t0}); len(got) != 2 {
			t.Errorf("devices due: %+v", got)
		}
		if ok, err := s.ClaimCampaignDevice(ctx, c.ID, ids[1], "waiting", "claimed"); err != nil || !ok {
			t.Errorf("claim a waiting device: %v, %v", ok, err)
		}
		if ok, err := s.ClaimCampaignDevice(ctx, c.ID, ids[1], "waiting", "claimed"); err != nil || ok {
			t.Errorf("claim it again: %v, %v", ok, err)
		}
		if ok, _ := s.ClaimCampaignDevice(ctx, c.ID, ids[1], "claimed", "waiting"); !ok {
			t.Error("give it back")
		}
		if n, err := s.SetCampaignDevicesState(ctx, c.ID, "waiting", "cancelled"); err != nil || n != 2 {
			t.Errorf("SetCampaignDevicesState = %d, %v", n, err)
		}
		if sum, err := s.CampaignSummary(ctx, c.ID); err != nil || !reflect.DeepEqual(sum, map[string]int{"running": 1, "cancelled": 2}) {
			t.Errorf("CampaignSummary = %v, %v", sum, err)
		}
		c.State, c.FinishedAt = "paused", t0
		if got, err := s.UpdateFirmwareCampaign(ctx, c, "running"); err != nil || got.State != "paused" || !got.FinishedAt.Equal(t0) {
			t.Errorf("UpdateFirmwareCampaign = %+v, %v", got, err)
		}
		if _, err := s.UpdateFirmwareCampaign(ctx, c, "running"); !errors.Is(err, ErrConflict) {
			t.Errorf("update from a state it is not in: %v", err)
		}
		if _, err := s.UpdateFirmwareCampaign(ctx, FirmwareCampaign{ID: 999999, State: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a missing campaign: %v", err)
		}
		if list, err := s.ListFirmwareCampaigns(ctx, "paused", 0, 0); err != nil || len(list) != 1 {
			t.Errorf("ListFirmwareCampaigns = %+v, %v", list, err)
		}
		if list, _ := s.ListFirmwareCampaigns(ctx, "running", 0, 0); len(list) != 0 {
			t.Errorf("running campaigns: %+v", list)
		}
		if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: ids[1], Path: lwm2m.NewPath(3, 0, 3), Value: lwm2m.String("8.0")}}); err != nil {
			t.Fatal(err)
		}
		if v, err := s.LatestFirmwareVersions(ctx); err != nil || !reflect.DeepEqual(v, map[int64]string{ids[1]: "8.0"}) {
			t.Errorf("LatestFirmwareVersions = %v, %v", v, err)
		}
	})
}
