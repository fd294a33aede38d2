package events

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Feed hands the events of a Bus, each encoded once, to many readers (the
// API's event streams). It holds one Bus subscription for all its readers,
// so a Publish costs the same with one reader or thousands; one goroutine,
// running while at least one reader is open, encodes each event that some
// reader's filter selects and hands the same bytes to every such reader.
// A reader holds a bounded number of messages: one that takes them too
// slowly misses the newest and has them counted in its Dropped, without
// delaying the feed or other readers. A Feed is safe for concurrent use.
type Feed struct {
	bus  *Bus
	opts FeedConfig

	mu         sync.Mutex
	sub        *Subscription        // guarded by mu; nil while no reader is open
	all        []*Reader            // guarded by mu; readers of every endpoint
	byEndpoint map[string][]*Reader // guarded by mu; readers of one endpoint
	open       int                  // guarded by mu
}

// FeedConfig configures a Feed.
type FeedConfig struct {
	// Encode returns the bytes readers get for ev, or nil to leave ev out
	// (Encode then says why, e.g. in the log). It is called on the feed's
	// goroutine, once per event that at least one open reader selects.
	// Required.
	Encode func(ev Event) []byte
	// Buffer is how many messages a reader holds before it misses the
	// next; DefaultBuffer when <= 0.
	Buffer int
	// MaxBytes bounds the bytes of the messages a reader holds (a reader
	// that holds none takes one of any size); DefaultMaxBytes when <= 0.
	MaxBytes int
	// Interval is the shortest time between two wake-ups of the readers:
	// events that come within it are handed over together, so that a
	// reader writes once per burst. 0 wakes readers for every batch.
	Interval time.Duration
	// Queue is the capacity of the hand-off from publishers to the feed's
	// goroutine; DefaultQueue when <= 0. Events beyond it are missed by
	// every reader and counted in each reader's Dropped.
	Queue int
}

// Defaults of FeedConfig.
const (
	DefaultMaxBytes = 256 << 10
	DefaultQueue    = 4096
)

// feedBatch is how many events the feed's goroutine takes from its
// subscription before it hands them over.
const feedBatch = 256

// NewFeed returns a feed of bus's events. Nothing runs until the first
// Open.
func NewFeed(bus *Bus, opts FeedConfig) *Feed {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	return &Feed{bus: bus, opts: opts, byEndpoint: map[string][]*Reader{}}
}

// Message is one event as a Feed's readers get it. It is shared by every
// reader that gets it: neither it nor its Bytes may be modified.
type Message struct {
	Seq      uint64 // the event's Seq
	ID       int64  // the event's ID
	Topic    string
	Endpoint string // the event's endpoint, "" for none
	Bytes    []byte // the event encoded by FeedConfig.Encode
}

// Filter selects the events a Reader gets.
type Filter struct {
	Endpoint string   // only this endpoint's events; "" for all
	Topics   []string // only these topics; nil for all
}

// Reader receives the messages of one Filter from a Feed until Close.
// Take and Dropped are for one goroutine, the reader's owner.
type Reader struct {
	// Ready receives a value when messages are waiting or more events were
	// dropped: then call Take and Dropped. One value stands for all that
	// came since the previous.
	Ready <-chan struct{}

	ready    chan struct{}
	feed     *Feed
	topics   []string // nil: all
	endpoint string
	ring     []*Message // slots [head, tail) hold messages, the others nil
	maxBytes int64
	head     atomic.Uint64 // written by Take
	tail     atomic.Uint64 // written by the feed's goroutine
	bytes    atomic.Int64  // of the messages held
	dropped  atomic.Uint64
	dirty    bool // owned by the feed's goroutine: waiting for a wake-up
	closed   bool // guarded by feed.mu
}

// Open adds a reader of the events filter selects, from the next event
// published. The caller must Close it when done.
func (f *Feed) Open(filter Filter) *Reader {
	r := &Reader{
		ready:    make(chan struct{}, 1),
		feed:     f,
		topics:   slices.Clone(filter.Topics),
		endpoint: filter.Endpoint,
		ring:     make([]*Message, f.opts.Buffer),
		maxBytes: int64(f.opts.MaxBytes),
	}
	r.Ready = r.ready
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.endpoint == "" {
		f.all = append(f.all, r)
	} else {
		f.byEndpoint[r.endpoint] = append(f.byEndpoint[r.endpoint], r)
	}
	f.open++
	if f.sub == nil {
		f.sub = f.bus.Subscribe(f.opts.Queue, nil)
		go f.run(f.sub)
	}
	return r
}

// Close removes the reader from its feed; its Ready gets no more values.
// Calls after the first do nothing.
func (r *Reader) Close() {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.endpoint == "" {
		f.all = slices.DeleteFunc(f.all, func(o *Reader) bool { return o == r })
	} else if rs := slices.DeleteFunc(f.byEndpoint[r.endpoint], func(o *Reader) bool { return o == r }); len(rs) > 0 {
		f.byEndpoint[r.endpoint] = rs
	} else {
		delete(f.byEndpoint, r.endpoint)
	}
	f.open--
	if f.open == 0 {
		f.sub.Close() // ends run
		f.sub = nil
	}
}

// Take appends the messages waiting for the reader to dst, oldest first,
// and returns it. The reader no longer holds them.
func (r *Reader) Take(dst []*Message) []*Message {
	h, t := r.head.Load(), r.tail.Load()
	n := uint64(len(r.ring))
	var size int64
	for ; h != t; h++ {
		m := r.ring[h%n]
		r.ring[h%n] = nil
		size += int64(len(m.Bytes))
		dst = append(dst, m)
	}
	r.bytes.Add(-size)
	r.head.Store(h)
	return dst
}

// Dropped returns how many selected events the reader missed since it
// was opened, because it held too many or the feed fell behind.
func (r *Reader) Dropped() uint64 { return r.dropped.Load() }

// push hands m to the reader, or counts it dropped when the reader holds
// too much. Only the feed's goroutine pushes.
func (r *Reader) push(m *Message) {
	t, h := r.tail.Load(), r.head.Load()
	if t-h == uint64(len(r.ring)) || (t != h && r.bytes.Load()+int64(len(m.Bytes)) > r.maxBytes) {
		r.dropped.Add(1)
		return
	}
	r.ring[t%uint64(len(r.ring))] = m
	r.bytes.Add(int64(len(m.Bytes)))
	r.tail.Store(t + 1)
}

func (r *Reader) selects(topic string) bool {
	return r.topics == nil || slices.Contains(r.topics, topic)
}

// run is the feed's goroutine for one subscription: from the first Open
// until the last reader closes, which closes sub.
func (f *Feed) run(sub *Subscription) {
	var (
		batch  = make([]Event, 0, feedBatch)
		dirty  []*Reader // readers to wake
		lost   uint64    // sub.Dropped() already passed on
		last   time.Time // the last wake-up
		timer  *time.Timer
		timerC <-chan time.Time // non-nil while a wake-up is due
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			batch = append(batch, ev)
		drain:
			for len(batch) < feedBatch {
				select {
				case ev, ok := <-sub.C:
					if !ok {
						break drain
					}
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			if !f.deliver(sub, batch, &dirty, &lost) {
				return
			}
			clear(batch) // let the events' data go
			batch = batch[:0]
		case <-timerC:
			timerC = nil
		}
		if len(dirty) == 0 || timerC != nil {
			continue
		}
		if wait := f.opts.Interval - time.Since(last); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerC = timer.C
			continue
		}
		last = time.Now()
		for _, r := range dirty {
			r.dirty = false
			select {
			case r.ready <- struct{}{}:
			default: // already signalled
			}
		}
		clear(dirty)
		dirty = dirty[:0]
	}
}

// deliver pushes the events of batch to the readers that select them,
// encoding each at most once, and passes on the events sub dropped. It
// adds the readers it gave something to dirty. It returns false when sub
// is no longer the feed's (its readers are all closed).
func (f *Feed) deliver(sub *Subscription, batch []Event, dirty *[]*Reader, lost *uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sub != sub {
		return false
	}
	mark := func(r *Reader) {
		if !r.dirty {
			r.dirty = true
			*dirty = append(*dirty, r)
		}
	}
	for i := range batch {
		ev := &batch[i]
		var m *Message
		encoded := false
		for _, rs := range [2][]*Reader{f.all, f.byEndpoint[ev.Endpoint]} {
			for _, r := range rs {
				if !r.selects(ev.Topic) {
					continue
				}
				if !encoded {
					encoded = true
					if b := f.opts.Encode(*ev); b != nil {
						m = &Message{Seq: ev.Seq, ID: ev.ID, Topic: ev.Topic, Endpoint: ev.Endpoint, Bytes: b}
					}
				}
				if m == nil {
					break
				}
				r.push(m)
				mark(r)
			}
		}
	}
	if d := sub.Dropped(); d > *lost {
		n := d - *lost
		*lost = d
		for _, rs := range f.byEndpoint {
			for _, r := range rs {
				r.dropped.Add(n)
				mark(r)
			}
		}
		for _, r := range f.all {
			r.dropped.Add(n)
			mark(r)
		}
	}
	return true
}
