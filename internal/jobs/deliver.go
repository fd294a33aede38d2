package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// publish tells the bus of op's status (events.TopicOperation).
func (q *Queue) publish(endpoint string, op store.Operation) {
	q.bus.Publish(events.Event{Topic: events.TopicOperation, Time: op.UpdatedAt, Endpoint: endpoint, Data: events.OperationEvent{
		ID: op.ID, Kind: op.Kind, Status: string(op.Status), Attempts: op.Attempts,
		ResultCode: op.ResultCode, ResultError: op.ResultError,
	}})
}

// reasonInterrupted is the ResultError of an attempt cut short by the
// server stopping (or dying) while it was in flight.
const reasonInterrupted = "interrupted: the server stopped while the operation was being sent"

// Reachable reports whether the server may send to the device of reg at
// now: a device not in queue mode always (while registered), a queue-mode
// device until its receive window after it last talked has passed.
func (q *Queue) Reachable(reg registry.Registration, now time.Time) bool {
	return !reg.Queue || now.Before(reg.LastSeen.Add(q.window))
}

// deliver sends the endpoint's queued operations, head first, while the
// device is reachable: at most PerRound of them, after which a new job
// takes the rest so that other devices get workers too. It returns an
// error only when the database fails (the Engine then retries the job);
// every device-side outcome is recorded on the operation.
func (q *Queue) deliver(ctx context.Context, endpointID int64, endpoint string) error {
	// First as the record has it now (the device may have moved, or
	// talked to another node), then this node's copy, which that and
	// every attempt (devmgmt) refresh.
	lookup := q.reg.Current
	for sent := 0; ; {
		if ctx.Err() != nil {
			return nil // stopping: the rest waits for the next wake-up
		}
		reg, err := lookup(ctx, endpoint)
		lookup = q.reg.LookupEndpoint
		if errors.Is(err, registry.ErrNotFound) || (err == nil && reg.EndpointID != endpointID) {
			return nil // offline: waits for the next Register
		}
		if err != nil {
			return err
		}
		now := q.reg.Now()
		if !q.Reachable(reg, now) {
			return nil // asleep: waits for the next wake-up
		}
		if sent >= q.perRound {
			return q.engine.Insert(ctx, deliverJob(endpointID, endpoint))
		}
		op, res, err := q.st.ClaimOperation(ctx, endpointID, store.ClaimParams{
			WokeAt:      reg.LastSeen,
			StaleBefore: now.Add(-q.stale),
			StaleReason: reasonInterrupted,
		})
		if err != nil {
			return err
		}
		switch res {
		case store.ClaimRecovered:
			q.log.Warn("operation interrupted by a server stop: attempt counted", "endpoint", endpoint,
				"operation", op.ID, "status", op.Status, "attempts", op.Attempts)
			q.publish(endpoint, op)
			continue
		case store.ClaimClaimed:
		default: // empty, busy (another worker sends), waiting (failed in this wake)
			return nil
		}
		q.publish(endpoint, op)
		stop, err := q.attempt(ctx, reg, op)
		if err != nil {
			return err
		}
		sent++
		if stop {
			return nil
		}
	}
}

// attempt sends the claimed operation op and records the outcome. stop
// says that the rest of the device's queue must wait (the head stays
// queued, for a later wake-up).
func (q *Queue) attempt(ctx context.Context, reg registry.Registration, op store.Operation) (stop bool, err error) {
	dop, err := DecodeOperation(op)
	var res devmgmt.Result
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, q.timeout)
		// An observation it makes records the operation and who queued it.
		actx = devmgmt.WithOrigin(actx, registry.Origin{Kind: registry.OriginQueue, UserID: op.QueuedBy, Operation: op.ID})
		res, err = q.send(actx, reg.Endpoint, dop)
		cancel()
	}
	v, code := classify(err)
	u := store.OperationUpdate{Attempts: op.Attempts, LastAttemptAt: op.LastAttemptAt, ResultCode: code}
	if err != nil {
		u.ResultError = err.Error()
		if ctx.Err() != nil {
			u.ResultError = reasonInterrupted
		}
	}
	switch v {
	case confirmed:
		u.Attempts++
		u.Status = store.OperationConfirmed
		if u.Response, err = encodeResult(res); err != nil {
			return false, fmt.Errorf("jobs: operation %d: %w", op.ID, err)
		}
	case retry:
		u.Attempts++
		u.Status = store.OperationQueued
		if u.Attempts >= op.MaxAttempts {
			u.Status = store.OperationFailed
		}
		stop = true
	case fail:
		u.Attempts++
		u.Status = store.OperationFailed
	case reject:
		u.Status = store.OperationFailed
	case notSent:
		u.Status = store.OperationQueued
		stop = true
	}
	// Record the outcome even when the job is being cancelled.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	done, err := q.st.UpdateOperation(wctx, op.ID, u, store.OperationSending)
	if errors.Is(err, store.ErrConflict) {
		// Recovered as stale by another worker meanwhile: its record
		// stands.
		q.log.Warn("operation outcome not recorded: no longer SENDING", "endpoint", reg.Endpoint, "operation", op.ID, "err", err)
		return true, nil
	}
	if err != nil {
		return true, err
	}
	q.publish(reg.Endpoint, done)
	if v == confirmed {
		q.log.Debug("operation confirmed", "endpoint", reg.Endpoint, "operation", op.ID, "kind", op.Kind, "attempts", done.Attempts)
	} else {
		q.log.Info("operation attempt failed", "endpoint", reg.Endpoint, "operation", op.ID, "kind", op.Kind,
			"status", done.Status, "attempts", done.Attempts, "code", code, "verdict", v.String(), "err", u.ResultError)
	}
	return stop, nil
}
