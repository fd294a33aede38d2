package fwupdate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// KindStep is the job kind that advances one update (args: stepArgs; key:
// the update's id).
const KindStep = "firmware_step"

// Defaults of Config's zero fields.
const (
	DefaultDownloadTimeout = time.Hour
	DefaultUpdateTimeout   = 15 * time.Minute
	DefaultPushTimeout     = 10 * time.Minute
	DefaultPollInterval    = time.Minute
	DefaultReadInterval    = 5 * time.Minute
	DefaultMaxPushFailures = 3
)

// Bases are the download URL bases the server offers devices, each ending
// in "/", to which an image's Filename is appended; "" offers none for
// that protocol. HTTP is an http:// or https:// base (its scheme is the
// protocol).
type Bases struct {
	HTTP  string // e.g. "https://fw.example.org/binaries/"
	CoAP  string // e.g. "coap://lwm2m.example.org:5683/fw/"
	CoAPS string // e.g. "coaps://lwm2m.example.org:5684/fw/"
}

// offered maps the protocols of b to their bases.
func (b Bases) offered() map[string]string {
	out := map[string]string{}
	slash := func(s string) string {
		if s != "" && s[len(s)-1] != '/' {
			s += "/"
		}
		return s
	}
	if b.CoAP != "" {
		out[ProtocolCoAP] = slash(b.CoAP)
	}
	if b.CoAPS != "" {
		out[ProtocolCoAPS] = slash(b.CoAPS)
	}
	switch {
	case len(b.HTTP) > 8 && b.HTTP[:8] == "https://":
		out[ProtocolHTTPS] = slash(b.HTTP)
	case len(b.HTTP) > 7 && b.HTTP[:7] == "http://":
		out[ProtocolHTTP] = slash(b.HTTP)
	}
	return out
}

// Config wires an Updater.
type Config struct {
	Store    *store.Store       // required
	Engine   *jobs.Engine       // required; New registers KindStep with it
	Queue    *jobs.Queue        // required
	Registry *registry.Registry // required; its clock is the Updater's
	Devices  *devmgmt.Manager   // required
	// Events receives every state change (events.TopicFirmware); nil
	// publishes nothing.
	Events *events.Bus
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// Bases returns the download URL bases (called when an update picks
	// its URI, so that listeners bound after New count); nil offers none
	// (push only), and leaves a protocol asked of Start unchecked until a
	// step of an Updater with Bases picks the URI (OfflineUpdater).
	Bases func() Bases
	// FirmwareDir is where image files are (<FirmwareDir>/<Filename>), for
	// push.
	FirmwareDir string
	// DownloadTimeout bounds the pending state and the downloading state
	// each, UpdateTimeout the updating state, PushTimeout one Block1 push;
	// 0 means the Default.
	DownloadTimeout time.Duration
	UpdateTimeout   time.Duration
	PushTimeout     time.Duration
	// PollInterval is how often an active update is looked at when nothing
	// tells of a change (a safety net); ReadInterval how long the device's
	// firmware state may go unheard while downloading or updating before
	// it is read. 0 means the Default.
	PollInterval time.Duration
	ReadInterval time.Duration
	// MaxPushFailures is how many pushes may be cut short (timeout, lost
	// connection) before the update fails; 0 means the Default.
	MaxPushFailures int
}

// Updater drives firmware updates. Create it with New (which registers
// KindStep with the Engine), hand OnCommit to the ingest writer and
// OnRegistration to the registry, and Watch before the Engine starts;
// Stop after the Engine stopped. Start, Cancel and the getters work
// without Watch (the CLI uses them against the database; the server's
// engine runs the steps). An Updater is safe for concurrent use.
type Updater struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	locks [64]sync.Mutex // by update id: one step of an update at a time on this node
	// campLocks: one tick (or change) of a campaign at a time on this
	// node, by campaign id.
	campLocks [64]sync.Mutex

	mu      sync.Mutex
	pushing map[int64]context.CancelFunc // update id -> its running push; guarded by mu
	active  map[int64]int64              // endpoint id -> active update id; guarded by mu
	names   map[string]int64             // endpoint name -> endpoint id; guarded by mu
	pending map[int64]bool               // update ids to step now; guarded by mu
	kickCh  chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// Options say how to deliver an update; zero values choose from what the
// device supports.
type Options struct {
	Method   string // MethodAuto, MethodPull or MethodPush
	Protocol string // for pull: ProtocolAuto, ProtocolCoAP, ProtocolCoAPS, ProtocolHTTP or ProtocolHTTPS
	By       int64  // the user who starts it; 0: the system
	// Campaign is the campaign that starts it (set by campaigns); its end
	// steps the campaign.
	Campaign int64
}

// Error is a request Start or Cancel refuses; Kind says why.
type Error struct {
	Kind ErrorKind
	Msg  string
}

// ErrorKind classifies an Error.
type ErrorKind uint8

// The kinds of Error.
const (
	NotFound ErrorKind = iota + 1 // unknown endpoint, image or update
	Conflict                      // the state forbids it: no object 5, an active update, finished already
	Invalid                       // a bad option
)

func (e *Error) Error() string { return "fwupdate: " + e.Msg }

func refuse(k ErrorKind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// stepArgs are the arguments of a KindStep job.
type stepArgs struct {
	Update int64 `json:"update"`
}

func stepJob(id int64, at time.Time) store.NewJob {
	args, _ := json.Marshal(stepArgs{Update: id})
	return store.NewJob{Kind: KindStep, Key: strconv.FormatInt(id, 10), Args: args, RunAt: at}
}

// New builds an Updater and registers KindStep with cfg.Engine.
func New(cfg Config) (*Updater, error) {
	if cfg.Store == nil || cfg.Engine == nil || cfg.Queue == nil || cfg.Registry == nil || cfg.Devices == nil {
		return nil, errors.New("fwupdate: Config.Store, Engine, Queue, Registry and Devices are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.DownloadTimeout, DefaultDownloadTimeout)
	def(&cfg.UpdateTimeout, DefaultUpdateTimeout)
	def(&cfg.PushTimeout, DefaultPushTimeout)
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.ReadInterval, DefaultReadInterval)
	if cfg.MaxPushFailures <= 0 {
		cfg.MaxPushFailures = DefaultMaxPushFailures
	}
	u := &Updater{cfg: cfg, st: cfg.Store, log: cfg.Logger, active: map[int64]int64{}, names: map[string]int64{},
		pushing: map[int64]context.CancelFunc{},
		pending: map[int64]bool{}, kickCh: make(chan struct{}, 1)}
	if u.log == nil {
		u.log = slog.Default()
	}
	err := cfg.Engine.Register(KindStep, jobs.Kind{
		Handler: func(ctx context.Context, j store.Job) error {
			var a stepArgs
			if err := json.Unmarshal(j.Args, &a); err != nil {
				return fmt.Errorf("fwupdate: %s job %d: args: %w", KindStep, j.ID, err)
			}
			return u.step(ctx, a.Update)
		},
		Timeout:     cfg.PushTimeout + time.Minute,
		MaxAttempts: 20,
	})
	if err != nil {
		return nil, err
	}
	if err := u.registerCampaigns(); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *Updater) now() time.Time { return u.cfg.Registry.Now() }

// Start starts updating endpoint to the image of version: it stores the
// update (state pending) and the job that drives it in one transaction
// and returns the update. An unknown endpoint or image, a device whose
// registration has no Firmware Update object (5), an endpoint with an
// active update and bad options are an *Error.
func (u *Updater) Start(ctx context.Context, endpoint, version string, o Options) (store.FirmwareUpdate, error) {
	switch o.Method {
	case MethodAuto, MethodPull, MethodPush:
	default:
		return store.FirmwareUpdate{}, refuse(Invalid, "unknown method %q (pull, push or empty for auto)", o.Method)
	}
	if _, ok := protocolNumbers[o.Protocol]; !ok && o.Protocol != ProtocolAuto {
		return store.FirmwareUpdate{}, refuse(Invalid, "unknown protocol %q (coap, coaps, http, https or empty for auto)", o.Protocol)
	}
	if o.Method == MethodPush && o.Protocol != ProtocolAuto {
		return store.FirmwareUpdate{}, refuse(Invalid, "a protocol is for pull; push writes the package to /5/0/0")
	}
	if o.Protocol != ProtocolAuto {
		if u.cfg.Bases != nil && u.cfg.Bases().offered()[o.Protocol] == "" {
			return store.FirmwareUpdate{}, refuse(Invalid, "no download URL base is configured for protocol %s", o.Protocol)
		}
		o.Method = MethodPull
	}
	e, err := u.st.GetEndpoint(ctx, endpoint)
	if errors.Is(err, store.ErrNotFound) {
		return store.FirmwareUpdate{}, refuse(NotFound, "unknown endpoint %q", endpoint)
	}
	if err != nil {
		return store.FirmwareUpdate{}, fmt.Errorf("fwupdate: start: %w", err)
	}
	fw, err := u.st.GetFirmwareByVersion(ctx, version)
	if errors.Is(err, store.ErrNotFound) {
		return store.FirmwareUpdate{}, refuse(NotFound, "unknown firmware image version %q", version)
	}
	if err != nil {
		return store.FirmwareUpdate{}, fmt.Errorf("fwupdate: start: %w", err)
	}
	links, err := linkformat.ParseRegistration([]byte(e.ObjectLinks))
	if _, ok := links.Object(5); err != nil || !ok {
		return store.FirmwareUpdate{}, refuse(Conflict, "device %q has no Firmware Update object (5) in its registration", endpoint)
	}
	if o.Method == MethodPush && u.cfg.FirmwareDir == "" {
		return store.FirmwareUpdate{}, refuse(Invalid, "push needs the firmware directory, which is not configured")
	}
	det, _ := json.Marshal(detail{OptionMethod: o.Method, OptionProtocol: o.Protocol})
	now := u.now()
	var out store.FirmwareUpdate
	err = u.st.WithTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = u.st.CreateFirmwareUpdateTx(ctx, tx, store.FirmwareUpdate{
			EndpointID: e.ID, FirmwareID: fw.ID, Version: fw.Version, State: StatePending, Method: o.Method,
			Protocol: o.Protocol, Detail: det, StateAt: now, Deadline: now.Add(u.cfg.DownloadTimeout), CreatedBy: o.By,
			CampaignID: o.Campaign,
		})
		if err != nil {
			return err
		}
		return u.cfg.Engine.InsertTx(ctx, tx, stepJob(out.ID, time.Time{}))
	})
	if errors.Is(err, store.ErrConflict) {
		if cur, gerr := u.st.ActiveFirmwareUpdate(ctx, e.ID); gerr == nil {
			return store.FirmwareUpdate{}, refuse(Conflict, "endpoint %q has an active firmware update (id %d, %s to %s)",
				endpoint, cur.ID, cur.State, cur.Version)
		}
	}
	if err != nil {
		return store.FirmwareUpdate{}, fmt.Errorf("fwupdate: start %s on %q: %w", version, endpoint, err)
	}
	u.cfg.Engine.Kick()
	u.track(out, e.Name)
	u.changed(ctx, e.Name, out)
	u.log.Info("firmware update started", "endpoint", e.Name, "update", out.ID, "version", fw.Version, "method", o.Method)
	return out, nil
}

// Get returns the update id.
func (u *Updater) Get(ctx context.Context, id int64) (store.FirmwareUpdate, error) {
	up, err := u.st.GetFirmwareUpdate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return up, refuse(NotFound, "unknown firmware update %d", id)
	}
	return up, err
}

// Cancel cancels the active update id: its operations still queued are
// cancelled, an empty Package URI is queued when anything reached the
// device (which resets its update state machine), and the observations
// the update made are cancelled. An unknown update, or one that finished,
// is an *Error.
func (u *Updater) Cancel(ctx context.Context, id int64, by int64) (store.FirmwareUpdate, error) {
	// A push in progress holds the update's step: cut it short.
	u.mu.Lock()
	if stop := u.pushing[id]; stop != nil {
		stop()
	}
	u.mu.Unlock()
	mu := &u.locks[id%int64(len(u.locks))]
	mu.Lock()
	defer mu.Unlock()
	for try := 0; ; try++ {
		up, err := u.Get(ctx, id)
		if err != nil {
			return up, err
		}
		if !up.Active {
			return up, refuse(Conflict, "firmware update %d has finished (%s)", id, up.State)
		}
		e, err := u.st.GetEndpointByID(ctx, up.EndpointID)
		if err != nil {
			return up, fmt.Errorf("fwupdate: cancel %d: %w", id, err)
		}
		var d detail
		_ = json.Unmarshal(up.Detail, &d)
		reached := d.Pushed
		for _, role := range slices.Sorted(mapKeys(d.Ops)) {
			op, err := u.st.GetOperation(ctx, d.Ops[role])
			if err != nil {
				continue
			}
			switch {
			case op.Status == store.OperationQueued:
				if _, err := u.cfg.Queue.Cancel(ctx, e.ID, e.Name, op.ID); err != nil && !errors.Is(err, store.ErrConflict) {
					return up, fmt.Errorf("fwupdate: cancel %d: %w", id, err)
				}
			case role == roleWriteURI || role == roleExecute:
				reached = true
			}
		}
		var ops []queued
		if reached {
			ops = append(ops, queued{Role: "cancel_uri", Op: devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pathURI},
				Values: []lwm2m.Record{{Path: pathURI, Value: lwm2m.String("")}}}})
		}
		ops = append(ops, unobserve(d)...)
		d.Observed = nil
		now := u.now()
		up.State, up.StateAt, up.Deadline, up.Active, up.FinishedAt = StateCancelled, now, time.Time{}, false, now
		up.Result = "cancelled by an operator"
		if err := u.enqueue(ctx, e, &up, &d, ops); err != nil {
			return up, err
		}
		up.Detail, _ = json.Marshal(d)
		done, err := u.st.UpdateFirmwareUpdate(ctx, up)
		if errors.Is(err, store.ErrConflict) && try < 3 {
			continue // a step on another node wrote it meanwhile
		}
		if err != nil {
			return up, fmt.Errorf("fwupdate: cancel %d: %w", id, err)
		}
		u.untrack(done)
		u.changed(ctx, e.Name, done)
		u.log.Info("firmware update cancelled", "endpoint", e.Name, "update", id, "by", by)
		return done, u.finished(ctx, done)
	}
}

// unobserve is the cancel-observes of the observations d made.
func unobserve(d detail) []queued {
	var out []queued
	for _, s := range d.Observed {
		p, err := lwm2m.ParsePath(s)
		if err != nil {
			continue
		}
		out = append(out, queued{Role: "unobserve " + s, Op: devmgmt.Operation{Kind: devmgmt.KindCancelObserve, Paths: []lwm2m.Path{p}}})
	}
	return out
}

func mapKeys(m map[string]int64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// enqueue queues ops for the device of e, recording them on up and d.
func (u *Updater) enqueue(ctx context.Context, e store.Endpoint, up *store.FirmwareUpdate, d *detail, ops []queued) error {
	for _, q := range ops {
		op, err := u.cfg.Queue.Enqueue(ctx, jobs.NewOperation{EndpointID: e.ID, Endpoint: e.Name, Operation: q.Op})
		if err != nil {
			return fmt.Errorf("fwupdate: update %d: queue %s: %w", up.ID, q.Op.Kind, err)
		}
		if d.Ops == nil {
			d.Ops = map[string]int64{}
		}
		d.Ops[q.Role] = op.ID
		up.OperationIDs = append(up.OperationIDs, op.ID)
	}
	return nil
}

// changed publishes the update's state and records it in the device's
// history (an event of kind "firmware.<state>").
func (u *Updater) changed(ctx context.Context, endpoint string, up store.FirmwareUpdate) {
	u.cfg.Events.Publish(events.Event{Topic: events.TopicFirmware, Time: up.UpdatedAt, Endpoint: endpoint, Data: events.FirmwareEvent{
		ID: up.ID, Version: up.Version, State: up.State, Method: up.Method, Protocol: up.Protocol,
		ResultCode: up.ResultCode, Result: up.Result, Error: up.Error,
	}})
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := u.st.IngestEvent(wctx, store.Event{EndpointID: up.EndpointID, Kind: "firmware." + up.State}, nil); err != nil {
		u.log.Warn("firmware update state not recorded in the device's history", "update", up.ID, "err", err)
	}
}

// step advances update id: it gathers what is known, decides, and does
// it. It returns an error only when the database fails.
func (u *Updater) step(ctx context.Context, id int64) error {
	mu := &u.locks[id%int64(len(u.locks))]
	mu.Lock()
	defer mu.Unlock()
	up, err := u.st.GetFirmwareUpdate(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !up.Active {
		u.untrack(up)
		return nil
	}
	e, err := u.st.GetEndpointByID(ctx, up.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted with its endpoint
	}
	if err != nil {
		return err
	}
	u.track(up, e.Name)
	f, err := u.facts(ctx, up, e)
	if err != nil {
		return err
	}
	d := decide(f)
	if d.Push {
		u.push(ctx, e, f, &d)
	}
	if !d.Update.Active {
		d.Queue = append(d.Queue, u.cleanup(ctx, e, d.Detail)...)
		d.Detail.Observed = nil
	}
	if err := u.enqueue(ctx, e, &d.Update, &d.Detail, d.Queue); err != nil {
		if !errors.Is(err, devmgmt.ErrInvalid) {
			return err
		}
		// The device cannot take the request (e.g. a URI too long for it):
		// the update cannot go on.
		d.Update.State, d.Update.StateAt, d.Update.Active, d.Update.FinishedAt = StateFailed, f.Now, false, f.Now
		d.Update.Error, d.Update.Result, d.Changed = err.Error(), err.Error(), true
	}
	d.Update.Detail, _ = json.Marshal(d.Detail)
	done, err := u.st.UpdateFirmwareUpdate(ctx, d.Update)
	if errors.Is(err, store.ErrConflict) {
		// Written meanwhile (a cancel, a step on another node): look again.
		return u.cfg.Engine.Insert(ctx, stepJob(id, time.Time{}))
	}
	if err != nil {
		return err
	}
	if done.State == StateSucceeded {
		if err := u.st.SetEndpointFirmwareVersion(ctx, e.ID, done.Version); err != nil {
			u.log.Warn("firmware update: the endpoint's firmware version not recorded", "endpoint", e.Name, "err", err)
		}
	}
	if d.Changed {
		u.changed(ctx, e.Name, done)
		u.log.Info("firmware update", "endpoint", e.Name, "update", id, "state", done.State, "result", done.Result, "err", done.Error)
	}
	if !done.Active {
		u.untrack(done)
		return u.finished(ctx, done)
	}
	next := f.Now.Add(u.cfg.PollInterval)
	if !done.Deadline.IsZero() && done.Deadline.Before(next) {
		next = done.Deadline
	}
	return u.cfg.Engine.Insert(ctx, stepJob(id, next))
}

// finished tells the campaign of the finished update up, if any, at once.
func (u *Updater) finished(ctx context.Context, up store.FirmwareUpdate) error {
	if up.CampaignID == 0 {
		return nil
	}
	return u.cfg.Engine.Insert(ctx, campaignJob(up.CampaignID, time.Time{}))
}

// cleanup cancels what a finished update left queued and returns the
// cancel-observes of the observations it made.
func (u *Updater) cleanup(ctx context.Context, e store.Endpoint, d detail) []queued {
	for _, id := range d.Ops {
		op, err := u.st.GetOperation(ctx, id)
		if err == nil && op.Status == store.OperationQueued {
			if _, err := u.cfg.Queue.Cancel(ctx, e.ID, e.Name, id); err != nil && !errors.Is(err, store.ErrConflict) {
				u.log.Warn("firmware update: queued operation not cancelled", "endpoint", e.Name, "operation", id, "err", err)
			}
		}
	}
	return unobserve(d)
}

// facts gathers what is known of update up of endpoint e.
func (u *Updater) facts(ctx context.Context, up store.FirmwareUpdate, e store.Endpoint) (facts, error) {
	f := facts{
		Update: up, Now: u.now(), Ops: map[string]store.Operation{}, Values: map[lwm2m.Path]value{},
		Observing: map[lwm2m.Path]bool{}, Offered: map[string]string{},
		DownloadTimeout: u.cfg.DownloadTimeout, UpdateTimeout: u.cfg.UpdateTimeout, ReadInterval: u.cfg.ReadInterval,
		MaxPushFailures: u.cfg.MaxPushFailures,
	}
	if u.cfg.Bases != nil {
		f.Offered = u.cfg.Bases().offered()
	}
	if err := json.Unmarshal(up.Detail, &f.Detail); err != nil {
		return f, fmt.Errorf("fwupdate: update %d: detail: %w", up.ID, err)
	}
	if up.FirmwareID != 0 {
		fw, err := u.st.GetFirmware(ctx, up.FirmwareID)
		if err != nil {
			return f, err
		}
		f.Filename = fw.Filename
	}
	for role, id := range f.Detail.Ops {
		op, err := u.st.GetOperation(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return f, err
		}
		f.Ops[role] = op
	}
	note := func(p lwm2m.Path, v lwm2m.Value, at time.Time) {
		if cur, ok := f.Values[p]; !ok || at.After(cur.At) {
			f.Values[p] = value{Value: v, At: at}
		}
	}
	for _, prefix := range []lwm2m.Path{pathFirmware, pathVersion} {
		vals, err := u.st.LatestResources(ctx, e.ID, prefix)
		if err != nil {
			return f, err
		}
		for _, v := range vals {
			note(v.Path, v.Value, v.ReceivedAt)
		}
	}
	for _, role := range []string{roleReadInfo, roleReadState, roleReadVersion} {
		op, ok := f.Ops[role]
		if !ok || op.Status != store.OperationConfirmed {
			continue
		}
		res, err := jobs.DecodeResult(op.Response)
		if err != nil {
			continue
		}
		for _, r := range res.Values {
			note(r.Path, r.Value, op.UpdatedAt)
		}
	}
	reg, err := u.cfg.Registry.Current(ctx, e.Name)
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		return f, err
	case reg.EndpointID == e.ID:
		f.Online, f.RegisteredAt, f.DTLS = true, reg.RegisteredAt, reg.Transport == registry.TransportDTLS
		f.Reachable = u.cfg.Queue.Reachable(reg, f.Now)
		for _, o := range u.cfg.Registry.Observations(reg.ID) {
			if !o.Composite && len(o.Paths) == 1 {
				f.Observing[o.Paths[0]] = true
			}
		}
	}
	if !f.Online {
		f.DTLS = e.Transport == store.TransportDTLS
	}
	return f, nil
}

// push writes the image to /5/0/0 (Block1), recording the outcome on d:
// Pushed, a failure counted (the next wake tries again), or the update
// failed (the device refused it).
func (u *Updater) push(ctx context.Context, e store.Endpoint, f facts, d *decision) {
	fail := func(why string) {
		up := &d.Update
		up.State, up.StateAt, up.Deadline, up.Active, up.FinishedAt = StateFailed, f.Now, time.Time{}, false, f.Now
		up.Error, up.Result, d.Changed = why, why, true
	}
	if f.Filename == "" {
		fail("the image was removed")
		return
	}
	data, err := os.ReadFile(filepath.Join(u.cfg.FirmwareDir, f.Filename))
	if err != nil {
		fail("reading the image: " + err.Error())
		return
	}
	fw, err := u.st.GetFirmware(ctx, f.Update.FirmwareID)
	if err != nil {
		fail("reading the image: " + err.Error())
		return
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != fw.SHA256 || int64(len(data)) != fw.Size {
		fail(fmt.Sprintf("the image file %s does not match its record (size or SHA-256)", f.Filename))
		return
	}
	format := lwm2m.FormatOpaque
	pctx, cancel := context.WithTimeout(ctx, u.cfg.PushTimeout)
	defer cancel()
	u.mu.Lock()
	u.pushing[f.Update.ID] = cancel
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pushing, f.Update.ID)
		u.mu.Unlock()
	}()
	start := time.Now()
	_, err = u.cfg.Devices.Do(pctx, e.Name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pathPackage},
		Values: []lwm2m.Record{{Path: pathPackage, Value: lwm2m.Opaque(data)}}, Format: &format})
	var ce *devmgmt.CoAPError
	switch {
	case err == nil:
		d.Detail.Pushed = true
		u.log.Info("firmware pushed", "endpoint", e.Name, "update", f.Update.ID, "bytes", len(data), "took", time.Since(start).Round(time.Millisecond))
	case errors.As(err, &ce) && ce.Code < codes.InternalServerError && ce.Code != codes.RequestEntityIncomplete &&
		ce.Code != codes.Conflict && ce.Code != codes.TooManyRequests:
		fail("pushing the package to /5/0/0 failed: " + err.Error())
	case errors.Is(err, devmgmt.ErrInvalid), errors.Is(err, devmgmt.ErrVersion):
		fail("pushing the package to /5/0/0 failed: " + err.Error())
	default:
		d.Detail.PushFailures++
		u.log.Info("firmware push cut short; tried again when the device is next reachable", "endpoint", e.Name,
			"update", f.Update.ID, "failures", d.Detail.PushFailures, "err", err)
	}
}
