package ingest

import (
	"iter"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// Defaults of the Config for hooks.
const (
	DefaultHookQueue = 256
	DefaultHookWait  = time.Second
)

// Commit is one transaction of a Writer, as its hooks get it.
type Commit struct {
	// Seq numbers the Writer's commits from 1, in the order they were
	// made.
	Seq uint64
	// Missed is how many commits right before this one the hook did not
	// get because it fell behind (see Writer.OnCommit); 0 otherwise.
	Missed uint64
	// Items are the items committed, in the order they were stored,
	// without the ones NoCredential refused. Every value's EndpointID is
	// set: the values of a Register item (and its event) have the
	// registered endpoint's, those of an event its endpoint's. Items are
	// shared by every hook and with the callers of Write: read them, never
	// modify them.
	Items []Item
}

// Values iterates over the values of c's items, in the order they were
// stored.
func (c Commit) Values() iter.Seq[store.ResourceValue] {
	return func(yield func(store.ResourceValue) bool) {
		for _, it := range c.Items {
			for _, v := range it.Values {
				if !yield(v) {
					return
				}
			}
		}
	}
}

// hook is one OnCommit registration: a queue of commits and the goroutine
// that hands them to fn.
type hook struct {
	name string
	fn   func(Commit)
	q    chan Commit
	done chan struct{} // closed when the goroutine has returned
	// missed counts the commits not handed over since the hook fell
	// behind; 0 while it keeps up. Owned by the writer's goroutine.
	missed uint64
}

func (h *hook) run() {
	defer close(h.done)
	for c := range h.q {
		h.fn(c)
	}
}

// OnCommit registers fn to get every commit of the Writer from the next
// one on: once each, in commit order, on a goroutine of its own (one per
// hook), which calls fn for one commit at a time. name identifies the
// hook in the log. This is the "values committed" feed for the parts that
// must see every stored value (the firmware update state, webhooks),
// unlike the events bus, whose readers may drop events.
//
// The contract with ingest: after a transaction commits, the writer hands
// the Commit to every hook's queue before it answers the callers of Write,
// so when Write returns its items are queued for every hook that keeps
// up. A queue holds Config.HookQueue commits; when it is full the writer
// waits for room (back-pressure: ingest goes no faster than its slowest
// hook), but no longer than Config.HookWait per commit for all hooks
// together. A hook still full then has fallen behind: the writer stops
// waiting for it, counts the commits it cannot take (Stats.HookMissed),
// and, once its queue has room again, hands it the next commit with
// Missed set, so that it reads what it needs from the store. A hook thus
// holds ingest up by at most HookWait at a time, and once per falling
// behind. Hooks see commits in memory: what was committed but not yet
// handed to fn when the process dies is not replayed, so a hook's owner
// reads the state it needs from the store when it starts.
//
// OnCommit is safe for concurrent use; after Close it does nothing. Close
// waits, at most HookWait, for the hooks to finish the commits they hold.
func (w *Writer) OnCommit(name string, fn func(Commit)) {
	h := &hook{name: name, fn: fn, q: make(chan Commit, w.hookQueue), done: make(chan struct{})}
	w.hooksMu.Lock()
	defer w.hooksMu.Unlock()
	if w.hooksClosed {
		return
	}
	w.hooks = append(w.hooks[:len(w.hooks):len(w.hooks)], h)
	go h.run()
}

// publish numbers the commit of items and hands it to the hooks (see
// OnCommit). Only the writer's goroutine calls it.
func (w *Writer) publish(items []Item) {
	w.seq++
	w.hooksMu.Lock()
	hooks := w.hooks
	w.hooksMu.Unlock()
	if len(hooks) == 0 {
		return
	}
	c := Commit{Seq: w.seq, Items: committed(items)}
	var (
		timer   *time.Timer
		expired bool
		missed  int64
	)
	for _, h := range hooks {
		if h.missed > 0 {
			behind := c
			behind.Missed = h.missed
			select {
			case h.q <- behind:
				w.log.Warn("ingest hook caught up: it missed commits", "hook", h.name, "missed", h.missed, "seq", c.Seq)
				h.missed = 0
			default:
				h.missed++
				missed++
			}
			continue
		}
		select {
		case h.q <- c:
			continue
		default:
		}
		if !expired {
			if timer == nil {
				timer = time.NewTimer(w.hookWait)
				defer timer.Stop()
			}
			select {
			case h.q <- c:
				continue
			case <-timer.C:
				expired = true
			}
		}
		h.missed = 1
		missed++
		w.log.Warn("ingest hook fell behind: commits are not handed to it until its queue has room",
			"hook", h.name, "seq", c.Seq, "queue", cap(h.q), "wait", w.hookWait)
	}
	if missed > 0 {
		w.statsMu.Lock()
		w.stats.HookMissed += missed
		w.statsMu.Unlock()
	}
}

// committed is the hooks' view of the committed items: refused items left
// out, every value's (and event's) EndpointID set. Values are copied only
// where an EndpointID is filled in.
func committed(items []Item) []Item {
	out := make([]Item, 0, len(items))
	for _, it := range items {
		if it.Refused {
			continue
		}
		ep := it.Event.EndpointID
		if it.Register != nil && it.Registered != nil {
			e := *it.Registered
			it.Registered = &e
			ep = e.ID
		}
		if it.Event.Kind != "" && it.Event.EndpointID == 0 {
			it.Event.EndpointID = ep
		}
		if ep != 0 && slices.ContainsFunc(it.Values, func(v store.ResourceValue) bool { return v.EndpointID == 0 }) {
			vals := slices.Clone(it.Values)
			for i := range vals {
				if vals[i].EndpointID == 0 {
					vals[i].EndpointID = ep
				}
			}
			it.Values = vals
		}
		out = append(out, it)
	}
	return out
}

// closeHooks ends the hooks' goroutines once they have handed over what
// they hold, waiting for them at most HookWait. Only the writer's
// goroutine calls it, after its last commit.
func (w *Writer) closeHooks() {
	w.hooksMu.Lock()
	hooks := w.hooks
	w.hooksClosed = true
	w.hooksMu.Unlock()
	for _, h := range hooks {
		close(h.q)
	}
	timer := time.NewTimer(w.hookWait)
	defer timer.Stop()
	expired := false
	for _, h := range hooks {
		if !expired {
			select {
			case <-h.done:
				continue
			case <-timer.C:
				expired = true
			}
		}
		select {
		case <-h.done:
		default:
			w.log.Warn("ingest hook did not finish its commits before close", "hook", h.name, "wait", w.hookWait)
		}
	}
}

// withRegistered makes every Register item of items report the endpoint
// it registered, for the hooks.
func withRegistered(items []Item) {
	for i := range items {
		if items[i].Register != nil && items[i].Registered == nil {
			items[i].Registered = new(store.Endpoint)
		}
	}
}
