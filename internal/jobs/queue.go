package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// Defaults of Config's zero fields.
const (
	DefaultReceiveWindow  = 93 * time.Second // LwM2M's default queue-mode awake time (CoAP MAX_TRANSMIT_WAIT)
	DefaultAttemptTimeout = 30 * time.Second
	DefaultPerRound       = 4
	DefaultWorkers        = 50
	DefaultPollInterval   = time.Second
)

// queueName is the River queue the delivery jobs run in.
const queueName = "device_operations"

// completedRetention is how long River keeps finished delivery jobs. They
// carry no history (the operation rows do), so only long enough to look
// at a recent one.
const completedRetention = 10 * time.Minute

// Config wires a Queue.
type Config struct {
	Store    *store.Store       // required
	Registry *registry.Registry // required; its clock is the Queue's clock
	Devices  *devmgmt.Manager   // required
	// Events receives every status change of an operation (topic
	// TopicOperation); nil publishes nothing.
	Events *events.Bus
	// Logger receives one line per failed attempt and per job error; nil
	// means slog.Default().
	Logger *slog.Logger
	// ReceiveWindow is how long a queue-mode device is taken to be
	// reachable after it last talked to the server; 0 means
	// DefaultReceiveWindow. Set it to the devices' window or below.
	ReceiveWindow time.Duration
	// AttemptTimeout bounds one attempt (the device's answer, with CoAP
	// retransmissions); 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// PerRound is how many operations one delivery job sends to a device
	// before it hands the rest to a new job, so that a long queue does not
	// hold a worker; 0 means DefaultPerRound.
	PerRound int
	// Workers is how many deliveries run at once (each to one device);
	// 0 means DefaultWorkers.
	Workers int
	// PollInterval is how often workers look for jobs inserted by other
	// processes; jobs inserted by this process are seen sooner. 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// MaxAttempts is the attempts an operation gets; 0 means
	// store.DefaultMaxAttempts.
	MaxAttempts int
}

// Queue is the durable queue of device operations and its workers. Create
// it with New, run the workers with Start, stop them with Stop. Enqueue and
// Cancel work whether or not the workers run. A Queue is safe for
// concurrent use.
type Queue struct {
	st       *store.Store
	reg      *registry.Registry
	devices  *devmgmt.Manager
	bus      *events.Bus
	log      *slog.Logger
	window   time.Duration
	timeout  time.Duration
	perRound int
	maxTries int
	stale    time.Duration
	client   *river.Client[*sql.Tx]
	// send performs one attempt: Devices.Do, unless a test replaces it
	// before Start.
	send func(ctx context.Context, endpoint string, op devmgmt.Operation) (devmgmt.Result, error)

	wakeMu   sync.Mutex
	woken    map[string]int64 // endpoint name -> id; guarded by wakeMu
	running  bool             // guarded by wakeMu
	wakeKick chan struct{}
	stopWake context.CancelFunc
	wakeDone chan struct{}
}

// deliverArgs is the River job that delivers the queued operations of one
// endpoint: as many as the device takes in one round, in queue order.
type deliverArgs struct {
	EndpointID int64  `json:"endpoint_id"`
	Endpoint   string `json:"endpoint"`
}

// Kind names the job in River's tables.
func (deliverArgs) Kind() string { return "deliver_operations" }

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	q *Queue
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	return w.q.deliver(ctx, job.Args.EndpointID, job.Args.Endpoint)
}

// riverDriver picks River's driver for the store's dialect: River works
// on the store's own write pool, so that its jobs commit in the store's
// transactions (and, on SQLite, share its single write connection).
func riverDriver(st *store.Store) (riverdriver.Driver[*sql.Tx], error) {
	switch st.Dialect() {
	case store.DialectSQLite:
		return riversqlite.New(st.WriteDB()), nil
	case store.DialectPostgres:
		return riverdatabasesql.New(st.WriteDB()), nil
	}
	return nil, fmt.Errorf("jobs: unsupported database dialect %q", st.Dialect())
}

// New builds a Queue on cfg.Store, whose River schema must be migrated
// (Migrate). Nothing runs until Start.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil || cfg.Registry == nil || cfg.Devices == nil {
		return nil, errors.New("jobs: Config.Store, Registry and Devices are required")
	}
	q := &Queue{
		st:       cfg.Store,
		reg:      cfg.Registry,
		devices:  cfg.Devices,
		bus:      cfg.Events,
		log:      cfg.Logger,
		window:   cfg.ReceiveWindow,
		timeout:  cfg.AttemptTimeout,
		perRound: cfg.PerRound,
		maxTries: cfg.MaxAttempts,
		woken:    map[string]int64{},
		wakeKick: make(chan struct{}, 1),
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	if q.window <= 0 {
		q.window = DefaultReceiveWindow
	}
	if q.timeout <= 0 {
		q.timeout = DefaultAttemptTimeout
	}
	if q.perRound <= 0 {
		q.perRound = DefaultPerRound
	}
	if q.maxTries <= 0 {
		q.maxTries = store.DefaultMaxAttempts
	}
	workers, poll := cfg.Workers, cfg.PollInterval
	if workers <= 0 {
		workers = DefaultWorkers
	}
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	// An attempt holds its operation SENDING for at most timeout plus the
	// time to record the outcome; one held much longer was abandoned.
	q.stale = q.timeout + time.Minute
	q.send = q.devices.Do

	driver, err := riverDriver(cfg.Store)
	if err != nil {
		return nil, err
	}
	ws := river.NewWorkers()
	river.AddWorker(ws, &deliverWorker{q: q})
	jobTimeout := time.Duration(q.perRound)*q.timeout + 30*time.Second
	q.client, err = river.NewClient(driver, &river.Config{
		Logger:                      quietLogger(q.log),
		Queues:                      map[string]river.QueueConfig{queueName: {MaxWorkers: workers}},
		Workers:                     ws,
		JobTimeout:                  jobTimeout,
		RescueStuckJobsAfter:        jobTimeout + time.Minute,
		CompletedJobRetentionPeriod: completedRetention,
		FetchPollInterval:           poll,
		FetchCooldown:               min(poll, 20*time.Millisecond),
		MaxAttempts:                 10,
		ErrorHandler:                errorHandler{q.log},
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return q, nil
}

// Migrate creates or updates River's tables in the store's database. It
// is idempotent and cheap when nothing is pending. On PostgreSQL it holds
// an advisory lock, so that nodes starting together migrate one at a time.
func Migrate(ctx context.Context, st *store.Store, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	driver, err := riverDriver(st)
	if err != nil {
		return err
	}
	if st.Dialect() == store.DialectPostgres {
		conn, err := st.WriteDB().Conn(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate: %w", err)
		}
		defer conn.Close()
		// The key is "flownexus river" folded into 63 bits; any constant
		// other code does not use will do.
		const lockKey = 0x666c6e78_72697672 & (1<<63 - 1)
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
			return fmt.Errorf("jobs: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quietLogger(log)})
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	if err := checkRiverVersion(ctx, st, m.AllVersions()); err != nil {
		return err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("jobs: migrate River schema: %w", err)
	}
	if len(res.Versions) > 0 {
		log.Info("job queue schema migrated", "versions", len(res.Versions))
	}
	return nil
}

// checkRiverVersion refuses a job queue schema migrated by a newer
// flownexus (a River migration this one does not know), as the store
// refuses a newer database schema, with store.ErrSchemaTooNew.
func checkRiverVersion(ctx context.Context, st *store.Store, known []rivermigrate.Migration) error {
	if len(known) == 0 {
		return nil
	}
	var have sql.NullInt64
	err := st.DB().QueryRowContext(ctx, "SELECT max(version) FROM river_migration WHERE line = 'main'").Scan(&have)
	if err != nil {
		// No table yet: a database River never migrated.
		var exists bool
		if qerr := st.DB().QueryRowContext(ctx, existsRiverTable[st.Dialect()]).Scan(&exists); qerr == nil && !exists {
			return nil
		}
		return fmt.Errorf("jobs: migrate: River schema version: %w", err)
	}
	if latest := known[len(known)-1].Version; have.Valid && int(have.Int64) > latest {
		return fmt.Errorf("jobs: %w: the job queue schema is at River migration %d, this flownexus knows up to %d",
			store.ErrSchemaTooNew, have.Int64, latest)
	}
	return nil
}

// existsRiverTable asks, per dialect, whether the river_migration table
// exists.
var existsRiverTable = map[string]string{
	store.DialectSQLite:   "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'river_migration')",
	store.DialectPostgres: "SELECT to_regclass('river_migration') IS NOT NULL",
}

// Start starts the workers and the handling of wake-ups. Operations left
// QUEUED by an earlier process are delivered when their device next
// talks; their jobs left in the database run now.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.wakeMu.Lock()
	q.running = true
	q.stopWake = cancel
	q.wakeDone = make(chan struct{})
	done := q.wakeDone
	q.wakeMu.Unlock()
	go func() {
		defer close(done)
		q.wakeLoop(wctx)
	}()
	return nil
}

// Stop drains the workers: no new delivery starts, and running ones
// finish their current round. When ctx ends first, running deliveries are
// cancelled (an attempt in flight counts, and its operation goes back to
// QUEUED) and Stop returns ctx's error. Wake-ups during and after Stop are
// ignored: the operations stay queued for the next wake-up after a
// restart. Stop before Start does nothing.
func (q *Queue) Stop(ctx context.Context) error {
	q.wakeMu.Lock()
	wasRunning := q.running
	q.running = false
	stop, done := q.stopWake, q.wakeDone
	q.wakeMu.Unlock()
	if !wasRunning {
		return nil
	}
	stop()
	<-done
	err := q.client.Stop(ctx)
	if err != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if herr := q.client.StopAndCancel(hctx); herr != nil {
			q.log.Error("job workers did not stop", "err", herr)
		}
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

// NewOperation is an operation to queue for one endpoint.
type NewOperation struct {
	EndpointID int64  // the endpoint's row id
	Endpoint   string // its name
	Operation  devmgmt.Operation
	QueuedBy   int64 // user id; 0: the system
}

// Enqueue checks the operation (devmgmt.Manager.Check: the error, matching
// devmgmt.ErrInvalid, is returned as it is, with the text Do would give)
// and stores it as a QUEUED operation together with the job that delivers
// it, in one transaction: once Enqueue returns, the operation survives a
// crash and will be delivered.
func (q *Queue) Enqueue(ctx context.Context, n NewOperation) (store.Operation, error) {
	dop, err := q.devices.Check(n.Operation)
	if err != nil {
		return store.Operation{}, err
	}
	payload, err := encodePayload(dop)
	if err != nil {
		return store.Operation{}, fmt.Errorf("jobs: enqueue: %w", err)
	}
	var op store.Operation
	err = q.st.WithTx(ctx, func(tx *sql.Tx) error {
		var err error
		op, err = q.st.CreateOperationTx(ctx, tx, store.Operation{
			EndpointID: n.EndpointID, Kind: string(dop.Kind), Paths: dop.Targets(),
			Payload: payload, MaxAttempts: q.maxTries, QueuedBy: n.QueuedBy,
		})
		if err != nil {
			return err
		}
		_, err = q.client.InsertTx(ctx, tx, deliverArgs{EndpointID: n.EndpointID, Endpoint: n.Endpoint}, insertOpts())
		return err
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("jobs: enqueue %s for %q: %w", dop.Kind, n.Endpoint, err)
	}
	q.publish(n.Endpoint, op)
	return op, nil
}

// Cancel cancels the endpoint's QUEUED operation id, which is then never
// sent. An operation already SENDING or finished is an error matching
// store.ErrConflict; one that does not exist or belongs to another endpoint
// matches store.ErrNotFound.
func (q *Queue) Cancel(ctx context.Context, endpointID int64, endpoint string, id int64) (store.Operation, error) {
	op, err := q.st.GetOperation(ctx, id)
	if err == nil && op.EndpointID != endpointID {
		err = fmt.Errorf("store: get operation %d of endpoint %d: %w", id, endpointID, store.ErrNotFound)
	}
	if err != nil {
		return store.Operation{}, fmt.Errorf("jobs: cancel: %w", err)
	}
	op, err = q.st.CancelOperation(ctx, id)
	if err != nil {
		return store.Operation{}, fmt.Errorf("jobs: cancel: %w", err)
	}
	q.publish(endpoint, op)
	return op, nil
}

// Idle reports whether no delivery job is waiting or running, in this
// process or any other on the same database.
func (q *Queue) Idle(ctx context.Context) (bool, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().First(1).States(
		rivertype.JobStateAvailable, rivertype.JobStateRunning, rivertype.JobStatePending,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled))
	if err != nil {
		return false, fmt.Errorf("jobs: %w", err)
	}
	return len(res.Jobs) == 0, nil
}

func insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: queueName}
}

// Wake tells the queue that the device of reg talked to the server (a
// Register, Update, Send or notification): its queued operations, if any,
// are delivered now, inside its receive window. Wake never blocks; it is
// meant for coapd.Config.OnActivity. Wake-ups of the same endpoint that
// arrive together are handled once.
func (q *Queue) Wake(reg registry.Registration) {
	q.wakeMu.Lock()
	if !q.running {
		q.wakeMu.Unlock()
		return
	}
	q.woken[reg.Endpoint] = reg.EndpointID
	q.wakeMu.Unlock()
	select {
	case q.wakeKick <- struct{}{}:
	default:
	}
}

// wakeLoop turns wake-ups into delivery jobs for the endpoints that have
// operations pending, in batches: one query and one insert for all the
// wake-ups that arrived while the previous batch was handled.
func (q *Queue) wakeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wakeKick:
		}
		q.wakeMu.Lock()
		batch := q.woken
		q.woken = make(map[string]int64, len(batch))
		q.wakeMu.Unlock()
		if err := q.wakeBatch(ctx, batch); err != nil && ctx.Err() == nil {
			q.log.Error("handling device wake-ups failed", "devices", len(batch), "err", err)
		}
	}
}

func (q *Queue) wakeBatch(ctx context.Context, batch map[string]int64) error {
	if len(batch) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(batch))
	names := make(map[int64]string, len(batch))
	for name, id := range batch {
		ids = append(ids, id)
		names[id] = name
	}
	pending, err := q.st.EndpointsWithPendingOperations(ctx, ids)
	if err != nil || len(pending) == 0 {
		return err
	}
	params := make([]river.InsertManyParams, len(pending))
	for i, id := range pending {
		params[i] = river.InsertManyParams{Args: deliverArgs{EndpointID: id, Endpoint: names[id]}, InsertOpts: insertOpts()}
	}
	_, err = q.client.InsertMany(ctx, params)
	return err
}

// errorHandler logs the errors of delivery jobs (River retries them).
type errorHandler struct{ log *slog.Logger }

func (h errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.log.ErrorContext(ctx, "operation delivery job failed", "job", job.ID, "attempt", job.Attempt, "err", err)
	return nil
}

func (h errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, v any, trace string) *river.ErrorHandlerResult {
	h.log.ErrorContext(ctx, "operation delivery job panicked", "job", job.ID, "panic", fmt.Sprint(v), "trace", trace)
	return nil
}

// quietLogger passes on River's warnings and errors only: its info lines
// (client started, leader elected, ...) are noise in the server's log.
func quietLogger(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
