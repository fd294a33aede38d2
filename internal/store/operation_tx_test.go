package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestCreateOperationTxCommitsWithTransaction(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:imei:tx")
		boom := errors.New("boom")
		var rolledBack Operation
		err := s.WithTx(ctx, func(tx *sql.Tx) error {
			o, err := s.CreateOperationTx(ctx, tx, Operation{EndpointID: e.ID, Kind: "write",
				Paths: []lwm2m.Path{lwm2m.MustParsePath("/1/0/1")}, Payload: []byte(`{"x":1}`)})
			if err != nil {
				return err
			}
			rolledBack = o
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("WithTx error: %v", err)
		}
		if _, err := s.GetOperation(ctx, rolledBack.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("rolled-back operation is there: %v", err)
		}

		var kept Operation
		if err := s.WithTx(ctx, func(tx *sql.Tx) error {
			kept, err = s.CreateOperationTx(ctx, tx, Operation{EndpointID: e.ID, Kind: "read",
				Paths: []lwm2m.Path{lwm2m.MustParsePath("/3/0")}, QueuedBy: 0})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetOperation(ctx, kept.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != OperationQueued || got.MaxAttempts != DefaultMaxAttempts || got.Kind != "read" ||
			len(got.Paths) != 1 || got.Paths[0].String() != "/3/0" || !got.CreatedAt.Equal(t0) {
			t.Fatalf("stored: %+v", got)
		}

		err = s.WithTx(ctx, func(tx *sql.Tx) error {
			_, err := s.CreateOperationTx(ctx, tx, Operation{EndpointID: e.ID})
			return err
		})
		if err == nil {
			t.Fatal("empty kind accepted")
		}
		err = s.WithTx(ctx, func(tx *sql.Tx) error {
			_, err := s.CreateOperationTx(ctx, tx, Operation{EndpointID: e.ID + 1000, Kind: "read"})
			return err
		})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("unknown endpoint: %v, want ErrConflict", err)
		}
	})
}

func queueOps(t *testing.T, s *Store, endpointID int64, n int) []Operation {
	t.Helper()
	var out []Operation
	for range n {
		o, err := s.CreateOperation(context.Background(), Operation{EndpointID: endpointID, Kind: "execute",
			Paths: []lwm2m.Path{lwm2m.MustParsePath("/3/0/4")}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func TestClaimOperationHeadOnly(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		e := mustEndpoint(t, s, "urn:imei:claim")
		other := mustEndpoint(t, s, "urn:imei:other")

		if _, res, err := s.ClaimOperation(ctx, e.ID, ClaimParams{}); err != nil || res != ClaimEmpty {
			t.Fatalf("empty queue: %v %v", res, err)
		}
		ops := queueOps(t, s, e.ID, 3)
		otherOps := queueOps(t, s, other.ID, 1)

		wake := clk.Advance(time.Second)
		got, res, err := s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake})
		if err != nil || res != ClaimClaimed || got.ID != ops[0].ID || got.Status != OperationSending || !got.LastAttemptAt.Equal(wake) {
			t.Fatalf("first claim: %v %+v %v", res, got, err)
		}
		// While the head is SENDING nothing else of this endpoint is
		// claimed; another endpoint is independent.
		if got, res, _ := s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake}); res != ClaimBusy || got.ID != ops[0].ID {
			t.Fatalf("claim while sending: %v %+v", res, got)
		}
		if got, res, _ := s.ClaimOperation(ctx, other.ID, ClaimParams{}); res != ClaimClaimed || got.ID != otherOps[0].ID {
			t.Fatalf("other endpoint: %v %+v", res, got)
		}

		// A failed attempt goes back to QUEUED and waits for a later wake.
		if _, err := s.UpdateOperation(ctx, ops[0].ID, OperationUpdate{Status: OperationQueued, Attempts: 1,
			LastAttemptAt: wake, ResultCode: "5.00"}, OperationSending); err != nil {
			t.Fatal(err)
		}
		if got, res, _ := s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake}); res != ClaimWaiting || got.ID != ops[0].ID {
			t.Fatalf("same wake: %v %+v", res, got)
		}
		// Sub-millisecond differences do not count as a new wake.
		if _, res, _ := s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake.Add(500 * time.Microsecond)}); res != ClaimWaiting {
			t.Fatalf("wake in the same millisecond: %v", res)
		}
		wake2 := clk.Advance(time.Minute)
		got, res, _ = s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake2})
		if res != ClaimClaimed || got.ID != ops[0].ID || got.Attempts != 1 || got.ResultCode != "5.00" {
			t.Fatalf("next wake: %v %+v", res, got)
		}
		if _, err := s.UpdateOperation(ctx, ops[0].ID, OperationUpdate{Status: OperationConfirmed, Attempts: 2,
			LastAttemptAt: wake2, ResultCode: "2.04"}, OperationSending); err != nil {
			t.Fatal(err)
		}
		// A cancelled operation leaves the queue: the next head is the one
		// after it.
		if _, err := s.CancelOperation(ctx, ops[1].ID); err != nil {
			t.Fatal(err)
		}
		if got, res, _ := s.ClaimOperation(ctx, e.ID, ClaimParams{WokeAt: wake2}); res != ClaimClaimed || got.ID != ops[2].ID {
			t.Fatalf("after cancel: %v %+v", res, got)
		}
		if _, err := s.CancelOperation(ctx, ops[2].ID); !errors.Is(err, ErrConflict) {
			t.Fatalf("cancel of a SENDING operation: %v", err)
		}
	})
}

func TestClaimOperationRecoversStaleSending(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		e := mustEndpoint(t, s, "urn:imei:stale")
		ops := queueOps(t, s, e.ID, 2)
		if _, err := s.UpdateOperation(ctx, ops[0].ID, OperationUpdate{Status: OperationQueued, Attempts: 2,
			LastAttemptAt: t0.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		// Claimed by a process that then dies.
		start := clk.Now()
		if _, res, _ := s.ClaimOperation(ctx, e.ID, ClaimParams{}); res != ClaimClaimed {
			t.Fatalf("claim: %v", res)
		}
		clk.Advance(10 * time.Second)
		p := ClaimParams{StaleBefore: start, StaleReason: "interrupted"}
		if _, res, _ := s.ClaimOperation(ctx, e.ID, p); res != ClaimBusy {
			t.Fatalf("fresh SENDING: %v", res)
		}
		p.StaleBefore = start.Add(time.Millisecond)
		got, res, err := s.ClaimOperation(ctx, e.ID, p)
		if err != nil || res != ClaimRecovered {
			t.Fatalf("stale SENDING: %v %v", res, err)
		}
		// It was the third attempt: FAILED, with the reason.
		if got.Status != OperationFailed || got.Attempts != 3 || got.ResultError != "interrupted" {
			t.Fatalf("recovered: %+v", got)
		}
		if got, res, _ := s.ClaimOperation(ctx, e.ID, p); res != ClaimClaimed || got.ID != ops[1].ID {
			t.Fatalf("after recovery: %v %+v", res, got)
		}
		clk.Advance(time.Minute)
		p.StaleBefore = clk.Now()
		got, res, _ = s.ClaimOperation(ctx, e.ID, p)
		if res != ClaimRecovered || got.Status != OperationQueued || got.Attempts != 1 {
			t.Fatalf("first attempt interrupted: %v %+v", res, got)
		}
	})
}

// TestClaimOperationConcurrent claims from many goroutines at once: every
// operation is claimed exactly once, in id order, and never two at a time.
func TestClaimOperationConcurrent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:imei:concurrent")
		ops := queueOps(t, s, e.ID, 20)
		var (
			mu       sync.Mutex
			order    []int64
			inFlight atomic.Int32
			wg       sync.WaitGroup
		)
		for range 6 {
			wg.Go(func() {
				for {
					got, res, err := s.ClaimOperation(ctx, e.ID, ClaimParams{})
					if err != nil {
						t.Error(err)
						return
					}
					switch res {
					case ClaimEmpty:
						return
					case ClaimBusy:
						continue
					case ClaimClaimed:
					default:
						t.Errorf("unexpected %v", res)
						return
					}
					// The counter is raised after the claim and lowered
					// before the outcome is stored, so it can only pass 1
					// if two claims overlap.
					if n := inFlight.Add(1); n > 1 {
						t.Errorf("%d operations SENDING at once", n)
					}
					mu.Lock()
					order = append(order, got.ID)
					mu.Unlock()
					inFlight.Add(-1)
					if _, err := s.UpdateOperation(ctx, got.ID, OperationUpdate{Status: OperationConfirmed, Attempts: 1},
						OperationSending); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		var want []int64
		for _, o := range ops {
			want = append(want, o.ID)
		}
		if !slices.Equal(order, want) {
			t.Fatalf("claim order %v, want %v", order, want)
		}
	})
}

func TestEndpointsWithPendingOperations(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustEndpoint(t, s, "urn:imei:a")
		b := mustEndpoint(t, s, "urn:imei:b")
		c := mustEndpoint(t, s, "urn:imei:c")
		d := mustEndpoint(t, s, "urn:imei:d")
		queueOps(t, s, a.ID, 2)
		bOps := queueOps(t, s, b.ID, 1)
		cOps := queueOps(t, s, c.ID, 1)
		if _, res, _ := s.ClaimOperation(ctx, b.ID, ClaimParams{}); res != ClaimClaimed {
			t.Fatal("claim b")
		}
		if _, err := s.CancelOperation(ctx, cOps[0].ID); err != nil {
			t.Fatal(err)
		}
		ids := []int64{a.ID, b.ID, c.ID, d.ID}
		for i := range 1200 { // more than one query's worth
			ids = append(ids, d.ID+1000+int64(i))
		}
		got, err := s.EndpointsWithPendingOperations(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if want := []int64{a.ID, b.ID}; !slices.Equal(got, want) {
			t.Fatalf("pending: %v, want %v", got, want)
		}
		if got, err := s.EndpointsWithPendingOperations(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("no ids: %v %v", got, err)
		}
		counts, err := s.CountOperations(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if counts[OperationQueued] != 2 || counts[OperationSending] != 1 || counts[OperationCancelled] != 1 {
			t.Fatalf("counts: %v", counts)
		}
		if counts, _ := s.CountOperations(ctx, b.ID); counts[OperationSending] != 1 || len(counts) != 1 {
			t.Fatalf("counts of b: %v (op %d)", counts, bOps[0].ID)
		}
	})
}
