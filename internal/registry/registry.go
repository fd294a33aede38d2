package registry

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// ErrNotFound is matched (errors.Is) when a registration ID or observation
// token is unknown, or the registration it named has ended.
var ErrNotFound = errors.New("registration not found")

// Clock tells the registry the time. Tests pass a fake one.
type Clock interface{ Now() time.Time }

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// Options tune a Registry. The zero Options is valid.
type Options struct {
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// Grace is added to a registration's lifetime before it expires, to
	// absorb network delay and retransmission of the device's Update.
	// Zero means no grace.
	Grace time.Duration
	// Logger receives one line per expired registration and per store
	// error met while sweeping; nil means slog.Default().
	Logger *slog.Logger
	// Retention, when positive, is how long an endpoint nobody has a stake
	// in stays stored after it was last heard from (see
	// store.RemoveStaleEndpoints); Run removes such endpoints hourly.
	Retention time.Duration
	// Ingest, when set, is the writer the registry stores everything
	// through (Registers, Updates, ends of registrations, observations and
	// the registration history, object 10240), batched with the other
	// writes of the server; nil writes to the store directly, one
	// transaction each.
	Ingest *ingest.Writer
}

// Registration is one live registration. Values returned by the registry
// are copies: the caller may keep them, and must not modify the slices in
// Objects, which are shared with the registry.
type Registration struct {
	ID         string // registration ID, the <id> of the location rd/<id>
	Endpoint   string // endpoint client name (ep=)
	EndpointID int64  // the endpoint's row ID in the store
	Addr       netip.AddrPort
	// Transport is the transport the device last registered, updated or
	// moved its address (SetAddr) over; requests to the device go back over
	// it, also after a restart.
	Transport Transport
	Lifetime  uint32 // seconds
	Version   lwm2m.Version
	Binding   string // "U", "UQ", "T", ... as sent (b=), "U" when absent
	Queue     bool   // queue mode (Q parameter, or binding "UQ" in 1.0)
	SMS       string
	Objects   linkformat.Registration
	// RegisteredAt is the time of the Register; UpdatedAt the time of the
	// last Register or Update, from which the lifetime runs; LastSeen the
	// time of the last message from the device the transport reported
	// (Register, Update, Send, notification).
	RegisteredAt time.Time
	UpdatedAt    time.Time
	LastSeen     time.Time
}

// ExpiresAt is the time the registration ends unless updated.
func (r Registration) ExpiresAt(grace time.Duration) time.Time {
	return r.UpdatedAt.Add(time.Duration(r.Lifetime)*time.Second + grace)
}

// HasObject reports whether the client announced object id.
func (r Registration) HasObject(id uint16) bool {
	_, ok := r.Objects.Object(id)
	return ok
}

// HasInstance reports whether the client announced object instance
// obj/inst. An object announced without instance links counts as having
// none.
func (r Registration) HasInstance(obj, inst uint16) bool {
	o, ok := r.Objects.Object(obj)
	return ok && slices.Contains(o.Instances, inst)
}

// RegisterRequest is a validated Register.
type RegisterRequest struct {
	Endpoint string
	Lifetime uint32 // seconds, > 0
	Version  lwm2m.Version
	Binding  string
	Queue    bool
	SMS      string
	Objects  linkformat.Registration
	// ObjectLinks is the link-format payload as received, stored with the
	// endpoint.
	ObjectLinks string
	Addr        netip.AddrPort
	Transport   Transport
	// CheckCredentials refuses the Register with an error matching
	// store.ErrCredentialRequired when the endpoint has credentials, as
	// a Register over plain CoAP is when devices may have them. It is
	// checked in the transaction that records the Register, without a
	// query of its own.
	CheckCredentials bool
}

// UpdateRequest is a validated Update; zero fields leave the registration
// unchanged.
type UpdateRequest struct {
	Lifetime   uint32 // 0: unchanged
	Binding    string // "": unchanged
	Queue      bool   // set queue mode (binding "UQ" in 1.0); never cleared by an Update
	SMS        string
	HasSMS     bool // SMS is to be set, even to ""
	HasObjects bool // Objects and ObjectLinks replace the object list
	Objects    linkformat.Registration
	// ObjectLinks is the new link-format payload as received.
	ObjectLinks string
	// Addr, when valid, is the device's new address, reached over
	// Transport.
	Addr      netip.AddrPort
	Transport Transport
	// CheckCredentials refuses the Update as RegisterRequest's does.
	CheckCredentials bool
}

// EventKind says what happened to a registration.
type EventKind uint8

// The registration events.
const (
	Registered EventKind = iota + 1
	Updated
	Deregistered
	Expired
)

func (k EventKind) String() string {
	switch k {
	case Registered:
		return "registered"
	case Updated:
		return "updated"
	case Deregistered:
		return "deregistered"
	case Expired:
		return "expired"
	}
	return "event(?)"
}

// Event is delivered to Subscribe listeners after a change is stored.
// Registration is the state after the change (for Deregistered and
// Expired, the last state).
type Event struct {
	Kind         EventKind
	Registration Registration
}

// Registry holds the live registrations. Create it with New.
type Registry struct {
	st     *store.Store
	clock  Clock
	grace  time.Duration
	keep   time.Duration // Options.Retention
	log    *slog.Logger
	ingest *ingest.Writer
	seed   maphash.Seed

	// stripes serialize the store write and the in-memory change of one
	// endpoint name (Register, Update, De-register and expiry of the same
	// device never interleave). A stripe is held while the write waits for
	// its batch, so their number bounds how many registrations one batch
	// can take: thousands, for a fleet that registers at once.
	stripes [4096]sync.Mutex

	mu        sync.RWMutex
	byID      map[string]*entry         // guarded by mu
	byName    map[string]*entry         // guarded by mu
	byAddr    map[netip.AddrPort]*entry // guarded by mu; for Send over plain CoAP only
	tokens    map[string]*Observation   // guarded by mu; key is the raw token
	listeners []func(Event)             // guarded by mu
}

// entry is the registry's record of one registration.
type entry struct {
	reg    Registration // guarded by Registry.mu
	tokens []string     // guarded by Registry.mu; observation tokens on this registration
}

// New returns an empty registry writing through to st.
func New(st *store.Store, opts Options) *Registry {
	r := &Registry{
		st:     st,
		clock:  opts.Clock,
		grace:  opts.Grace,
		keep:   opts.Retention,
		log:    opts.Logger,
		ingest: opts.Ingest,
		seed:   maphash.MakeSeed(),
		byID:   make(map[string]*entry),
		byName: make(map[string]*entry),
		byAddr: make(map[netip.AddrPort]*entry),
		tokens: make(map[string]*Observation),
	}
	if r.clock == nil {
		r.clock = ClockFunc(time.Now)
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Now returns the registry's clock reading.
func (r *Registry) Now() time.Time { return r.clock.Now() }

// Grace returns Options.Grace.
func (r *Registry) Grace() time.Duration { return r.grace }

// Subscribe adds a listener called after every stored change. Listeners
// run synchronously on the goroutine that made the change and must return
// quickly.
func (r *Registry) Subscribe(fn func(Event)) {
	r.mu.Lock()
	r.listeners = append(r.listeners, fn)
	r.mu.Unlock()
}

func (r *Registry) emit(ev Event) {
	r.mu.RLock()
	ls := r.listeners
	r.mu.RUnlock()
	for _, fn := range ls {
		fn(ev)
	}
}

func (r *Registry) stripe(name string) *sync.Mutex {
	return &r.stripes[maphash.String(r.seed, name)%uint64(len(r.stripes))]
}

// newID returns a fresh registration ID: 10 characters of lower-case
// base32 (50 random bits), unused by any live registration.
func (r *Registry) newID() string {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for {
		var b [7]byte
		_, _ = rand.Read(b[:])
		id := toLower(enc.EncodeToString(b[:])[:10])
		r.mu.RLock()
		_, taken := r.byID[id]
		r.mu.RUnlock()
		if !taken {
			return id
		}
	}
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Register records a new registration for req.Endpoint, replacing any
// earlier registration of the same endpoint (whose observations are
// dropped, as the client drops them). It returns the registration with its
// new ID.
func (r *Registry) Register(ctx context.Context, req RegisterRequest) (Registration, error) {
	if req.Endpoint == "" {
		return Registration{}, errors.New("registry: register: empty endpoint name")
	}
	mu := r.stripe(req.Endpoint)
	mu.Lock()
	defer mu.Unlock()

	now := r.clock.Now()
	reg := Registration{
		ID:           r.newID(),
		Endpoint:     req.Endpoint,
		Addr:         req.Addr,
		Transport:    req.Transport,
		Lifetime:     req.Lifetime,
		Version:      req.Version,
		Binding:      req.Binding,
		Queue:        req.Queue,
		SMS:          req.SMS,
		Objects:      req.Objects,
		RegisteredAt: now,
		UpdatedAt:    now,
		LastSeen:     now,
	}
	if reg.Binding == "" {
		reg.Binding = "U"
	}
	// The write also deletes the stored observations of the registration
	// replaced, live in memory or not; the new one has none yet.
	id, err := r.persistRegister(ctx, reg, req.ObjectLinks, req.CheckCredentials)
	if err != nil {
		return Registration{}, fmt.Errorf("registry: register %q: %w", req.Endpoint, err)
	}
	reg.EndpointID = id

	r.mu.Lock()
	if old := r.byName[reg.Endpoint]; old != nil {
		r.removeLocked(old)
	}
	e := &entry{reg: reg}
	r.byID[reg.ID] = e
	r.byName[reg.Endpoint] = e
	r.setAddrLocked(e, reg.Addr, reg.Transport)
	r.mu.Unlock()

	r.emit(Event{Kind: Registered, Registration: reg})
	return reg, nil
}

// removeLocked forgets e and its observations. r.mu must be held.
func (r *Registry) removeLocked(e *entry) {
	for _, t := range e.tokens {
		delete(r.tokens, t)
	}
	e.tokens = nil
	if r.byID[e.reg.ID] == e {
		delete(r.byID, e.reg.ID)
	}
	if r.byName[e.reg.Endpoint] == e {
		delete(r.byName, e.reg.Endpoint)
	}
	if r.byAddr[e.reg.Addr] == e {
		delete(r.byAddr, e.reg.Addr)
	}
}

// setAddrLocked indexes e under addr, the address its device last used
// for Register or Update, when it talks plain CoAP (a DTLS device is known
// by its credentials, never by its address). r.mu must be held.
func (r *Registry) setAddrLocked(e *entry, addr netip.AddrPort, t Transport) {
	if old := e.reg.Addr; r.byAddr[old] == e && (old != addr || t != TransportUDP) {
		delete(r.byAddr, old)
	}
	if addr.IsValid() && t == TransportUDP {
		r.byAddr[addr] = e
	}
}

// ByAddr returns the registration whose device last registered or updated
// from addr. Only a Send over plain CoAP, which names no registration, is
// attributed this way; everything else finds a registration by ID, name
// or observation token.
func (r *Registry) ByAddr(addr netip.AddrPort) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byAddr[addr]; e != nil {
		return e.reg, true
	}
	return Registration{}, false
}

// Lookup returns the live registration with the given ID. An ID not in
// memory is looked up in the store (the registration of an online endpoint
// made before a restart) and, when found and not expired, becomes live
// again. It returns an error matching ErrNotFound for an unknown or ended
// registration.
func (r *Registry) Lookup(ctx context.Context, id string) (Registration, error) {
	if reg, ok := r.Get(id); ok {
		return reg, nil
	}
	return r.restore(ctx, id)
}

// Get returns the live registration with the given ID from memory only.
func (r *Registry) Get(id string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byID[id]; e != nil {
		return e.reg, true
	}
	return Registration{}, false
}

// ByEndpoint returns the live registration of the named endpoint.
func (r *Registry) ByEndpoint(name string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byName[name]; e != nil {
		return e.reg, true
	}
	return Registration{}, false
}

// Len returns the number of live registrations in memory.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// List returns every live registration in memory, in no particular order.
func (r *Registry) List() []Registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Registration, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, e.reg)
	}
	return out
}

// Update applies an Update to the registration with the given ID. It
// returns an error matching ErrNotFound when the registration is unknown or
// has ended.
func (r *Registry) Update(ctx context.Context, id string, req UpdateRequest) (Registration, error) {
	cur, err := r.Lookup(ctx, id)
	if err != nil {
		return Registration{}, err
	}
	mu := r.stripe(cur.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	// Re-read under the endpoint's lock: a Register or De-register may
	// have ended the registration meanwhile.
	reg, ok := r.Get(id)
	if !ok {
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, ErrNotFound)
	}
	now := r.clock.Now()
	if req.Lifetime != 0 {
		reg.Lifetime = req.Lifetime
	}
	if req.Binding != "" {
		reg.Binding = req.Binding
	}
	if req.Queue {
		reg.Queue = true
	}
	if req.HasSMS {
		reg.SMS = req.SMS
	}
	if req.HasObjects {
		reg.Objects = req.Objects
	}
	if req.Addr.IsValid() {
		reg.Addr, reg.Transport = req.Addr, req.Transport
	}
	reg.UpdatedAt, reg.LastSeen = now, now
	links := ""
	if req.HasObjects {
		links = req.ObjectLinks
	}
	if err := r.persistUpdate(ctx, reg, req.HasObjects, links, req.CheckCredentials); err != nil {
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, err)
	}
	r.mu.Lock()
	e := r.byID[id]
	if e != nil {
		r.setAddrLocked(e, reg.Addr, reg.Transport)
		e.reg = reg
	}
	r.mu.Unlock()
	if e == nil {
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, ErrNotFound)
	}
	r.emit(Event{Kind: Updated, Registration: reg})
	return reg, nil
}

// Deregister ends the registration with the given ID. It returns an error
// matching ErrNotFound when the registration is unknown or has ended.
func (r *Registry) Deregister(ctx context.Context, id string) (Registration, error) {
	return r.deregister(ctx, id, false)
}

// DeregisterChecked is Deregister with the check of
// RegisterRequest.CheckCredentials: an endpoint that has credentials is
// refused with an error matching store.ErrCredentialRequired.
func (r *Registry) DeregisterChecked(ctx context.Context, id string) (Registration, error) {
	return r.deregister(ctx, id, true)
}

func (r *Registry) deregister(ctx context.Context, id string, checkCredentials bool) (Registration, error) {
	cur, err := r.Lookup(ctx, id)
	if err != nil {
		return Registration{}, err
	}
	return r.end(ctx, cur, Deregistered, checkCredentials)
}

// end takes reg offline in the store, forgets it and emits kind.
func (r *Registry) end(ctx context.Context, cur Registration, kind EventKind, checkCredentials bool) (Registration, error) {
	mu := r.stripe(cur.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	reg, ok := r.Get(cur.ID)
	if !ok {
		return Registration{}, fmt.Errorf("registry: %s %q: %w", kind, cur.ID, ErrNotFound)
	}
	if kind == Expired && r.clock.Now().Before(reg.ExpiresAt(r.grace)) {
		return reg, nil // updated meanwhile
	}
	if err := r.persistEnd(ctx, reg, r.clock.Now(), checkCredentials); err != nil {
		return Registration{}, fmt.Errorf("registry: %s %q: %w", kind, reg.ID, err)
	}
	r.mu.Lock()
	if e := r.byID[reg.ID]; e != nil {
		r.removeLocked(e)
	}
	r.mu.Unlock()
	r.emit(Event{Kind: kind, Registration: reg})
	return reg, nil
}

// Seen records traffic from the device of registration id (a Send or a
// notification) at the clock's time. It changes memory only; the store's
// last seen is written by Register and Update.
func (r *Registry) Seen(id string) {
	now := r.clock.Now()
	r.mu.Lock()
	if e := r.byID[id]; e != nil {
		e.reg.LastSeen = now
	}
	r.mu.Unlock()
}

// Sweep ends every registration whose lifetime (plus grace) has passed, as
// a De-register would, and returns how many it ended. Errors of single
// registrations are logged and do not stop the sweep; the registration
// stays and is tried again by the next sweep.
func (r *Registry) Sweep(ctx context.Context) int {
	now := r.clock.Now()
	var due []Registration
	r.mu.RLock()
	for _, e := range r.byID {
		if !now.Before(e.reg.ExpiresAt(r.grace)) {
			due = append(due, e.reg)
		}
	}
	r.mu.RUnlock()
	n := 0
	for _, reg := range due {
		if ctx.Err() != nil {
			break
		}
		got, err := r.end(ctx, reg, Expired, false)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			r.log.Error("registration expiry failed", "endpoint", reg.Endpoint, "registration", reg.ID, "err", err)
		case got.ID == reg.ID && now.Before(got.ExpiresAt(r.grace)):
			// updated between the scan and the lock
		default:
			r.log.Info("registration expired", "endpoint", reg.Endpoint, "registration", reg.ID,
				"lifetime", reg.Lifetime, "last_update", reg.UpdatedAt)
			n++
		}
	}
	if err := r.sweepStore(ctx, now); err != nil && ctx.Err() == nil {
		r.log.Error("expiring stored registrations failed", "err", err)
	}
	return n
}

// Run calls Sweep every interval and, with Options.Retention,
// RemoveStale every hour, until ctx is done.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var clean <-chan time.Time
	if r.keep > 0 {
		c := time.NewTicker(time.Hour)
		defer c.Stop()
		clean = c.C
		r.RemoveStale(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Sweep(ctx)
		case <-clean:
			r.RemoveStale(ctx)
		}
	}
}

// RemoveStale deletes the endpoints nobody has a stake in that were last
// heard from longer than Options.Retention ago (store.RemoveStaleEndpoints),
// in chunks, and returns how many it removed. Errors are logged.
func (r *Registry) RemoveStale(ctx context.Context) int {
	if r.keep <= 0 {
		return 0
	}
	const chunk = 1000
	n := 0
	for ctx.Err() == nil {
		names, err := r.st.RemoveStaleEndpoints(ctx, r.clock.Now().Add(-r.keep), chunk)
		if err != nil {
			r.log.Error("removing stale endpoints failed", "err", err)
			break
		}
		n += len(names)
		if len(names) < chunk {
			break
		}
	}
	if n > 0 {
		r.log.Info("stale endpoints removed", "count", n, "retention", r.keep)
	}
	return n
}
