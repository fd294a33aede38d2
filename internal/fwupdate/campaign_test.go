package fwupdate

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// finish ends update id as state, as a step would.
func (e *env) finish(t *testing.T, id int64, state string) {
	t.Helper()
	up, err := e.st.GetFirmwareUpdate(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	up.State, up.Active, up.Error = state, false, "boom"
	if _, err := e.st.UpdateFirmwareUpdate(context.Background(), up); err != nil {
		t.Fatal(err)
	}
}

func (e *env) devices(t *testing.T, id int64) map[string]store.CampaignDevice {
	t.Helper()
	ds, err := e.st.CampaignDevices(context.Background(), id, store.CampaignDeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.CampaignDevice{}
	for _, d := range ds {
		out[d.Endpoint] = d
	}
	return out
}

func (e *env) summary(t *testing.T, id int64) map[string]int {
	t.Helper()
	_, sum, err := e.u.GetCampaign(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestCampaign: the start rate and the cap hold, a failed update is
// retried after the delay until the retries run out, pause stops starts,
// and the campaign finishes when no device is left.
func TestCampaign(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, name := range []string{"urn:c:a", "urn:c:b", "urn:c:c", "urn:c:d"} {
			e.register(t, name, "</3/0>,</5/0>")
		}
		e.register(t, "urn:c:bare", "</3/0>")
		if _, err := e.st.CreateFirmware(ctx, store.Firmware{Version: "2.0", Filename: "2.0.bin", Size: 1, SHA256: "x"}); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			r    CampaignRequest
			kind ErrorKind
		}{
			"unknown image":    {CampaignRequest{Version: "3.0"}, NotFound},
			"unknown endpoint": {CampaignRequest{Version: "2.0", Endpoints: []string{"urn:c:a", "urn:none"}}, NotFound},
			"no object 5":      {CampaignRequest{Version: "2.0", Endpoints: []string{"urn:c:bare"}}, Conflict},
			"nothing matches":  {CampaignRequest{Version: "2.0", Filter: CampaignFilter{FirmwareVersion: "0.9"}}, Invalid},
			"bad method":       {CampaignRequest{Version: "2.0", Method: "mail"}, Invalid},
		} {
			var fe *Error
			if _, err := e.u.CreateCampaign(ctx, c.r); !errors.As(err, &fe) || fe.Kind != c.kind {
				t.Errorf("%s: %v, want an *Error of kind %d", name, err, c.kind)
			}
		}
		// The filter: devices on 1.0 (d reports v1.0, leniently the same),
		// not those on the target already, never those without object 5.
		vals := []store.ResourceValue{
			{EndpointID: e.endpointID(t, "urn:c:a"), Path: pathVersion, Value: lwm2m.String("1.0")},
			{EndpointID: e.endpointID(t, "urn:c:b"), Path: pathVersion, Value: lwm2m.String("2.0")},
			{EndpointID: e.endpointID(t, "urn:c:d"), Path: pathVersion, Value: lwm2m.String("v1.0")},
		}
		if err := e.st.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		byFilter, err := e.u.CreateCampaign(ctx, CampaignRequest{Version: "2.0", Filter: CampaignFilter{FirmwareVersion: "1.0"}})
		if err != nil {
			t.Fatal(err)
		}
		if ds := e.devices(t, byFilter.ID); len(ds) != 2 || ds["urn:c:a"].State != DeviceWaiting || ds["urn:c:d"].State != DeviceWaiting {
			t.Fatalf("chosen by filter: %v", ds)
		}
		if _, err := e.u.CancelCampaign(ctx, byFilter.ID); err != nil {
			t.Fatal(err)
		}
		if sum := e.summary(t, byFilter.ID); sum[DeviceCancelled] != 2 {
			t.Fatalf("cancelled campaign: %v", sum)
		}

		c, err := e.u.CreateCampaign(ctx, CampaignRequest{Version: "2.0", Endpoints: []string{"urn:c:a", "urn:c:b", "urn:c:c"},
			Concurrency: 2, RatePerMinute: 60, MaxRetries: 1, RetryDelay: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		// 60 a minute: one a second.
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if sum := e.summary(t, c.ID); !maps.Equal(sum, map[string]int{DeviceRunning: 1, DeviceWaiting: 2}) {
			t.Fatalf("first tick: %v", sum)
		}
		e.clk.advance(time.Second)
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if sum := e.summary(t, c.ID); !maps.Equal(sum, map[string]int{DeviceRunning: 2, DeviceWaiting: 1}) {
			t.Fatalf("a second later: %v", sum)
		}
		ds := e.devices(t, c.ID)
		up, err := e.st.GetFirmwareUpdate(ctx, ds["urn:c:a"].UpdateID)
		if err != nil || up.CampaignID != c.ID || !up.Active || up.Version != "2.0" {
			t.Fatalf("update of a campaign: %+v, %v", up, err)
		}
		// The cap: two running, none starts.
		e.clk.advance(time.Second)
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if sum := e.summary(t, c.ID); sum[DeviceRunning] != 2 {
			t.Fatalf("at the cap: %v", sum)
		}
		// a succeeds, b fails: b waits a minute for its retry, c starts.
		e.finish(t, ds["urn:c:a"].UpdateID, StateSucceeded)
		e.finish(t, ds["urn:c:b"].UpdateID, StateFailed)
		e.clk.advance(time.Second)
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		ds = e.devices(t, c.ID)
		if ds["urn:c:a"].State != DeviceSucceeded || ds["urn:c:b"].State != DeviceWaiting || ds["urn:c:b"].Error != "boom" ||
			ds["urn:c:c"].State != DeviceRunning {
			t.Fatalf("after one success and one failure: %v", ds)
		}
		// Paused: b's retry is due, but nothing starts.
		if _, err := e.u.PauseCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		var fe *Error
		if _, err := e.u.PauseCampaign(ctx, c.ID); !errors.As(err, &fe) || fe.Kind != Conflict {
			t.Errorf("pause twice: %v", err)
		}
		e.clk.advance(time.Minute)
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if d := e.devices(t, c.ID)["urn:c:b"]; d.State != DeviceWaiting {
			t.Fatalf("started while paused: %+v", d)
		}
		if _, err := e.u.ResumeCampaign(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		ds = e.devices(t, c.ID)
		if d := ds["urn:c:b"]; d.State != DeviceRunning || d.Attempts != 2 {
			t.Fatalf("retry: %+v", d)
		}
		// b fails again: no retry left. c succeeds: finished.
		e.finish(t, ds["urn:c:b"].UpdateID, StateFailed)
		e.finish(t, ds["urn:c:c"].UpdateID, StateSucceeded)
		if err := e.u.tick(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		got, sum, err := e.u.GetCampaign(ctx, c.ID)
		if err != nil || got.State != CampaignFinished || got.FinishedAt.IsZero() ||
			!maps.Equal(sum, map[string]int{DeviceSucceeded: 2, DeviceFailed: 1}) {
			t.Fatalf("finished: %+v %v %v", got, sum, err)
		}
		if _, err := e.u.CancelCampaign(ctx, c.ID); !errors.As(err, &fe) || fe.Kind != Conflict {
			t.Errorf("cancel a finished campaign: %v", err)
		}
	})
}

func (e *env) endpointID(t *testing.T, name string) int64 {
	t.Helper()
	ep, err := e.st.GetEndpoint(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ep.ID
}
