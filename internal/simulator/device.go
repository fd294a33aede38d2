package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// ErrStopped is returned by operations on a Device that was stopped.
var ErrStopped = errors.New("simulator: device stopped")

// ErrRegistration is wrapped by the errors of a failed Register (the
// server refused it or did not answer).
var ErrRegistration = errors.New("registration failed")

// Device is one simulated LwM2M client. Create it with NewDevice (or let a
// Fleet do it), run it with Start and end it with Stop. A Device is safe for
// concurrent use.
type Device struct {
	cfg      Config // with defaults applied; read-only
	index    int
	endpoint string
	clock    Clock
	log      *slog.Logger
	reg      *objects.Catalog
	runner   periodic.Func // shared by a fleet; else the device's own
	ownStop  chan struct{} // ends the device's own runner
	stats    counters
	kick     chan struct{} // wakes the run loop; buffered, size 1

	// mu guards every field below it. It is never held across network
	// I/O or calls to Config.OnEvent.
	mu         sync.Mutex
	conn       *client.Conn
	sock       *rebindConn // the DTLS session's socket; nil over plain CoAP
	model      *model
	rng        *rand.Rand // values
	faultRng   *rand.Rand // fault injection
	walks      map[lwm2m.Path]*walk
	timeOffset time.Duration // written Current Time minus Clock time

	version    lwm2m.Version
	registered bool
	location   string
	// What the server knows: the lifetime, binding and object list sent
	// with the last successful Register or Update.
	regLifetime int64
	regBinding  string
	regPayload  string
	lastReg     time.Time // last successful Register or Update

	wantRegister  bool // Register at the next step (reboot)
	wantUpdate    bool // Update at the next step
	wantDisable   bool // De-register and stay away (Execute /1/0/4)
	retryAt       time.Time
	retries       int
	disabledUntil time.Time
	nextValue     time.Time
	nextSend      time.Time
	awake         bool // queue mode: reachable
	lastActive    time.Time

	obs      map[string]*observation // by token
	inflight *inflightNote           // the notification awaiting its acknowledgement
	attrs    map[lwm2m.Path]linkformat.Attributes
	fw       firmware
	fwWG     sync.WaitGroup // running firmware downloads
	// fetchFirmware downloads a firmware package (download; tests replace it).
	fetchFirmware func(ctx context.Context, u *url.URL) ([]byte, error)

	capSeq int

	state   runState
	cancel  context.CancelFunc
	done    chan struct{} // closed when the run loop returned
	first   chan struct{} // closed after the first Register attempt
	firstMu sync.Once
	// firstErr is the result of the first Register attempt.
	firstErr error
}

type runState uint8

const (
	stateNew runState = iota
	stateRunning
	stateStopped
)

// NewDevice returns device number index (0-based) of cfg, not yet started.
func NewDevice(cfg Config, index int) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newDevice(cfg.withDefaults(), index, objects.Default(), nil)
}

func newDevice(cfg Config, index int, reg *objects.Catalog, runner periodic.Func) (*Device, error) {
	ep, err := cfg.EndpointName(index)
	if err != nil {
		return nil, err
	}
	d := &Device{
		cfg:      cfg,
		index:    index,
		endpoint: ep,
		clock:    cfg.Clock,
		log:      cfg.Logger.With("endpoint", ep),
		reg:      reg,
		runner:   runner,
		kick:     make(chan struct{}, 1),
		rng:      rand.New(rand.NewPCG(cfg.Seed, uint64(index))),
		faultRng: rand.New(rand.NewPCG(cfg.Seed^0x9e3779b97f4a7c15, uint64(index))),
		version:  cfg.Version,
		obs:      map[string]*observation{},
		attrs:    map[lwm2m.Path]linkformat.Attributes{},
		first:    make(chan struct{}),
	}
	d.fetchFirmware = d.download
	d.buildModel()
	return d, nil
}

// Endpoint returns the device's endpoint name.
func (d *Device) Endpoint() string { return d.endpoint }

// Index returns the device's number in its Config.
func (d *Device) Index() int { return d.index }

// Registered reports whether the device holds a registration.
func (d *Device) Registered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.registered
}

// Location returns the registration location ("/rd/..."), or "" when the
// device is not registered.
func (d *Device) Location() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.registered {
		return ""
	}
	return d.location
}

// Version returns the LwM2M version the device registers with (after any
// step-down).
func (d *Device) Version() lwm2m.Version {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Awake reports whether the device answers the server: always for binding
// U, within the receive window for UQ.
func (d *Device) Awake() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.queueMode() || d.awake
}

// LocalAddr returns the device's UDP address, or "" before Start.
func (d *Device) LocalAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return ""
	}
	return d.conn.LocalAddr().String()
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	s := d.stats.snapshot()
	s.Devices = 1
	d.mu.Lock()
	if d.registered {
		s.Registered = 1
	}
	if d.registered && (!d.queueMode() || d.awake) {
		s.Awake = 1
	}
	d.mu.Unlock()
	return s
}

// Value returns the current value of a single-instance resource
// ("/3303/0/5700") or resource instance, and whether it exists.
func (d *Device) Value(p lwm2m.Path) (lwm2m.Value, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs, err := d.model.read(p)
	if err != nil || len(rs) != 1 || rs[0].Path != p {
		return lwm2m.Value{}, false
	}
	return rs[0].Value, true
}

// Read returns the records of the readable resources at or under p.
func (d *Device) Read(p lwm2m.Path) ([]lwm2m.Record, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.model.read(p)
}

// Set changes the value of an existing resource or resource instance as the
// device itself would (no operation or type checks beyond existence), and
// lets observations see the change.
func (d *Device) Set(p lwm2m.Path, v lwm2m.Value) error {
	if p.Depth() < 3 {
		return fmt.Errorf("simulator: Set %s: not a resource", p)
	}
	d.mu.Lock()
	_, _, r, err := d.model.lookup(p.Truncate(3))
	if err == nil && r.def.Multiple != p.IsResourceInstance() {
		err = fmt.Errorf("simulator: Set %s: multiplicity mismatch", p)
	}
	if err == nil {
		d.model.set(p, v)
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.wake()
	return nil
}

// TriggerUpdate makes the device send a registration Update now.
func (d *Device) TriggerUpdate() {
	d.mu.Lock()
	d.wantUpdate = true
	d.mu.Unlock()
	d.wake()
}

// TriggerSend makes the device send its Send paths now (LwM2M 1.1+).
func (d *Device) TriggerSend() {
	d.mu.Lock()
	d.nextSend = time.Time{}
	d.mu.Unlock()
	d.wake()
}

// Reboot simulates a reboot: observations and attributes are lost, the
// device opens a new socket (a new source port) and registers again
// without de-registering.
func (d *Device) Reboot() {
	d.mu.Lock()
	d.requestRebootLocked()
	d.mu.Unlock()
	d.wake()
}

// wake makes the run loop evaluate its state now.
func (d *Device) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Device) queueMode() bool {
	b := d.model.value(pathBinding).StringValue()
	return len(b) > 0 && b[len(b)-1] == 'Q'
}

func (d *Device) emit(e Event) {
	if d.cfg.OnEvent == nil {
		return
	}
	e.Endpoint = d.endpoint
	if e.Time.IsZero() {
		e.Time = d.clock.Now()
	}
	d.cfg.OnEvent(e)
}

// Start opens the device's socket, starts its run loop and waits for the
// first Register to finish. It returns that Register's error, or ctx's; the
// device keeps running either way, retrying registration with back-off,
// until Stop. Start fails without starting anything when the socket
// cannot be opened or the device was started before.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.state != stateNew {
		d.mu.Unlock()
		return errors.New("simulator: device already started")
	}
	if d.runner == nil {
		d.ownStop = make(chan struct{})
		d.runner = periodic.New(d.ownStop, runnerTick)
	}
	conn, err := d.dial()
	if err != nil {
		d.state = stateStopped
		if d.ownStop != nil {
			close(d.ownStop)
		}
		d.mu.Unlock()
		return err
	}
	d.conn = conn
	d.state = stateRunning
	loopCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.done = make(chan struct{})
	d.nextValue = d.clock.Now().Add(d.cfg.ValueInterval)
	d.nextSend = farFuture
	if d.cfg.SendInterval > 0 {
		d.nextSend = d.clock.Now().Add(d.cfg.SendInterval)
	}
	d.mu.Unlock()
	go d.run(loopCtx)
	select {
	case <-d.first:
		return d.firstErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the run loop, de-registers (when registered) and closes the
// socket. It returns the De-register error; the device is stopped either
// way. Stop on a device that was never started, or twice, does nothing.
func (d *Device) Stop(ctx context.Context) error {
	d.mu.Lock()
	if d.state != stateRunning {
		d.state = stateStopped
		d.mu.Unlock()
		return nil
	}
	d.state = stateStopped
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	cancel()
	<-done
	d.mu.Lock()
	d.stopDownloadLocked()
	d.mu.Unlock()
	d.fwWG.Wait()
	err := d.deregister(ctx)
	d.mu.Lock()
	conn := d.conn
	d.conn = nil
	d.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
		<-conn.Done()
	}
	if d.ownStop != nil {
		close(d.ownStop)
	}
	return err
}

// dial opens a new socket to the server. Called with mu held.
func (d *Device) dial() (*client.Conn, error) {
	opts := []udp.Option{
		options.WithHandlerFunc(d.handle),
		options.WithErrors(func(err error) { d.log.Debug("coap", "err", err) }),
		options.WithRequestMonitor(d.monitor),
		options.WithPeriodicRunner(d.runner),
		// Block1 pushes of firmware (up to maxFirmware) take thousands of
		// exchanges: give a transfer longer than go-coap's 3 s default.
		options.WithBlockwise(true, blockwise.SZX1024, 2*time.Minute),
	}
	var conn *client.Conn
	var err error
	if d.cfg.PSK != nil || d.cfg.Certificate != nil {
		conn, err = d.dialDTLS(opts)
	} else {
		d.sock = nil
		conn, err = udp.Dial(d.cfg.Server, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("simulator: %s: dial %s: %w", d.endpoint, d.cfg.Server, err)
	}
	return conn, nil
}

// run is the device's loop: it performs what is due, then waits for the
// next deadline or a kick.
func (d *Device) run(ctx context.Context) {
	defer close(d.done)
	defer d.firstMu.Do(func() { d.firstErr = ErrStopped; close(d.first) })
	t := d.clock.NewTimer()
	defer t.Stop()
	for {
		next := d.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if next.IsZero() {
			continue
		}
		t.ResetAt(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		case <-d.kick:
			t.Stop()
		}
	}
}

// step performs everything that is due and returns the next deadline
// (zero: step again at once).
func (d *Device) step(ctx context.Context) time.Time {
	d.reopenIfClosed()
	now := d.clock.Now()
	d.mu.Lock()
	if d.wantRegister {
		d.rebootLocked()
		d.mu.Unlock()
		d.reconnect()
		d.mu.Lock()
	}
	if d.wantDisable {
		d.wantDisable = false
		secs := d.model.value(pathDisableTime).IntValue()
		d.mu.Unlock()
		_ = d.deregister(ctx)
		d.mu.Lock()
		d.disabledUntil = now.Add(time.Duration(secs) * time.Second)
	}
	if !d.disabledUntil.IsZero() {
		if now.Before(d.disabledUntil) {
			at := d.disabledUntil
			d.mu.Unlock()
			return at
		}
		d.disabledUntil = time.Time{}
	}
	if !d.registered {
		if now.Before(d.retryAt) {
			at := d.retryAt
			d.mu.Unlock()
			return at
		}
		d.mu.Unlock()
		err := d.register(ctx)
		d.firstMu.Do(func() { d.firstErr = err; close(d.first) })
		if err != nil {
			d.mu.Lock()
			d.retries++
			d.retryAt = d.clock.Now().Add(d.backoffLocked())
			d.mu.Unlock()
		}
		return time.Time{}
	}

	// Values.
	if !now.Before(d.nextValue) {
		d.stepValues(now)
		d.nextValue = d.nextValue.Add(d.cfg.ValueInterval)
		if !d.nextValue.After(now) {
			d.nextValue = now.Add(d.cfg.ValueInterval)
		}
	}
	d.fwStepLocked(now)

	// What is due to go out.
	updateDue := !now.Before(d.updateAtLocked())
	sendDue := d.version.AtLeast(lwm2m.V1_1) && !now.Before(d.nextSend)
	notes, nextNotify := d.dueNotificationsLocked(now)

	if d.queueMode() && !d.awake && (updateDue || sendDue || len(notes) > 0) {
		d.awake = true
		d.lastActive = now
		updateDue = true
		d.mu.Unlock()
		d.emit(Event{Kind: EventWake})
		d.mu.Lock()
	}
	d.mu.Unlock()

	if updateDue {
		if err := d.update(ctx); err != nil {
			if !d.Registered() {
				return time.Time{}
			}
		}
	}
	for _, n := range notes {
		d.notify(ctx, n)
	}
	if sendDue {
		// The interval runs from when the Send was due, not from its
		// answer: a slow or failed Send does not shift the schedule (and
		// a test moving the clock on after the answer sees the same
		// schedule).
		d.mu.Lock()
		d.nextSend = farFuture
		if d.cfg.SendInterval > 0 {
			d.nextSend = now.Add(d.cfg.SendInterval)
		}
		d.mu.Unlock()
		d.send(ctx)
	}

	now = d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	next := d.nextValue
	if d.registered {
		next = earliest(next, d.updateAtLocked())
	}
	if d.version.AtLeast(lwm2m.V1_1) {
		next = earliest(next, d.nextSend)
	}
	next = earliest(next, nextNotify)
	next = earliest(next, d.fw.next)
	if d.queueMode() && d.awake {
		sleepAt := d.lastActive.Add(d.cfg.ReceiveWindow)
		if !now.Before(sleepAt) {
			d.awake = false
			d.mu.Unlock()
			d.emit(Event{Kind: EventSleep})
			d.mu.Lock()
		} else {
			next = earliest(next, sleepAt)
		}
	}
	if d.wantRegister || d.wantDisable {
		return time.Time{}
	}
	return next
}

// updateAtLocked returns when the next Update is due: at once when one was
// asked for, else after 90% of the lifetime, and not before a back-off
// after a failed Update has passed.
func (d *Device) updateAtLocked() time.Time {
	at := d.lastReg.Add(time.Duration(d.regLifetime) * time.Second * 9 / 10)
	if d.wantUpdate {
		at = time.Time{}
	}
	if d.retryAt.After(at) {
		at = d.retryAt
	}
	return at
}

// farFuture stands for "never" in deadlines.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}

// backoffLocked returns the wait before the next registration attempt:
// 1 s doubling per failure up to 60 s, with ±20% jitter.
func (d *Device) backoffLocked() time.Duration {
	b := time.Second << min(d.retries-1, 6)
	b = min(b, time.Minute)
	return time.Duration(float64(b) * (0.8 + 0.4*d.rng.Float64()))
}

// requestRebootLocked schedules a reboot for the run loop.
func (d *Device) requestRebootLocked() {
	d.wantRegister = true
}

// rebootLocked resets what a reboot loses: registration state,
// observations and attributes.
func (d *Device) rebootLocked() {
	d.wantRegister = false
	d.registered = false
	d.location = ""
	d.retryAt = time.Time{}
	d.retries = 0
	d.clearObservationsLocked()
	clear(d.attrs)
	d.stats.reboots.Add(1)
	d.mu.Unlock()
	d.emit(Event{Kind: EventReboot})
	d.mu.Lock()
}

// reconnect replaces the socket with a new one, as a rebooted device gets
// a new source port.
func (d *Device) reconnect() {
	d.mu.Lock()
	old := d.conn
	conn, err := d.dial()
	if err == nil {
		d.conn = conn
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("reconnect failed, keeping the old socket", "err", err)
		return
	}
	if old != nil {
		_ = old.Close()
		<-old.Done()
	}
}

// reopenIfClosed opens a new socket when go-coap closed the current one,
// as it does when the socket reports an error (ICMP port unreachable
// while the server restarts). A real device keeps running: it goes on
// from a new socket, as after a NAT rebinding, keeps its registration and
// sends an Update, so the server learns its new address (over plain CoAP
// it knows the device by address; over DTLS the new socket has a new
// session, which an Update binds). Only the run loop calls it.
func (d *Device) reopenIfClosed() {
	if c := d.connection(); c == nil || c.Context().Err() == nil {
		return
	}
	d.log.Debug("socket closed, opening a new one")
	d.reconnect()
	d.mu.Lock()
	if d.registered {
		d.wantUpdate = true
	}
	d.mu.Unlock()
	d.wake() // the Update is due at once, whatever this step decided
}

// connection returns the current socket, or nil after Stop.
func (d *Device) connection() *client.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn
}

// newRequest builds a request on conn with a fresh token; the caller
// releases it.
func newRequest(ctx context.Context, conn *client.Conn) (*pool.Message, error) {
	token, err := message.GetToken()
	if err != nil {
		return nil, err
	}
	req := conn.AcquireMessage(ctx)
	req.SetToken(token)
	req.SetType(message.Confirmable)
	return req, nil
}

// afterWrite runs f once the response to r has been sent (or at once when
// the transport offers no such hook).
func afterWrite(r *pool.Message, f func()) {
	if !responsewriter.AfterWrite(r.Context(), f) {
		f()
	}
}
