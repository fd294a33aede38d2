package webhook

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/store"
)

// The job kinds the Service registers with the engine.
const (
	KindDelivery = "webhook_delivery" // one event to one webhook
	KindPrune    = "event_log_prune"  // the log's and delivery log's retention, periodic
)

// Defaults of Config's zero fields.
const (
	DefaultRetention         = 24 * time.Hour
	DefaultDeliveryRetention = 7 * 24 * time.Hour
	DefaultPruneInterval     = 10 * time.Minute
	DefaultMaxAttempts       = 8
	DefaultDisableAfter      = 20
	DefaultTimeout           = 10 * time.Second
	DefaultBuffer            = 1 << 16
	DefaultDeliveryKeep      = 10000
)

// maxBatch bounds the events logged in one transaction.
const maxBatch = 1000

// recordLinger is how long the recorder waits after an event for more to
// log with it: the latency it adds to the log (and to webhooks) against
// one write transaction per event.
const recordLinger = 20 * time.Millisecond

// Backoff is the default wait before the attempt after the attempt-th
// failed one: 30 s, doubling, capped at an hour, ±10 % jitter; with
// DefaultMaxAttempts the attempts of one delivery span about an hour.
func Backoff(attempt int) time.Duration {
	d := time.Hour
	if attempt < 8 {
		d = min(30*time.Second<<max(attempt-1, 0), time.Hour)
	}
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// Config wires a Service.
type Config struct {
	Store  *store.Store // required
	Engine *jobs.Engine // required; New registers KindDelivery and KindPrune with it
	Bus    *events.Bus  // the events logged; nil logs none
	// Logged, when not nil, gets every event again once its batch is
	// committed to the log, in the order of their IDs: with ID set, Time
	// as logged (milliseconds) and Data the logged JSON
	// (json.RawMessage). A reader of Logged sees exactly what a reader of
	// the log (store.EventsAfter) sees, so it can join the two by ID.
	Logged    *events.Bus
	SecretKey string       // required: seals the webhooks' secrets
	Logger    *slog.Logger // nil: slog.Default()
	// AllowHTTP accepts http:// webhook URLs (debug mode).
	AllowHTTP bool
	// AllowPrivate lets webhooks reach loopback, private and link-local
	// addresses (--webhook-allow-private).
	AllowPrivate bool
	// Retention is how long logged events are kept; 0 means
	// DefaultRetention.
	Retention time.Duration
	// DeliveryRetention is how long delivery attempts stay in the
	// delivery log; 0 means DefaultDeliveryRetention.
	DeliveryRetention time.Duration
	// DeliveryKeep bounds the attempts logged per webhook: older ones are
	// pruned; 0 means DefaultDeliveryKeep.
	DeliveryKeep int
	// PruneInterval is how often KindPrune runs; 0 means
	// DefaultPruneInterval.
	PruneInterval time.Duration
	// MaxAttempts bounds the attempts of one delivery; 0 means
	// DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait after the attempt-th failed attempt; nil means
	// Backoff.
	Backoff func(attempt int) time.Duration
	// DisableAfter is how many failed attempts in a row disable a
	// webhook; 0 means DefaultDisableAfter.
	DisableAfter int
	// Timeout bounds one attempt (connect, send, answer); 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Buffer is the capacity of the bus subscription; 0 means
	// DefaultBuffer.
	Buffer int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats counts what a Service did since it started.
type Stats struct {
	Logged    uint64 // events appended to the log
	Dropped   uint64 // events the bus dropped before they were logged
	Delivered uint64 // attempts answered 2xx
	Failed    uint64 // attempts that failed
}

// Service logs the bus's events and delivers them to webhooks. Build it
// with New (before the engine starts), Start it, Stop it after the
// event producers stopped. It is safe for concurrent use.
type Service struct {
	cfg    Config
	st     *store.Store
	log    *slog.Logger
	seal   sealer
	policy urlPolicy
	client *http.Client
	sites  *store.SiteResolver

	logged, delivered, failed atomic.Uint64
	quitOnce                  sync.Once

	mu      sync.Mutex
	sub     *events.Subscription // guarded by mu; set by Start
	done    chan struct{}        // closed when the recorder ends
	quit    chan struct{}        // closed when Stop gives up waiting: the recorder stops retrying
	hooks   []target             // guarded by mu; the enabled webhooks, nil: load them
	hooksAt time.Time            // guarded by mu
	scopes  map[int64]ownerEntry // guarded by mu; owners' scopes read by deliveries
}

// ownerEntry is an owner's scope as read at a time.
type ownerEntry struct {
	scope auth.Scope
	at    time.Time
}

// target is an enabled webhook with its owner's scope.
type target struct {
	hook  store.Webhook
	scope auth.Scope
}

// hooksTTL is how long the dispatcher keeps the enabled webhooks and
// their owners' scopes before reading them again; changes made through
// this Service apply at once.
const hooksTTL = 2 * time.Second

// scopeTTL is how long a delivery trusts an owner's scope read by an
// earlier one: a user's changed rights apply to deliveries within it.
const scopeTTL = time.Second

// New builds a Service and registers its job kinds with cfg.Engine.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Engine == nil {
		return nil, errors.New("webhook: Config.Store and Engine are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Retention = cmpOr(cfg.Retention, DefaultRetention)
	cfg.DeliveryRetention = cmpOr(cfg.DeliveryRetention, DefaultDeliveryRetention)
	cfg.PruneInterval = cmpOr(cfg.PruneInterval, DefaultPruneInterval)
	cfg.Timeout = cmpOr(cfg.Timeout, DefaultTimeout)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.DeliveryKeep <= 0 {
		cfg.DeliveryKeep = DefaultDeliveryKeep
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Backoff == nil {
		cfg.Backoff = Backoff
	}
	seal, err := newSealer(cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, seal: seal,
		policy: urlPolicy{allowHTTP: cfg.AllowHTTP, allowPrivate: cfg.AllowPrivate},
		sites:  cfg.Store.SiteResolver(10 * time.Second)}
	s.client = newClient(cfg.Timeout, cfg.AllowPrivate)
	if err := cfg.Engine.Register(KindDelivery, jobs.Kind{Handler: s.deliver, MaxAttempts: cfg.MaxAttempts,
		Timeout: cfg.Timeout + 30*time.Second, Backoff: cfg.Backoff}); err != nil {
		return nil, err
	}
	if err := cfg.Engine.Register(KindPrune, jobs.Kind{Handler: s.prune, MaxAttempts: 3}); err != nil {
		return nil, err
	}
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// newClient is the HTTP client of deliveries: no proxy (a proxy would
// connect on the webhook's behalf, past the guard), the address guard on
// every connection unless allowPrivate, no redirects, timeout per attempt.
func newClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout}
	if !allowPrivate {
		d.Control = guardControl
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Stats returns the Service's counts.
func (s *Service) Stats() Stats {
	st := Stats{Logged: s.logged.Load(), Delivered: s.delivered.Load(), Failed: s.failed.Load()}
	s.mu.Lock()
	if s.sub != nil {
		st.Dropped = s.sub.Dropped()
	}
	s.mu.Unlock()
	return st
}

// Start subscribes to the bus and starts logging its events, and
// schedules the periodic prune job. Events published before Start are not
// logged.
func (s *Service) Start(ctx context.Context) error {
	if err := s.cfg.Engine.Insert(ctx, store.NewJob{Kind: KindPrune, Key: "prune", MaxAttempts: 3}); err != nil {
		return fmt.Errorf("webhook: schedule pruning: %w", err)
	}
	if s.cfg.Bus == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub != nil {
		return errors.New("webhook: started already")
	}
	s.sub = s.cfg.Bus.Subscribe(s.cfg.Buffer, nil)
	s.done, s.quit = make(chan struct{}), make(chan struct{})
	go s.record(s.sub, s.done)
	return nil
}

// Stop unsubscribes from the bus and logs the events received so far,
// until ctx ends. Stop before Start, and a second Stop, do nothing.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	sub, done, quit := s.sub, s.done, s.quit
	s.mu.Unlock()
	if sub == nil {
		return nil
	}
	sub.Close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.quitOnce.Do(func() { close(quit) })
		return fmt.Errorf("webhook: stop: events not logged: %w", ctx.Err())
	}
}

// invalidate makes the dispatcher and deliveries read the webhooks and
// their owners' scopes again.
func (s *Service) invalidate() {
	s.mu.Lock()
	s.hooks, s.scopes = nil, nil
	s.mu.Unlock()
}

// deliveryScope is ownerScope remembered for scopeTTL.
func (s *Service) deliveryScope(ctx context.Context, userID int64) (auth.Scope, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	e, ok := s.scopes[userID]
	s.mu.Unlock()
	if ok && now.Sub(e.at) < scopeTTL && !now.Before(e.at) {
		return e.scope, nil
	}
	sc, err := s.ownerScope(ctx, userID)
	if err != nil {
		return auth.Scope{}, err
	}
	s.mu.Lock()
	if s.scopes == nil {
		s.scopes = map[int64]ownerEntry{}
	}
	s.scopes[userID] = ownerEntry{scope: sc, at: now}
	s.mu.Unlock()
	return sc, nil
}

// targets returns the enabled webhooks with their owners' ViewData
// scopes, read at most every hooksTTL.
func (s *Service) targets(ctx context.Context) ([]target, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	if s.hooks != nil && now.Sub(s.hooksAt) < hooksTTL {
		t := s.hooks
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	list, err := s.st.ListWebhooks(ctx, store.WebhookFilter{EnabledOnly: true})
	if err != nil {
		return nil, err
	}
	out := make([]target, 0, len(list))
	scopes := map[int64]auth.Scope{}
	for _, h := range list {
		sc, ok := scopes[h.UserID]
		if !ok {
			if sc, err = s.ownerScope(ctx, h.UserID); err != nil {
				return nil, err
			}
			scopes[h.UserID] = sc
		}
		out = append(out, target{hook: h, scope: sc})
	}
	s.mu.Lock()
	s.hooks, s.hooksAt = out, now
	s.mu.Unlock()
	return out, nil
}

// ownerScope is the devices the user may see now (auth.ViewData): none
// for a disabled or deleted user.
func (s *Service) ownerScope(ctx context.Context, userID int64) (auth.Scope, error) {
	u, err := s.st.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Scope{}, nil
	}
	if err != nil {
		return auth.Scope{}, err
	}
	subj, err := s.st.Subject(ctx, u)
	if err != nil {
		return auth.Scope{}, err
	}
	return subj.Scope(auth.ViewData), nil
}

// matches reports whether webhook h selects event e of a device the owner
// may see (scope).
func matches(h store.Webhook, scope auth.Scope, e store.LoggedEvent) bool {
	return (len(h.Topics) == 0 || slices.Contains(h.Topics, e.Topic)) &&
		(h.Endpoint == "" || h.Endpoint == e.Endpoint) &&
		(h.SiteID == 0 || h.SiteID == e.SiteID) &&
		scope.Contains(e.SiteID)
}

// record logs the subscription's events in batches until it is closed.
func (s *Service) record(sub *events.Subscription, done chan struct{}) {
	defer close(done)
	batch := make([]events.Event, 0, maxBatch)
	for ev := range sub.C {
		batch = append(batch[:0], ev)
		// Wait a little for more: under a steady trickle of events a batch
		// per event would be a write transaction per event, competing with
		// ingest for the database.
		linger := time.NewTimer(recordLinger)
	fill:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-sub.C:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
			case <-linger.C:
				break fill
			}
		}
		linger.Stop()
		s.logBatch(batch)
	}
}

// logBatch appends events to the log with their delivery jobs, retrying
// while the database fails: what the bus delivered is not given up
// (meanwhile the subscription's buffer fills and, full, counts drops)
// unless Stop gave up waiting.
func (s *Service) logBatch(batch []events.Event) {
	ctx := context.Background()
	logged := make([]store.LoggedEvent, 0, len(batch))
	for _, ev := range batch {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			s.log.Error("event not logged: its data does not encode as JSON", "topic", ev.Topic, "endpoint", ev.Endpoint, "err", err)
			continue
		}
		le := store.LoggedEvent{Time: ev.Time, Topic: ev.Topic, Endpoint: ev.Endpoint, Data: data}
		if ev.Endpoint != "" {
			if site, _, err := s.sites.Site(ctx, ev.Endpoint); err == nil {
				le.SiteID = site
			} else {
				s.log.Warn("event logged without its site: the endpoint's site could not be read", "endpoint", ev.Endpoint, "err", err)
			}
		}
		logged = append(logged, le)
	}
	if len(logged) == 0 {
		return
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := s.appendWithJobs(ctx, logged)
		if err == nil {
			s.logged.Add(uint64(len(logged)))
			s.publishLogged(logged)
			return
		}
		s.log.Error("logging events failed, retrying", "events", len(logged), "retry_in", wait, "err", err)
		select {
		case <-s.quit:
			s.log.Error("events not logged: the server stopped", "events", len(logged))
			return
		case <-time.After(wait):
		}
	}
}

// publishLogged publishes the committed events evs on Config.Logged.
func (s *Service) publishLogged(evs []store.LoggedEvent) {
	if s.cfg.Logged == nil {
		return
	}
	for _, e := range evs {
		s.cfg.Logged.Publish(events.Event{ID: e.ID, Topic: e.Topic, Time: e.Time, Endpoint: e.Endpoint, Data: e.Data})
	}
}

// appendWithJobs appends evs and inserts the delivery jobs of the
// webhooks they match in one transaction.
func (s *Service) appendWithJobs(ctx context.Context, evs []store.LoggedEvent) error {
	targets, err := s.targets(ctx)
	if err != nil {
		return err
	}
	var inserted bool
	err = s.st.WithTx(ctx, func(tx *sql.Tx) error {
		for i := range evs {
			evs[i].ID = 0
		}
		if err := s.st.AppendEventsTx(ctx, tx, evs); err != nil {
			return err
		}
		var js []store.NewJob
		for _, e := range evs {
			for _, t := range targets {
				if matches(t.hook, t.scope, e) {
					js = append(js, deliveryJob(e.ID, t.hook.ID))
				}
			}
		}
		if len(js) == 0 {
			return nil
		}
		inserted = true
		return s.cfg.Engine.InsertTx(ctx, tx, js...)
	})
	if err == nil && inserted {
		s.cfg.Engine.Kick()
	}
	return err
}

// deliveryArgs are the arguments of a KindDelivery job.
type deliveryArgs struct {
	Event   int64 `json:"event"`
	Webhook int64 `json:"webhook"`
}

func deliveryJob(event, hook int64) store.NewJob {
	args, _ := json.Marshal(deliveryArgs{Event: event, Webhook: hook})
	return store.NewJob{Kind: KindDelivery, Args: args}
}

// prune enforces the retention of the event log and the delivery log, and
// schedules its next run.
func (s *Service) prune(ctx context.Context, _ store.Job) error {
	now := s.cfg.Now()
	next := store.NewJob{Kind: KindPrune, Key: "prune", MaxAttempts: 3, RunAt: now.Add(s.cfg.PruneInterval)}
	if err := s.cfg.Engine.Insert(ctx, next); err != nil {
		return err
	}
	n, err := s.st.PruneEvents(ctx, now.Add(-s.cfg.Retention))
	if err != nil {
		return err
	}
	m, err := s.st.PruneWebhookDeliveries(ctx, now.Add(-s.cfg.DeliveryRetention))
	if err != nil {
		return err
	}
	k, err := s.st.TrimWebhookDeliveries(ctx, s.cfg.DeliveryKeep)
	if err != nil {
		return err
	}
	m += k
	if n > 0 || m > 0 {
		s.log.Info("event log pruned", "events", n, "deliveries", m)
	}
	return nil
}

// newSecret returns a random webhook secret, shown once to its owner.
func newSecret() string {
	b := make([]byte, 24)
	_, _ = crand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// trimTopics returns topics without blanks and duplicates, in order.
func trimTopics(topics []string) []string {
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		t = strings.TrimSpace(t)
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}
