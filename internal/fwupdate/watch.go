package fwupdate

import (
	"context"
	"time"

	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// track notes that endpoint (named name) has the active update up.
func (u *Updater) track(up store.FirmwareUpdate, name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if up.Active {
		u.active[up.EndpointID] = up.ID
	}
	if name != "" {
		u.names[name] = up.EndpointID
	}
}

// untrack forgets the finished update up.
func (u *Updater) untrack(up store.FirmwareUpdate) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.active[up.EndpointID] == up.ID {
		delete(u.active, up.EndpointID)
	}
}

// kickEndpoint steps the active update of the endpoint with id, if any,
// now. It never blocks.
func (u *Updater) kickEndpoint(id int64) {
	u.mu.Lock()
	up, ok := u.active[id]
	if ok {
		u.pending[up] = true
	}
	u.mu.Unlock()
	if ok {
		select {
		case u.kickCh <- struct{}{}:
		default:
		}
	}
}

// watched are the paths whose values step an update.
var watched = map[lwm2m.Path]bool{pathState: true, pathResult: true, pathVersion: true}

// OnCommit is the ingest hook (ingest.Writer.OnCommit): a committed value
// of /5/0/3, /5/0/5 or /3/0/3 of an endpoint with an active update steps
// it at once; after missed commits every active update is stepped.
func (u *Updater) OnCommit(c ingest.Commit) {
	if c.Missed > 0 {
		u.mu.Lock()
		ids := make([]int64, 0, len(u.active))
		for id := range u.active {
			ids = append(ids, id)
		}
		u.mu.Unlock()
		for _, id := range ids {
			u.kickEndpoint(id)
		}
	}
	for v := range c.Values() {
		if watched[v.Path] {
			u.kickEndpoint(v.EndpointID)
		}
	}
}

// OnRegistration is the registry listener (registry.Registry.Subscribe):
// a Register or Update of a device with an active update steps it (a
// device back after its reboot, or awake again).
func (u *Updater) OnRegistration(c registry.Change) {
	if c.Kind == registry.Registered || c.Kind == registry.Updated {
		u.kickEndpoint(c.Registration.EndpointID)
	}
}

// Watch starts handling kicks (OnCommit, OnRegistration, and the status
// changes of queued operations on Config.Events) and loads the active
// updates. Call it before the Engine starts.
func (u *Updater) Watch(ctx context.Context) error {
	if err := u.refresh(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	u.stop, u.done = cancel, make(chan struct{})
	var sub *events.Subscription
	if u.cfg.Events != nil {
		sub = u.cfg.Events.Subscribe(1024, func(ev events.Event) bool { return ev.Topic == events.TopicOperation })
	}
	go func() {
		defer close(u.done)
		u.loop(wctx, sub)
	}()
	return nil
}

// Stop ends Watch. Steps are jobs: the Engine runs and drains them.
func (u *Updater) Stop(ctx context.Context) error {
	if u.stop == nil {
		return nil
	}
	u.stop()
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refresh loads the active updates (the ones started by other processes
// too).
func (u *Updater) refresh(ctx context.Context) error {
	ups, err := u.st.ListFirmwareUpdates(ctx, store.FirmwareUpdateFilter{ActiveOnly: true, Limit: 1 << 30})
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.active)
	for _, up := range ups {
		u.active[up.EndpointID] = up.ID
	}
	return nil
}

func (u *Updater) loop(ctx context.Context, sub *events.Subscription) {
	var opEvents <-chan events.Event
	if sub != nil {
		defer sub.Close()
		opEvents = sub.C
	}
	tick := time.NewTicker(u.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := u.refresh(ctx); err != nil && ctx.Err() == nil {
				u.log.Warn("firmware updates: loading the active updates failed", "err", err)
			}
			// Every active update is stepped at least this often, even
			// one whose own job was lost (its attempts used up while the
			// database was away).
			u.mu.Lock()
			for _, up := range u.active {
				u.pending[up] = true
			}
			u.mu.Unlock()
		case ev := <-opEvents:
			if oe, ok := ev.Data.(events.OperationEvent); ok &&
				(oe.Status == string(store.OperationConfirmed) || oe.Status == string(store.OperationFailed)) {
				u.mu.Lock()
				id, ok := u.names[ev.Endpoint]
				u.mu.Unlock()
				if ok {
					u.kickEndpoint(id)
				}
			}
			continue
		case <-u.kickCh:
		}
		u.mu.Lock()
		batch := u.pending
		u.pending = make(map[int64]bool, len(batch))
		u.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		js := make([]store.NewJob, 0, len(batch))
		for id := range batch {
			js = append(js, stepJob(id, time.Time{}))
		}
		if err := u.cfg.Engine.Insert(ctx, js...); err != nil && ctx.Err() == nil {
			u.log.Warn("firmware updates: stepping failed", "updates", len(js), "err", err)
		}
	}
}
