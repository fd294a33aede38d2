package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

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
)

// KindDeliver is the job kind that delivers the queued operations of one
// endpoint (store.NewJob.Key: the endpoint's id; args: deliverArgs).
const KindDeliver = "deliver_operations"

// Config wires a Queue.
type Config struct {
	Engine   *Engine            // required; the Queue registers KindDeliver with it
	Store    *store.Store       // required
	Registry *registry.Registry // required; its clock is the Queue's clock
	Devices  *devmgmt.Manager   // required
	// Events receives every status change of an operation (topic
	// events.TopicOperation); nil publishes nothing.
	Events *events.Bus
	// Logger receives one line per failed attempt; nil means
	// slog.Default().
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
	// MaxAttempts is the attempts an operation gets; 0 means
	// store.DefaultMaxAttempts.
	MaxAttempts int
}

// Queue is the durable queue of device operations. Create it with New,
// which registers its delivery jobs with the Engine; Start and Stop the
// handling of device wake-ups, and the Engine, which runs the deliveries.
// Enqueue and Cancel work whether or not anything runs. A Queue is safe
// for concurrent use.
type Queue struct {
	engine   *Engine
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
	// send performs one attempt: Devices.Do, unless a test replaces it
	// before the Engine starts.
	send func(ctx context.Context, endpoint string, op devmgmt.Operation) (devmgmt.Result, error)

	wakeMu   sync.Mutex
	woken    map[string]int64 // endpoint name -> id; guarded by wakeMu
	running  bool             // guarded by wakeMu
	wakeKick chan struct{}
	stopWake context.CancelFunc
	wakeDone chan struct{}
}

// deliverArgs are the arguments of a KindDeliver job.
type deliverArgs struct {
	EndpointID int64  `json:"endpoint_id"`
	Endpoint   string `json:"endpoint"`
}

// deliverJob is the job that delivers the operations of an endpoint: one
// waits per endpoint at most.
func deliverJob(endpointID int64, endpoint string) store.NewJob {
	args, _ := json.Marshal(deliverArgs{EndpointID: endpointID, Endpoint: endpoint})
	return store.NewJob{Kind: KindDeliver, Key: strconv.FormatInt(endpointID, 10), Args: args}
}

// New builds a Queue and registers KindDeliver with cfg.Engine.
func New(cfg Config) (*Queue, error) {
	if cfg.Engine == nil || cfg.Store == nil || cfg.Registry == nil || cfg.Devices == nil {
		return nil, errors.New("jobs: Config.Engine, Store, Registry and Devices are required")
	}
	q := &Queue{
		engine:   cfg.Engine,
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
	// An attempt holds its operation SENDING for at most timeout plus the
	// time to record the outcome; one held much longer was abandoned.
	q.stale = q.timeout + time.Minute
	q.send = q.devices.Do
	err := q.engine.Register(KindDeliver, Kind{
		Handler: func(ctx context.Context, j store.Job) error {
			var a deliverArgs
			if err := json.Unmarshal(j.Args, &a); err != nil {
				return fmt.Errorf("jobs: %s job %d: args: %w", KindDeliver, j.ID, err)
			}
			return q.deliver(ctx, a.EndpointID, a.Endpoint)
		},
		// A round: PerRound attempts and the time to record them.
		Timeout: time.Duration(q.perRound)*q.timeout + 30*time.Second,
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Start starts the handling of wake-ups. Operations left QUEUED by an
// earlier process are delivered when their device next talks; their jobs
// left in the database run when the Engine starts.
func (q *Queue) Start(ctx context.Context) error {
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

// Stop ends the handling of wake-ups: wake-ups during and after Stop are
// ignored, and the operations stay queued for the next wake-up after a
// restart. Running deliveries are the Engine's: stop it too (Engine.Stop
// drains them). Stop before Start does nothing.
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
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("jobs: stop: %w", ctx.Err())
	}
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
		return q.engine.InsertTx(ctx, tx, deliverJob(n.EndpointID, n.Endpoint))
	})
	if err != nil {
		return store.Operation{}, fmt.Errorf("jobs: enqueue %s for %q: %w", dop.Kind, n.Endpoint, err)
	}
	q.engine.Kick()
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
	n, err := q.st.CountJobs(ctx, KindDeliver)
	if err != nil {
		return false, fmt.Errorf("jobs: %w", err)
	}
	return n == 0, nil
}

// Wake tells the queue that the device of reg talked to the server (a
// Register, Update, Send or notification): its queued operations, if any,
// are delivered now, inside its receive window. Wake never blocks; it is
// meant to be called for every coapd.Activity (coapd.Server.Subscribe).
// Wake-ups of the same endpoint that arrive together are handled once.
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
	jobs := make([]store.NewJob, len(pending))
	for i, id := range pending {
		jobs[i] = deliverJob(id, names[id])
	}
	return q.engine.Insert(ctx, jobs...)
}
