package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
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
		wantU := FirmwareUpdate{ID: u.ID, EndpointID: e.ID, FirmwareID: f.ID, Version: "2.1.0", State: "queued", Active: true,
			OperationIDs: []int64{7, 9}, Detail: []byte("{}"), Rev: 1, StateAt: t0, CreatedAt: t0, UpdatedAt: t0}
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
		u.Method, u.Protocol, u.PackageURI, u.ResultCode, u.Error = "pull", "coap", "coap://h/fw/2.1.0.bin", 1, "none"
		u.Detail, u.StateAt, u.Deadline, u.FinishedAt = []byte(`{"a":1}`), now, now.Add(time.Hour), now
		done, err := s.UpdateFirmwareUpdate(ctx, u)
		wantU.State, wantU.Result, wantU.Active, wantU.OperationIDs, wantU.UpdatedAt = "updated", "1", false, []int64{7, 9, 11}, now
		wantU.Method, wantU.Protocol, wantU.PackageURI, wantU.ResultCode, wantU.Error = "pull", "coap", "coap://h/fw/2.1.0.bin", 1, "none"
		wantU.Detail, wantU.StateAt, wantU.Deadline, wantU.FinishedAt, wantU.Rev = []byte(`{"a":1}`), now, now.Add(time.Hour), now, 2
		if err != nil || !reflect.DeepEqual(done, wantU) {
			t.Fatalf("UpdateFirmwareUpdate = %+v, %v", done, err)
		}
		// A write over a revision that is gone is refused.
		if _, err := s.UpdateFirmwareUpdate(ctx, u); !errors.Is(err, ErrConflict) {
			t.Errorf("write over an old revision: %v", err)
		}
		u.Rev, u.Detail = done.Rev, []byte("{not json")
		if _, err := s.UpdateFirmwareUpdate(ctx, u); err == nil {
			t.Error("detail that is not JSON accepted")
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
			"version":  {ids(FirmwareUpdateFilter{Version: "2.2.0"}), []int64{u2.ID}},
			"finished": {ids(FirmwareUpdateFilter{FinishedOnly: true}), []int64{u.ID}},
			"offset":   {ids(FirmwareUpdateFilter{Offset: 1}), []int64{u.ID}},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: %v, want %v", name, c.got, c.want)
			}
		}

		if got, err := s.ActiveFirmwareEndpoints(ctx); err != nil || !reflect.DeepEqual(got, []int64{e.ID}) {
			t.Errorf("ActiveFirmwareEndpoints = %v, %v", got, err)
		}
		// The image of a finished update may go; the update keeps its version.
		if err := s.DeleteFirmware(ctx, f.ID); err != nil {
			t.Fatalf("delete the image of a finished update: %v", err)
		}
		if got, err := s.GetFirmwareUpdate(ctx, u.ID); err != nil || got.FirmwareID != 0 || got.Version != "2.1.0" {
			t.Errorf("update after its image was removed: %+v, %v", got, err)
		}
		if err := s.DeleteFirmware(ctx, f2.ID); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "active") {
			t.Errorf("delete the image of an active update: %v", err)
		}
		if err := s.DeleteFirmware(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete a missing image: %v", err)
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
		if _, err := s.GetFirmware(ctx, f.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted image: %v", err)
		}
		if err := s.DeleteFirmware(ctx, f.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete image twice: %v", err)
		}
	})
}

// Migration 13 keeps the updates of earlier versions with their image's
// version, lets an image of a finished update go, and goes down again
// (dropping the updates whose image is gone).
func TestMigrateFirmwareUpdateMachine(t *testing.T) {
	ctx := context.Background()
	forEachEngineWith(t, false, func(t *testing.T, s *Store) {
		if _, err := s.goose.UpTo(ctx, 12); err != nil {
			t.Fatal(err)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.WriteDB().ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec("INSERT INTO endpoint (id, name, created_at, updated_at) VALUES (1, 'ep', 0, 0)")
		exec("INSERT INTO firmware (id, version, filename, size, sha256, created_at) VALUES (1, '1.0', '1.0.bin', 1, 'x', 0), (2, '2.0', '2.0.bin', 1, 'x', 0)")
		exec("INSERT INTO firmware_update (id, endpoint_id, firmware_id, state, active, created_at, updated_at) VALUES (1, 1, 1, 'succeeded', FALSE, 5, 7), (2, 1, 2, 'downloading', TRUE, 8, 9)")
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		u, err := s.GetFirmwareUpdate(ctx, 1)
		if err != nil || u.Version != "1.0" || u.FirmwareID != 1 || u.StateAt.UnixMilli() != 7 || u.Rev != 0 || string(u.Detail) != "{}" {
			t.Fatalf("carried over: %+v, %v", u, err)
		}
		if err := s.DeleteFirmware(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFirmware(ctx, 2); !errors.Is(err, ErrConflict) {
			t.Errorf("delete the image of an active update: %v", err)
		}
		if _, err := s.goose.DownTo(ctx, 12); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM firmware_update").Scan(&n); err != nil || n != 1 {
			t.Errorf("after down: %d updates, %v; want the one whose image is there", n, err)
		}
		if _, err := s.WriteDB().ExecContext(ctx, "INSERT INTO firmware_update (endpoint_id, state, created_at, updated_at) VALUES (1, 'x', 0, 0)"); err == nil {
			t.Error("after down: an update without image accepted")
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
