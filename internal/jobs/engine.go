package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// Defaults of EngineConfig's and Kind's zero fields.
const (
	DefaultWorkers      = 50
	DefaultPollInterval = 5 * time.Second
	DefaultMaxAttempts  = 10
	DefaultJobTimeout   = time.Minute
)

// rescueInterval is how often an engine takes back the jobs of dead
// nodes; rescueGrace is how long past its kind's timeout a job must run
// before it is taken for abandoned.
const (
	rescueInterval = time.Minute
	rescueGrace    = time.Minute
)

// reasonRescued is the LastError of a job taken back from a dead node.
const reasonRescued = "rescued: its node stopped while it ran"

// Handler runs one attempt of a job. A nil error ends the job; an error
// retries it (Kind.Backoff) until its last attempt. ctx ends at the kind's
// timeout and when the engine stops past its deadline.
type Handler func(ctx context.Context, job store.Job) error

// Kind is a kind of job as the package that owns it registers it.
type Kind struct {
	Handler Handler // required
	// MaxAttempts is the attempts a job of this kind gets when it is
	// inserted without its own; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// Timeout bounds one attempt; 0 means DefaultJobTimeout. A job
	// running longer than Timeout plus a minute is taken for abandoned
	// (its node died) and run again by any node.
	Timeout time.Duration
	// Backoff is the wait before the attempt after the attempt-th failed
	// one; nil means DefaultBackoff.
	Backoff func(attempt int) time.Duration
}

// DefaultBackoff waits 1 s after the first failed attempt and doubles the
// wait with each further one, up to an hour, with ±10 % jitter.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 13 {
		d = min(time.Second<<max(attempt-1, 0), time.Hour)
	}
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// EngineConfig wires an Engine.
type EngineConfig struct {
	Store *store.Store // required
	// Logger receives one line per failed attempt; nil means
	// slog.Default().
	Logger *slog.Logger
	// Workers is how many jobs run at once on this node; 0 means
	// DefaultWorkers.
	Workers int
	// PollInterval is how often the engine looks for due jobs without
	// being told of them: a safety net, since jobs inserted on this node
	// (Insert, Kick) or, on PostgreSQL, on any node (LISTEN/NOTIFY) start
	// at once, and scheduled jobs when they are due. 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Node names this process in the jobs it claims; "" means
	// hostname:pid.
	Node string
}

// Engine runs the jobs of the kinds registered with it, from the job
// table, on this node. Register kinds, then Start; Stop drains. Insert
// works whether or not the engine runs. An Engine is safe for concurrent
// use.
type Engine struct {
	st      *store.Store
	log     *slog.Logger
	workers int
	poll    time.Duration
	node    string

	mu      sync.Mutex
	kinds   map[string]Kind // guarded by mu; read-only after Start
	names   []string        // guarded by mu; the kinds' names, sorted
	started bool            // guarded by mu
	stopped bool            // guarded by mu
	running int             // guarded by mu; jobs running now
	full    bool            // guarded by mu; a claim was cut short by free workers: look again when one frees

	kick     chan struct{}
	stopLoop context.CancelFunc // ends the claim loop and the listener
	loopDone chan struct{}
	work     context.Context    // the jobs' base context
	stopWork context.CancelFunc // cancels running jobs (Stop past its deadline)
	jobs     sync.WaitGroup
}

// NewEngine returns an Engine on cfg.Store with no kinds.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("jobs: EngineConfig.Store is required")
	}
	e := &Engine{st: cfg.Store, log: cfg.Logger, workers: cfg.Workers, poll: cfg.PollInterval, node: cfg.Node,
		kinds: map[string]Kind{}, kick: make(chan struct{}, 1)}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.workers <= 0 {
		e.workers = DefaultWorkers
	}
	if e.poll <= 0 {
		e.poll = DefaultPollInterval
	}
	if e.node == "" {
		host, _ := os.Hostname()
		e.node = host + ":" + strconv.Itoa(os.Getpid())
	}
	e.work, e.stopWork = context.WithCancel(context.Background())
	return e, nil
}

// Register adds a kind of job. It must be called before Start, once per
// name.
func (e *Engine) Register(name string, k Kind) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.started:
		return fmt.Errorf("jobs: register %q: the engine has started", name)
	case name == "" || k.Handler == nil:
		return fmt.Errorf("jobs: register %q: a kind needs a name and a handler", name)
	case e.kinds[name].Handler != nil:
		return fmt.Errorf("jobs: register %q: registered twice", name)
	}
	if k.MaxAttempts <= 0 {
		k.MaxAttempts = DefaultMaxAttempts
	}
	if k.Timeout <= 0 {
		k.Timeout = DefaultJobTimeout
	}
	if k.Backoff == nil {
		k.Backoff = DefaultBackoff
	}
	e.kinds[name] = k
	e.names = append(e.names, name)
	slices.Sort(e.names)
	return nil
}

// prepare checks that jobs are of registered kinds and fills in their
// MaxAttempts.
func (e *Engine) prepare(jobs []store.NewJob) ([]store.NewJob, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := slices.Clone(jobs)
	for i, j := range out {
		k, ok := e.kinds[j.Kind]
		if !ok {
			return nil, fmt.Errorf("jobs: insert: kind %q is not registered", j.Kind)
		}
		if j.MaxAttempts <= 0 {
			out[i].MaxAttempts = k.MaxAttempts
		}
	}
	return out, nil
}

// Insert stores jobs (store.NewJob: a RunAt in the future schedules one; a
// Key makes it unique among the waiting jobs of its kind) and tells this
// node's workers; on PostgreSQL every node's workers hear of them. Their
// kinds must be registered.
func (e *Engine) Insert(ctx context.Context, jobs ...store.NewJob) error {
	jobs, err := e.prepare(jobs)
	if err != nil {
		return err
	}
	if err := e.st.InsertJobs(ctx, jobs...); err != nil {
		return fmt.Errorf("jobs: insert: %w", err)
	}
	e.Kick()
	return nil
}

// InsertTx is Insert inside the caller's transaction (store.WithTx), so
// that the jobs commit with the rows they are about. Call Kick once the
// transaction has committed: this node's workers hear of the jobs then
// (other nodes' on PostgreSQL when it commits).
func (e *Engine) InsertTx(ctx context.Context, tx *sql.Tx, jobs ...store.NewJob) error {
	jobs, err := e.prepare(jobs)
	if err != nil {
		return err
	}
	if err := e.st.InsertJobsTx(ctx, tx, jobs...); err != nil {
		return fmt.Errorf("jobs: insert: %w", err)
	}
	return nil
}

// Kick makes the workers look for due jobs now. It never blocks.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Start starts claiming and running jobs: those left in the table by an
// earlier process at once, then each as it is inserted or falls due.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("jobs: the engine was started already")
	}
	e.started = true
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stopLoop, e.loopDone = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { e.claimLoop(lctx) })
	if e.st.Dialect() == store.DialectPostgres {
		wg.Go(func() { e.listen(lctx) })
	}
	go func() {
		wg.Wait()
		close(e.loopDone)
	}()
	e.Kick()
	return nil
}

// Stop drains: no job starts any more, and running jobs finish. When ctx
// ends first, running jobs are cancelled (their ctx ends), waited for a
// further 10 s at most, and Stop returns ctx's error. Stop before Start,
// and a second Stop, do nothing.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.started || e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	e.mu.Unlock()
	e.stopLoop()
	<-e.loopDone
	done := make(chan struct{})
	go func() {
		e.jobs.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	e.stopWork()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		e.log.Error("jobs still running after they were cancelled")
	}
	return fmt.Errorf("jobs: stop: %w", ctx.Err())
}

// claimLoop claims due jobs while workers are free, whenever it is kicked,
// a job is due or the poll interval passed.
func (e *Engine) claimLoop(ctx context.Context) {
	timer := time.NewTimer(e.poll)
	defer timer.Stop()
	var lastRescue time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-timer.C:
		}
		if time.Since(lastRescue) >= rescueInterval {
			e.rescue(ctx)
			lastRescue = time.Now()
		}
		wait := e.claim(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// claim claims and starts due jobs while workers are free and returns how
// long to wait before looking again unless kicked.
func (e *Engine) claim(ctx context.Context) time.Duration {
	for ctx.Err() == nil {
		e.mu.Lock()
		free := e.workers - e.running
		e.full = free == 0
		e.mu.Unlock()
		if free == 0 {
			return e.poll // a finishing job kicks
		}
		jobs, err := e.st.ClaimJobs(ctx, e.node, e.names, free)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("claiming jobs failed", "err", err)
			}
			return time.Second
		}
		for _, j := range jobs {
			e.start(j)
		}
		if len(jobs) < free {
			break
		}
	}
	next, ok, err := e.st.NextJobIn(ctx, e.names)
	if err != nil || !ok {
		return e.poll
	}
	// A job due now that was not claimed is someone else's (locked) or
	// was inserted meanwhile: look again soon.
	return min(max(next, 20*time.Millisecond), e.poll)
}

// start runs job j in a goroutine of its own.
func (e *Engine) start(j store.Job) {
	e.mu.Lock()
	k := e.kinds[j.Kind]
	e.running++
	e.mu.Unlock()
	e.jobs.Go(func() {
		defer func() {
			e.mu.Lock()
			e.running--
			kick := e.full
			e.mu.Unlock()
			if kick {
				e.Kick()
			}
		}()
		e.run(j, k)
	})
}

// run runs one attempt of j and records its outcome.
func (e *Engine) run(j store.Job, k Kind) {
	ctx, cancel := context.WithTimeout(e.work, k.Timeout)
	err := e.call(ctx, j, k.Handler)
	cancel()
	// The outcome is recorded even when the job was cancelled.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	var rerr error
	switch {
	case err == nil:
		rerr = e.st.FinishJob(wctx, j.ID, j.Attempts)
	case j.Attempts >= j.MaxAttempts:
		e.log.Error("job failed for the last time", "kind", j.Kind, "job", j.ID, "key", j.Key,
			"attempts", j.Attempts, "err", err)
		rerr = e.st.FinishJob(wctx, j.ID, j.Attempts)
	default:
		delay := k.Backoff(j.Attempts)
		e.log.Warn("job failed, will retry", "kind", j.Kind, "job", j.ID, "key", j.Key,
			"attempts", j.Attempts, "retry_in", delay, "err", err)
		rerr = e.st.RetryJob(wctx, j.ID, j.Attempts, delay, err.Error())
		e.Kick() // the claim loop learns when it is due
	}
	if rerr != nil {
		e.log.Error("recording a job's outcome failed", "kind", j.Kind, "job", j.ID, "err", rerr)
	}
}

// call runs h, turning a panic into an error.
func (e *Engine) call(ctx context.Context, j store.Job, h Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("job panicked", "kind", j.Kind, "job", j.ID, "panic", fmt.Sprint(v), "trace", string(debug.Stack()))
			err = fmt.Errorf("jobs: %s job %d panicked: %v", j.Kind, j.ID, v)
		}
	}()
	return h(ctx, j)
}

// rescue takes back the jobs of dead nodes: those running longer than
// their kind's timeout plus rescueGrace.
func (e *Engine) rescue(ctx context.Context) {
	e.mu.Lock()
	longest := time.Duration(0)
	for _, k := range e.kinds {
		longest = max(longest, k.Timeout)
	}
	e.mu.Unlock()
	// One cut-off for all kinds, by the longest timeout: a short job
	// abandoned waits a little longer, no running job is taken away.
	jobs, dropped, err := e.st.RescueJobs(ctx, longest+rescueGrace, reasonRescued)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("rescuing abandoned jobs failed", "err", err)
		}
		return
	}
	for i, j := range jobs {
		e.log.Warn("job taken back from a node that stopped", "kind", j.Kind, "job", j.ID, "node", j.LockedBy,
			"attempts", j.Attempts, "dropped", dropped[i])
	}
}

// listen kicks the workers on every notification of new jobs (PostgreSQL),
// reconnecting after a failure.
func (e *Engine) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		l, err := e.st.ListenJobs(ctx)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("listening for new jobs failed: polling until it works again", "retry_in", backoff, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		e.Kick() // anything inserted while not listening
		for {
			if err = l.Wait(ctx); err != nil {
				break
			}
			e.Kick()
		}
		_ = l.Close()
		if ctx.Err() == nil {
			e.log.Warn("listening for new jobs stopped: reconnecting", "err", err)
		}
	}
}
