package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("ingest: writer closed")

// Config tunes a Writer. The zero Config is valid.
type Config struct {
	// MaxValues closes a batch when it holds this many values; <= 0
	// means 2000.
	MaxValues int
	// MaxDelay closes a batch this long after its first item arrived; <= 0
	// means 5 ms.
	MaxDelay time.Duration
	// Queue is how many Write calls may wait for the writer before Write
	// blocks; <= 0 means 8192.
	Queue int
	// Logger receives one line per failed batch; nil means slog.Default().
	Logger *slog.Logger
	// HookQueue is how many commits each OnCommit hook may have waiting
	// before the writer waits for it; <= 0 means DefaultHookQueue.
	HookQueue int
	// HookWait bounds how long one commit waits for room in the hooks'
	// queues, and how long Close waits for the hooks; <= 0 means
	// DefaultHookWait. See OnCommit.
	HookWait time.Duration
}

// Item is what one caller stores: values, and what else a device's
// request changes (a Register, Update or end of its registration, an
// observation), as store.IngestBatch applies it. With NoCredential set,
// Write refuses the item with an error matching
// store.ErrCredentialRequired when that endpoint has credentials, checked
// in the batch's transaction.
type Item = store.IngestItem

// size is what an item counts towards Config.MaxValues.
func size(it Item) int { return max(len(it.Values), 1) }

// Stats are counters since Start.
type Stats struct {
	Batches int64 // committed transactions
	Values  int64 // values committed
	Items   int64 // items committed
	Failed  int64 // items that could not be committed
	// Registrations counts the Registers committed.
	Registrations int64
	// Refused counts the items refused by their NoCredential.
	Refused int64
	// HookMissed counts the commits not handed to a hook because it had
	// fallen behind, over all hooks (see OnCommit).
	HookMissed int64
}

type request struct {
	ctx   context.Context
	items []Item
	done  chan error // buffered, one result
}

// Writer is the batching ingest writer. Create it with New.
type Writer struct {
	st       *store.Store
	maxVals  int
	maxDelay time.Duration
	log      *slog.Logger

	in       chan *request
	stop     chan struct{}
	finished chan struct{}

	startOnce sync.Once
	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against sends on in
	closed    bool

	hookQueue   int
	hookWait    time.Duration
	hooksMu     sync.Mutex
	hooks       []*hook // guarded by hooksMu; replaced, never modified, by OnCommit
	hooksClosed bool    // guarded by hooksMu
	seq         uint64  // the last commit's Commit.Seq; owned by the writer's goroutine

	statsMu sync.Mutex
	stats   Stats     // guarded by statsMu
	failAt  time.Time // guarded by statsMu: when a commit last failed for the store's sake
	failErr error     // guarded by statsMu: its error
	okAt    time.Time // guarded by statsMu: when a commit last succeeded
}

// New returns a Writer over st. Call Start before Write.
func New(st *store.Store, opts Config) *Writer {
	w := &Writer{
		st:       st,
		maxVals:  opts.MaxValues,
		maxDelay: opts.MaxDelay,
		log:      opts.Logger,
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	w.hookQueue = cmp.Or(max(opts.HookQueue, 0), DefaultHookQueue)
	w.hookWait = cmp.Or(max(opts.HookWait, 0), DefaultHookWait)
	if w.maxVals <= 0 {
		w.maxVals = 2000
	}
	if w.maxDelay <= 0 {
		w.maxDelay = 5 * time.Millisecond
	}
	q := opts.Queue
	if q <= 0 {
		q = 8192
	}
	w.in = make(chan *request, q)
	if w.log == nil {
		w.log = slog.Default()
	}
	return w
}

// Start runs the writer goroutine; later calls do nothing.
func (w *Writer) Start() { w.startOnce.Do(func() { go w.loop() }) }

// Close stops accepting items, waits until every accepted item is
// committed or failed and the hooks have taken the commits (see
// OnCommit), and returns. Later calls return at once. Closing a Writer
// that was never started runs its loop just long enough to commit what
// was accepted.
func (w *Writer) Close() {
	w.Start()
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
	})
	<-w.finished
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

// Failing returns the error of the last commit when it failed for a
// reason of the store's (not of its items: a conflict, such as a value of
// an endpoint deleted meanwhile, does not count) and no commit succeeded
// since, with the time it failed; nil otherwise. /healthz reports the
// store failing while this is recent.
func (w *Writer) Failing() (time.Time, error) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.failErr == nil || w.okAt.After(w.failAt) {
		return time.Time{}, nil
	}
	return w.failAt, w.failErr
}

// Write stores items and returns once they are committed, with nil, or
// have failed. Items of one call are committed in the same transaction,
// but for those their NoCredential refuses: then Write returns an error
// matching store.ErrCredentialRequired, and the others are committed;
// the same for those whose registration is gone (store.IngestItem.Gone),
// with an error matching store.ErrRegistrationGone.
// When ctx ends before the commit, Write returns ctx's error; the items
// may still be committed. The items' values go to the hooks (OnCommit) as
// they are: the caller must not modify them once Write is called.
func (w *Writer) Write(ctx context.Context, items ...Item) error {
	if len(items) == 0 {
		return nil
	}
	req := &request{ctx: ctx, items: items, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.in <- req:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Register records a Register (as store.UpsertEndpointRegistration does)
// together with values of the registered endpoint whose EndpointID is 0,
// such as its registration history, in the next batch, and returns the
// stored endpoint once committed. Registrations from a whole fleet at once
// then cost a few transactions, not one each.
func (w *Writer) Register(ctx context.Context, reg store.EndpointRegistration, vals []store.ResourceValue) (store.Endpoint, error) {
	var ep store.Endpoint
	err := w.Write(ctx, Item{Values: vals, Register: &reg, Registered: &ep})
	return ep, err
}

// WriteValues is Write of one item of loose values, in the signature the
// registry's History option takes.
func (w *Writer) WriteValues(ctx context.Context, vals []store.ResourceValue) error {
	return w.Write(ctx, Item{Values: vals})
}

func (w *Writer) loop() {
	defer close(w.finished)
	var batch []*request
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		var first *request
		select {
		case first = <-w.in:
		case <-w.stop:
			w.drain()
			w.closeHooks()
			return
		}
		batch = append(batch, first)
		n := first.size()
		timer.Reset(w.maxDelay)
	fill:
		for n < w.maxVals {
			select {
			case r := <-w.in:
				batch = append(batch, r)
				n += r.size()
			case <-timer.C:
				break fill
			case <-w.stop:
				break fill
			}
		}
		timer.Stop()
		w.commit(batch)
	}
}

// drain commits everything still queued after Close.
func (w *Writer) drain() {
	for {
		var batch []*request
		n := 0
	collect:
		for n < w.maxVals {
			select {
			case r := <-w.in:
				batch = append(batch, r)
				n += r.size()
			default:
				break collect
			}
		}
		if len(batch) == 0 {
			return
		}
		w.commit(batch)
	}
}

func (r *request) size() int {
	n := 0
	for _, it := range r.items {
		n += size(it)
	}
	return n
}

// commit writes the batch in one transaction; on failure each request is
// retried alone so that only the faulty ones fail.
func (w *Writer) commit(batch []*request) {
	var items []Item
	for _, r := range batch {
		items = append(items, r.items...)
	}
	// The batch belongs to many callers: none of their contexts may cancel
	// it. A bound keeps a stuck database from holding the writer forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	withRegistered(items)
	err := w.st.IngestBatch(ctx, items)
	if err == nil {
		w.countBatch()
		w.publish(items)
		for _, r := range batch {
			n := len(r.items)
			w.done(r, items[:n], nil)
			items = items[n:]
		}
		return
	}
	if len(batch) == 1 {
		w.log.Error("ingest failed", "items", len(items), "err", err)
		w.done(batch[0], items, err)
		return
	}
	w.log.Warn("ingest batch failed, retrying its items one by one", "items", len(items), "err", err)
	for _, r := range batch {
		items := append([]Item(nil), r.items...)
		withRegistered(items)
		err := w.st.IngestBatch(ctx, items)
		if err != nil {
			w.log.Error("ingest failed", "items", len(r.items), "err", err)
		} else {
			w.countBatch()
			w.publish(items)
		}
		w.done(r, items, err)
	}
}

// done counts the outcome of r, whose items as committed are items, and
// answers its caller.
func (w *Writer) done(r *request, items []Item, err error) {
	w.statsMu.Lock()
	var refused []string
	gone := false
	switch {
	case err != nil:
		w.stats.Failed += int64(len(items))
	default:
		for _, it := range items {
			if it.Refused {
				w.stats.Refused++
				refused = append(refused, it.NoCredential)
				continue
			}
			if it.Gone {
				gone = true
				continue
			}
			w.stats.Items++
			w.stats.Values += int64(len(it.Values))
			if it.Register != nil {
				w.stats.Registrations++
			}
		}
	}
	if err == nil {
		w.okAt = time.Now()
	} else if !errors.Is(err, store.ErrConflict) {
		w.failAt, w.failErr = time.Now(), err
	}
	w.statsMu.Unlock()
	if err == nil && len(refused) > 0 {
		err = fmt.Errorf("ingest: endpoint %q: %w", refused[0], store.ErrCredentialRequired)
	}
	if err == nil && gone {
		err = fmt.Errorf("ingest: %w", store.ErrRegistrationGone)
	}
	r.done <- err
}

// countBatch counts a committed transaction.
func (w *Writer) countBatch() {
	w.statsMu.Lock()
	w.stats.Batches++
	w.statsMu.Unlock()
}
