package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestFirmwareRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f, err := s.CreateFirmware(ctx, Firmware{Version: "2.1.0", Filename: "app-2.1.0.bin", Size: 412_345,
			SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
		if err != nil {
			t.Fatal(err)
		}
		want := Firmware{ID: f.ID, Version: "2.1.0", Filename: "app-2.1.0.bin", Size: 412_345,
			SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", CreatedAt: t0}
		if !reflect.DeepEqual(f, want) {
			t.Fatalf("created %+v", f)
		}
		if got, err := s.GetFirmware(ctx, f.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetFirmware = %+v, %v", got, err)
		}
		if got, err := s.GetFirmwareByVersion(ctx, "2.1.0"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetFirmwareByVersion = %+v, %v", got, err)
		}
		if _, err := s.CreateFirmware(ctx, Firmware{Version: "2.1.0", Filename: "other.bin"}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate version: %v", err)
		}
		if _, err := s.CreateFirmware(ctx, Firmware{Filename: "x.bin"}); err == nil {
			t.Error("firmware without version accepted")
		}
		f2, _ := s.CreateFirmware(ctx, Firmware{Version: "2.2.0", Filename: "app-2.2.0.bin", Size: 1})
		list, err := s.ListFirmware(ctx)
		if err != nil || len(list) != 2 || list[0].ID != f2.ID {
			t.Errorf("ListFirmware = %+v, %v", list, err)
		}

		e := mustEndpoint(t, s, "urn:dev:fw")
		u, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: e.ID, FirmwareID: f.ID, State: "queued", OperationIDs: []int64{7, 9}})
		if err != nil {
			t.Fatal(err)
		}
		wantU := FirmwareUpdate{ID: u.ID, EndpointID: e.ID, FirmwareID: f.ID, State: "queued", Active: true,
			OperationIDs: []int64{7, 9}, CreatedAt: t0, UpdatedAt: t0}
		if !reflect.DeepEqual(u, wantU) {
			t.Fatalf("created update %+v", u)
		}
		if got, err := s.GetFirmwareUpdate(ctx, u.ID); err != nil || !reflect.DeepEqual(got, wantU) {
			t.Errorf("GetFirmwareUpdate = %+v, %v", got, err)
		}
		if got, err := s.ActiveFirmwareUpdate(ctx, e.ID); err != nil || !reflect.DeepEqual(got, wantU) {
			t.Errorf("ActiveFirmwareUpdate = %+v, %v", got, err)
		}
		// One active update per endpoint.
		if _, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: e.ID, FirmwareID: f2.ID, State: "queued"}); !errors.Is(err, ErrConflict) {
			t.Errorf("second active update: %v", err)
		}
		// An image in use cannot be deleted.
		if err := s.DeleteFirmware(ctx, f.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("delete image in use: %v", err)
		}

		now := clockOf(s).Advance(time.Minute)
		u.State, u.Result, u.Active, u.OperationIDs = "updated", "1", false, append(u.OperationIDs, 11)
		done, err := s.UpdateFirmwareUpdate(ctx, u)
		wantU.State, wantU.Result, wantU.Active, wantU.OperationIDs, wantU.UpdatedAt = "updated", "1", false, []int64{7, 9, 11}, now
		if err != nil || !reflect.DeepEqual(done, wantU) {
			t.Fatalf("UpdateFirmwareUpdate = %+v, %v", done, err)
		}
		if _, err := s.ActiveFirmwareUpdate(ctx, e.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("active update after finishing: %v", err)
		}
		u2, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: e.ID, FirmwareID: f2.ID, State: "queued"})
		if err != nil {
			t.Fatalf("new update after the first finished: %v", err)
		}
		if u2.OperationIDs == nil || len(u2.OperationIDs) != 0 {
			t.Errorf("update without operations: %#v", u2.OperationIDs)
		}
		done.Active = true
		if _, err := s.UpdateFirmwareUpdate(ctx, done); !errors.Is(err, ErrConflict) {
			t.Errorf("re-activating next to an active update: %v", err)
		}

		ids := func(f FirmwareUpdateFilter) []int64 {
			t.Helper()
			us, err := s.ListFirmwareUpdates(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, u := range us {
				out = append(out, u.ID)
			}
			return out
		}
		for name, c := range map[string]struct{ got, want []int64 }{
			"all":      {ids(FirmwareUpdateFilter{}), []int64{u2.ID, u.ID}},
			"endpoint": {ids(FirmwareUpdateFilter{EndpointID: e.ID, Limit: 1}), []int64{u2.ID}},
			"firmware": {ids(FirmwareUpdateFilter{FirmwareID: f.ID}), []int64{u.ID}},
			"active":   {ids(FirmwareUpdateFilter{ActiveOnly: true}), []int64{u2.ID}},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: %v, want %v", name, c.got, c.want)
			}
		}

		if _, err := s.CreateFirmwareUpdate(ctx, FirmwareUpdate{EndpointID: e.ID, FirmwareID: 999999, State: "queued"}); !errors.Is(err, ErrConflict) {
			t.Errorf("update to a missing image: %v", err)
		}
		if _, err := s.UpdateFirmwareUpdate(ctx, FirmwareUpdate{ID: 999999, State: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a missing update: %v", err)
		}
		if err := s.DeleteFirmwareUpdate(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetFirmwareUpdate(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted update: %v", err)
		}
		if err := s.DeleteFirmwareUpdate(ctx, u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete update twice: %v", err)
		}
		if err := s.DeleteFirmware(ctx, f.ID); err != nil {
			t.Errorf("delete unused image: %v", err)
		}
		if _, err := s.GetFirmware(ctx, f.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted image: %v", err)
		}
		if err := s.DeleteFirmware(ctx, f.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete image twice: %v", err)
		}
	})
}
