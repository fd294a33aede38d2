package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestOperationRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		e := mustEndpoint(t, s, "urn:dev:ops")
		u, err := s.CreateUser(ctx, "alice", "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		o, err := s.CreateOperation(ctx, Operation{
			EndpointID: e.ID, Kind: "write",
			Paths:    []lwm2m.Path{lwm2m.NewPath(1, 0, 1), lwm2m.NewPath(3, 0, 7, 1)},
			Payload:  json.RawMessage(`{"/1/0/1":{"type":"integer","value":300}}`),
			QueuedBy: u.ID,
		})
		if err != nil {
			t.Fatal(err)
		}
		want := Operation{
			ID: o.ID, EndpointID: e.ID, Kind: "write",
			Paths:   []lwm2m.Path{lwm2m.NewPath(1, 0, 1), lwm2m.NewPath(3, 0, 7, 1)},
			Payload: json.RawMessage(`{"/1/0/1":{"type":"integer","value":300}}`),
			Status:  OperationQueued, MaxAttempts: DefaultMaxAttempts, QueuedBy: u.ID,
			CreatedAt: t0, UpdatedAt: t0,
		}
		if !reflect.DeepEqual(o, want) {
			t.Fatalf("created\n%+v\nwant\n%+v", o, want)
		}
		if got, err := s.GetOperation(ctx, o.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetOperation = %+v, %v", got, err)
		}

		// A worker claims it: QUEUED -> SENDING, once.
		now := clk.Advance(time.Second)
		claim := OperationUpdate{Status: OperationSending, Attempts: 1, LastAttemptAt: now}
		o2, err := s.UpdateOperation(ctx, o.ID, claim, OperationQueued)
		if err != nil {
			t.Fatal(err)
		}
		want.Status, want.Attempts, want.LastAttemptAt, want.UpdatedAt = OperationSending, 1, now, now
		if !reflect.DeepEqual(o2, want) {
			t.Fatalf("claimed\n%+v\nwant\n%+v", o2, want)
		}
		if _, err := s.UpdateOperation(ctx, o.ID, claim, OperationQueued); !errors.Is(err, ErrConflict) {
			t.Errorf("second claim: %v", err)
		}
		// Cancelling is only allowed while QUEUED.
		if _, err := s.CancelOperation(ctx, o.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("cancel while SENDING: %v", err)
		}
		// The device answers.
		now = clk.Advance(time.Second)
		done, err := s.UpdateOperation(ctx, o.ID, OperationUpdate{
			Status: OperationConfirmed, Attempts: 1, LastAttemptAt: want.LastAttemptAt,
			ResultCode: "2.04", Response: json.RawMessage(`{"ok":true}`),
		}, OperationSending)
		if err != nil {
			t.Fatal(err)
		}
		want.Status, want.ResultCode, want.Response, want.UpdatedAt = OperationConfirmed, "2.04", json.RawMessage(`{"ok":true}`), now
		if !reflect.DeepEqual(done, want) {
			t.Fatalf("confirmed\n%+v\nwant\n%+v", done, want)
		}

		// Cancel a queued one.
		q, err := s.CreateOperation(ctx, Operation{EndpointID: e.ID, Kind: "execute", Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 4)}, MaxAttempts: 5})
		if err != nil {
			t.Fatal(err)
		}
		if q.MaxAttempts != 5 || q.Payload != nil || q.QueuedBy != 0 {
			t.Errorf("second operation: %+v", q)
		}
		c, err := s.CancelOperation(ctx, q.ID)
		if err != nil || c.Status != OperationCancelled {
			t.Fatalf("cancel: %+v, %v", c, err)
		}
		if _, err := s.CancelOperation(ctx, q.ID); !errors.Is(err, ErrConflict) {
			t.Errorf("cancel twice: %v", err)
		}

		// Listing.
		r, _ := s.CreateOperation(ctx, Operation{EndpointID: e.ID, Kind: "read"})
		if len(r.Paths) != 0 || r.Paths == nil {
			t.Errorf("operation without paths: %#v", r.Paths)
		}
		other := mustEndpoint(t, s, "urn:dev:other")
		ro, _ := s.CreateOperation(ctx, Operation{EndpointID: other.ID, Kind: "read"})
		ids := func(ops []Operation, err error) []int64 {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, o := range ops {
				out = append(out, o.ID)
			}
			return out
		}
		for name, c := range map[string]struct {
			got, want []int64
		}{
			"all of endpoint":  {ids(s.ListOperations(ctx, e.ID, OperationFilter{})), []int64{o.ID, q.ID, r.ID}},
			"queued":           {ids(s.ListOperations(ctx, e.ID, OperationFilter{Status: []OperationStatus{OperationQueued}})), []int64{r.ID}},
			"finished, desc":   {ids(s.ListOperations(ctx, e.ID, OperationFilter{Status: []OperationStatus{OperationConfirmed, OperationCancelled}, Desc: true})), []int64{q.ID, o.ID}},
			"page":             {ids(s.ListOperations(ctx, e.ID, OperationFilter{Limit: 1, Offset: 1})), []int64{q.ID}},
			"all endpoints":    {ids(s.ListOperations(ctx, 0, OperationFilter{Status: []OperationStatus{OperationQueued}})), []int64{r.ID, ro.ID}},
			"endpoint w/o ops": {ids(s.ListOperations(ctx, 999999, OperationFilter{})), nil},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s: %v, want %v", name, c.got, c.want)
			}
		}

		// Bad input and missing rows.
		if _, err := s.CreateOperation(ctx, Operation{EndpointID: e.ID, Kind: "write", Payload: json.RawMessage(`{bad`)}); err == nil {
			t.Error("invalid JSON payload accepted")
		}
		if _, err := s.CreateOperation(ctx, Operation{EndpointID: e.ID}); err == nil {
			t.Error("operation without kind accepted")
		}
		if _, err := s.CreateOperation(ctx, Operation{EndpointID: 999999, Kind: "read"}); !errors.Is(err, ErrConflict) {
			t.Errorf("operation for a missing endpoint: %v", err)
		}
		if _, err := s.UpdateOperation(ctx, r.ID, OperationUpdate{Status: "DONE"}); err == nil {
			t.Error("invalid status accepted")
		}
		if _, err := s.UpdateOperation(ctx, r.ID, OperationUpdate{Status: OperationFailed, Response: json.RawMessage(`[`)}); err == nil {
			t.Error("invalid JSON response accepted")
		}
		if _, err := s.GetOperation(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("get missing: %v", err)
		}
		if _, err := s.UpdateOperation(ctx, 999999, OperationUpdate{Status: OperationFailed}); !errors.Is(err, ErrNotFound) {
			t.Errorf("update missing: %v", err)
		}
		if _, err := s.UpdateOperation(ctx, 999999, OperationUpdate{Status: OperationSending}, OperationQueued); !errors.Is(err, ErrNotFound) {
			t.Errorf("claim missing: %v", err)
		}
		if _, err := s.CancelOperation(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancel missing: %v", err)
		}

		// Deleting the user keeps its operations, without a user.
		if err := s.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetOperation(ctx, o.ID); got.QueuedBy != 0 {
			t.Errorf("queued_by after user deletion: %d", got.QueuedBy)
		}
		if err := s.DeleteOperation(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOperation(ctx, o.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}
