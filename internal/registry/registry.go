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

// Config tunes a Registry. The zero Config is valid.
type Config struct {
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
	// SeenInterval is how often Run writes when devices were last heard
	// from (Seen) to their records: one write for all the devices heard
	// since the last one, so at most one write an interval whatever the
	// fleet does, and other nodes see a device's traffic at most this
	// late. Zero means one second.
	SeenInterval time.Duration
}

// Registration is one registration: a copy of its durable record (the
// store's endpoint row) as this node last wrote or read it, with the time
// this node last heard from the device. Values returned by the registry
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
	// (Register, Update, Send, notification), to this node or, as far as
	// the record had it when this node last read it, to another.
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

// ChangeKind says what happened to a registration.
type ChangeKind uint8

// The registration events.
const (
	Registered ChangeKind = iota + 1
	Updated
	Deregistered
	Expired
)

func (k ChangeKind) String() string {
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

// Change is delivered to Subscribe listeners after a change is stored.
// Registration is the state after the change (for Deregistered and
// Expired, the last state).
type Change struct {
	Kind         ChangeKind
	Registration Registration
}

// Registry is one node's view of the registrations: their durable records
// in the store, a cache of the records of the devices this node talks to
// and what only this node holds (observation tokens, when it last heard
// from a device). Create it with New.
type Registry struct {
	st        *store.Store
	clock     Clock
	grace     time.Duration
	keep      time.Duration // Config.Retention
	seenEvery time.Duration // Config.SeenInterval
	log       *slog.Logger
	ingest    *ingest.Writer
	seed      maphash.Seed

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
	heard     map[int64]time.Time       // guarded by mu; endpoint ID -> Seen not yet written (WriteSeen)
	listeners []func(Change)            // guarded by mu
}

// entry is the registry's cached copy of one registration.
type entry struct {
	reg    Registration // guarded by Registry.mu
	tokens []string     // guarded by Registry.mu; observation tokens on this registration
	links  uint64       // guarded by Registry.mu; hash of the object links reg.Objects holds
}

// New returns an empty registry writing through to st.
func New(st *store.Store, opts Config) *Registry {
	r := &Registry{
		st:        st,
		clock:     opts.Clock,
		grace:     opts.Grace,
		keep:      opts.Retention,
		seenEvery: opts.SeenInterval,
		log:       opts.Logger,
		ingest:    opts.Ingest,
		seed:      maphash.MakeSeed(),
		byID:      make(map[string]*entry),
		byName:    make(map[string]*entry),
		byAddr:    make(map[netip.AddrPort]*entry),
		tokens:    make(map[string]*Observation),
		heard:     make(map[int64]time.Time),
	}
	if r.clock == nil {
		r.clock = ClockFunc(time.Now)
	}
	if r.seenEvery <= 0 {
		r.seenEvery = time.Second
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Now returns the registry's clock reading.
func (r *Registry) Now() time.Time { return r.clock.Now() }

// Grace returns Config.Grace.
func (r *Registry) Grace() time.Duration { return r.grace }

// Subscribe adds a listener called after every stored change. Listeners
// run synchronously on the goroutine that made the change and must return
// quickly.
func (r *Registry) Subscribe(fn func(Change)) {
	r.mu.Lock()
	r.listeners = append(r.listeners, fn)
	r.mu.Unlock()
}

func (r *Registry) emit(ev Change) {
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
	e := &entry{reg: reg, links: maphash.String(r.seed, req.ObjectLinks)}
	r.byID[reg.ID] = e
	r.byName[reg.Endpoint] = e
	r.setAddrLocked(e, reg.Addr, reg.Transport)
	r.mu.Unlock()

	r.emit(Change{Kind: Registered, Registration: reg})
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

// Lookup returns the live registration with the given ID: this node's
// copy when it holds one, else the record's (a registration made before a
// restart, or on another node), which becomes this node's copy when its
// lifetime has not passed. It returns an error matching ErrNotFound for an
// unknown or ended registration.
func (r *Registry) Lookup(ctx context.Context, id string) (Registration, error) {
	if reg, ok := r.Get(id); ok {
		return reg, nil
	}
	return r.restore(ctx, id)
}

// Get returns this node's copy of the registration with the given ID,
// from memory only.
func (r *Registry) Get(id string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byID[id]; e != nil {
		return e.reg, true
	}
	return Registration{}, false
}

// ByEndpoint returns this node's copy of the named endpoint's
// registration, from memory only.
func (r *Registry) ByEndpoint(name string) (Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byName[name]; e != nil {
		return e.reg, true
	}
	return Registration{}, false
}

// Len returns the number of registrations this node holds a copy of.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID)
}

// List returns this node's copy of every registration it holds, in no
// particular order.
func (r *Registry) List() []Registration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Registration, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, e.reg)
	}
	return out
}

// Update applies an Update to the registration with the given ID and
// returns the registration as its record is after the Update. Only what
// the request names is written, and only while the registration is the
// endpoint's live one in the store, so a node whose copy is stale
// (another node served the device meanwhile) never overwrites a newer
// record. It returns an error matching ErrNotFound when the registration
// is unknown or has ended, here or on another node.
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
	cur, ok := r.Get(id)
	if !ok {
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, ErrNotFound)
	}
	ep, err := r.persistUpdate(ctx, cur, req, r.clock.Now())
	if errors.Is(err, store.ErrRegistrationGone) {
		r.forget(id)
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("registry: update %q: %w", id, err)
	}
	reg := r.cache(store.RegistrationRecord{Endpoint: ep}, nil)
	r.emit(Change{Kind: Updated, Registration: reg})
	return reg, nil
}

// Deregister ends the registration with the given ID, while it is the
// endpoint's live one in the store. It returns an error matching
// ErrNotFound when the registration is unknown or has ended, or a newer
// one replaced it, here or on another node.
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
	mu := r.stripe(cur.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	reg, ok := r.Get(id)
	if !ok {
		return Registration{}, fmt.Errorf("registry: deregister %q: %w", id, ErrNotFound)
	}
	err = r.persistEnd(ctx, reg, r.clock.Now(), checkCredentials)
	if errors.Is(err, store.ErrRegistrationGone) {
		r.forget(id)
		return Registration{}, fmt.Errorf("registry: deregister %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("registry: deregister %q: %w", id, err)
	}
	r.forget(id)
	r.emit(Change{Kind: Deregistered, Registration: reg})
	return reg, nil
}
