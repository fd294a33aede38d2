package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// finalSeenTimeout bounds the last WriteSeen of Run, made after its
// context ended.
const finalSeenTimeout = 2 * time.Second

// Seen records traffic from the device of registration id (a Send or a
// notification) at the clock's time: in this node's copy at once, in the
// registration's record (the endpoint's HeardAt) with the next WriteSeen,
// for all devices heard since the last at once. Seen is called for every
// message and costs no store access of its own.
func (r *Registry) Seen(id string) {
	now := r.clock.Now()
	r.mu.Lock()
	if e := r.byID[id]; e != nil {
		e.reg.LastSeen = now
		r.heard[e.reg.EndpointID] = now
	}
	r.mu.Unlock()
}

// WriteSeen writes when devices were last heard from (Seen) to their
// records, for every device heard since the last call, in one write
// (store.SetHeard), and returns for how many. Run calls it every
// Config.SeenInterval. On error the times are kept for the next call.
func (r *Registry) WriteSeen(ctx context.Context) (int, error) {
	r.mu.Lock()
	pending := r.heard
	r.heard = make(map[int64]time.Time, len(pending))
	r.mu.Unlock()
	if len(pending) == 0 {
		return 0, nil
	}
	hs := make([]store.Heard, 0, len(pending))
	for id, at := range pending {
		hs = append(hs, store.Heard{EndpointID: id, At: at})
	}
	if err := r.st.SetHeard(ctx, hs); err != nil {
		r.mu.Lock()
		for id, at := range pending {
			if later, ok := r.heard[id]; !ok || later.Before(at) {
				r.heard[id] = at
			}
		}
		r.mu.Unlock()
		return 0, fmt.Errorf("registry: write seen: %w", err)
	}
	return len(hs), nil
}

// Sweep ends every registration whose lifetime (plus grace) has passed
// since its last Register or Update by its record in the store, on
// whichever node it was made or updated, as a De-register would: the
// endpoint goes offline, the registration's observations are deleted and
// /10240/0/1 is recorded with the expiry time, in one transaction
// (store.ExpireRegistrations), and this node's copy is dropped. It returns
// how many it ended; each is ended, logged and reported to the listeners
// (Expired) by exactly one Sweep of all the nodes sharing the store.
//
// This node's copies whose lifetime has passed by its own reading and
// that the store did not expire are then checked against their records:
// another node renewed them (refreshed here) or ended them (dropped here
// without an event). Errors are logged; what they left undone is done by
// the next Sweep.
func (r *Registry) Sweep(ctx context.Context) int {
	now := r.clock.Now()
	// A registration ends at ExpiresAt, the store's when its expiry is
	// before the time given: one millisecond, the store's resolution,
	// later.
	eps, err := r.st.ExpireRegistrations(ctx, now.Add(time.Millisecond-r.grace), func(ep store.Endpoint) []store.ResourceValue {
		return []store.ResourceValue{historyValue(ep.ID, PathDeregistered, now)}
	})
	if err != nil && ctx.Err() == nil {
		r.log.Error("expiring registrations failed", "err", err)
	}
	for _, ep := range eps {
		mu := r.stripe(ep.Name)
		mu.Lock()
		reg, ok := r.forget(ep.RegistrationID)
		mu.Unlock()
		if !ok {
			reg = registrationOf(store.RegistrationRecord{Endpoint: ep}, nil)
		}
		r.log.Info("registration expired", "endpoint", ep.Name, "registration", ep.RegistrationID,
			"lifetime", int64(ep.Lifetime/time.Second), "last_update", ep.LastSeen)
		r.emit(Change{Kind: Expired, Registration: reg})
	}
	var stale []Registration
	r.mu.RLock()
	for _, e := range r.byID {
		if !now.Before(e.reg.ExpiresAt(r.grace)) {
			stale = append(stale, e.reg)
		}
	}
	r.mu.RUnlock()
	for _, reg := range stale {
		if ctx.Err() != nil {
			break
		}
		if err := r.revalidate(ctx, reg); err != nil {
			r.log.Error("checking a registration against its record failed", "endpoint", reg.Endpoint,
				"registration", reg.ID, "err", err)
		}
	}
	return len(eps)
}

// Run calls Sweep every interval, WriteSeen every Config.SeenInterval
// and, with Config.Retention, RemoveStale every hour, until ctx is done;
// then it writes what Seen recorded since the last WriteSeen.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	seen := time.NewTicker(r.seenEvery)
	defer seen.Stop()
	var clean <-chan time.Time
	if r.keep > 0 {
		c := time.NewTicker(time.Hour)
		defer c.Stop()
		clean = c.C
		r.RemoveStale(ctx)
	}
	writeSeen := func(ctx context.Context) {
		if _, err := r.WriteSeen(ctx); err != nil {
			r.log.Warn("recording when devices were last heard from failed", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSeenTimeout)
			writeSeen(wctx)
			cancel()
			return
		case <-t.C:
			r.Sweep(ctx)
		case <-seen.C:
			writeSeen(ctx)
		case <-clean:
			r.RemoveStale(ctx)
		}
	}
}

// RemoveStale deletes the endpoints nobody has a stake in that were last
// heard from longer than Config.Retention ago (store.RemoveStaleEndpoints),
// in chunks, and returns how many it removed. Errors are logged.
func (r *Registry) RemoveStale(ctx context.Context) int {
	if r.keep <= 0 {
		return 0
	}
	const chunk = 1000
	n := 0
	for ctx.Err() == nil {
		names, err := r.st.RemoveStaleEndpoints(ctx, r.clock.Now().Add(-r.keep), chunk)
		if err != nil {
			r.log.Error("removing stale endpoints failed", "err", err)
			break
		}
		n += len(names)
		if len(names) < chunk {
			break
		}
	}
	if n > 0 {
		r.log.Info("stale endpoints removed", "count", n, "retention", r.keep)
	}
	return n
}
