package events

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one thing that happened. Data is specific to the Topic and must
// be encodable as JSON, so that a later cross-node transport can carry it;
// it is shared by every subscriber and must not be modified after Publish.
type Event struct {
	// Seq numbers the events of one Bus from 1 in the order they are
	// delivered: every subscriber gets its events in increasing Seq. Set
	// by Publish.
	Seq uint64 `json:"seq,omitempty"`
	// ID is the event's id in the durable event log (store.LoggedEvent),
	// set on the events its recorder publishes once they are logged; 0
	// on an event not (yet) logged. Publish leaves it as it is.
	ID       int64     `json:"id,omitempty"`
	Topic    string    `json:"topic"`
	Time     time.Time `json:"time"`
	Endpoint string    `json:"endpoint,omitempty"`
	Data     any       `json:"data,omitempty"`
}

// DefaultBuffer is the channel capacity of a subscription made with a
// buffer <= 0.
const DefaultBuffer = 256

// Bus fans published events out to its subscribers. The zero Bus is ready
// to use; a nil *Bus accepts Publish and drops the event, so producers need
// no check. A Bus is safe for concurrent use.
type Bus struct {
	mu   sync.Mutex                 // serializes Publish, so that Seq order is delivery order
	seq  uint64                     // guarded by mu
	subs map[*Subscription]struct{} // guarded by mu
}

// Subscription receives the events of one subscriber on C until Close.
type Subscription struct {
	// C delivers the events matching the subscription's filter. It is
	// closed by Close.
	C <-chan Event

	c       chan Event
	bus     *Bus
	match   func(Event) bool
	closed  bool // guarded by bus.mu
	dropped atomic.Uint64
}

// Subscribe registers a subscriber with a channel of capacity buffer
// (DefaultBuffer when <= 0). A non-nil match selects the events it gets;
// nil gets all. match runs on the publisher's goroutine while Publish
// holds the bus: it must be quick and must not call the Bus. The caller
// must Close the subscription when done.
func (b *Bus) Subscribe(buffer int, match func(Event) bool) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, bus: b, match: match}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish numbers ev (Seq) and delivers it to every subscriber whose
// filter matches, without waiting: a subscriber whose channel is full
// misses it. A zero ev.Time is set to the current time. Its cost grows
// with the number of subscriptions, not of readers behind them: the event
// streams share one subscription (see Feed). Publish on a nil Bus does
// nothing.
func (b *Bus) Publish(ev Event) {
	if b == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	for s := range b.subs {
		if s.match != nil && !s.match(ev) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// Dropped returns how many matching events did not fit in the channel.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. Events already in C can still be
// read. Calls after the first do nothing.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	delete(s.bus.subs, s)
	if !s.closed {
		s.closed = true
		close(s.c)
	}
}
