// Package app composes the server from its parts and owns their start and
// stop order: database, ingest writer, registry sweeper, job workers, CoAP
// listeners (plain and DTLS, with the firmware download route), the
// firmware download server, HTTP listener on start; on stop HTTP and
// firmware downloads first,
// then the job workers (drained while the CoAP sockets their deliveries
// use are still open), CoAP (draining the device messages in flight:
// committed and acknowledged before the sockets close), the ingest
// writer, and the database last.
// `flownexus serve` and `flownexus demo` run an App, and the end-to-end
// tests run the same App on loopback ports so that they exercise exactly
// the wiring users get.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flownexus/flownexus/internal/api"
	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/httpd"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/version"
	"github.com/flownexus/flownexus/internal/web"
	"github.com/flownexus/flownexus/internal/webhook"
)

// Tuning tunes an App beyond its Config: timings, mostly for tests.
type Tuning struct {
	// SweepInterval is how often expired registrations are marked offline;
	// 0 means 10 s.
	SweepInterval time.Duration
	// RegistrationGrace is added to a device's lifetime before it counts
	// as expired; 0 means 30 s, negative means none.
	RegistrationGrace time.Duration
	// OpTimeout bounds one device operation; 0 means 30 s.
	OpTimeout time.Duration
	// ReceiveWindow is how long a queue-mode device is taken to be
	// reachable after it last talked; 0 means jobs.DefaultReceiveWindow.
	ReceiveWindow time.Duration
	// JobPollInterval is how often the job engine looks for due jobs it
	// was not told of (jobs.EngineConfig.PollInterval: a safety net); 0
	// means jobs.DefaultPollInterval.
	JobPollInterval time.Duration
	// IdleTimeout is coapd.Config.IdleTimeout: how long a device's CoAP
	// connection state, or live DTLS session, outlasts its last message
	// (a registered DTLS device's session is then parked); 0 means 30 s.
	IdleTimeout time.Duration
	// StreamKeepAlive is how often the API's event stream sends a
	// keep-alive comment; 0 means 15 s.
	StreamKeepAlive time.Duration
	// HealthInterval is how often the node writes its heartbeat, which
	// tells /healthz whether the database takes writes; 0 means 10 s.
	HealthInterval time.Duration
	// Firmware tunes the firmware updater.
	Firmware FirmwareTuning
	// Webhooks tunes the webhook deliveries.
	Webhooks WebhookTuning
	// Now is the dashboard's clock (session timeouts, login limits); nil
	// means time.Now.
	Now func() time.Time
}

// FirmwareTuning tunes the firmware updater (fwupdate.Config); zero
// fields mean its defaults.
type FirmwareTuning struct {
	// Bases, when set, are the download URL bases devices are given, in
	// place of those of the server's own listeners.
	Bases                                                      *fwupdate.Bases
	PollInterval, ReadInterval, DownloadTimeout, UpdateTimeout time.Duration
}

// App is a composed flownexus server. Its exported fields are the parts,
// for commands and tests that need them; they are set by New and must not
// be replaced.
type App struct {
	Store    *store.Store
	Objects  *objects.Catalog
	Registry *registry.Registry
	Ingest   *ingest.Writer
	CoAP     *coapd.Server
	Devices  *devmgmt.Manager
	// Events carries what happens, live: the topics of package events
	// (registrations, reported values, queued operations). It drops for
	// readers that fall behind; what must see every stored value hooks
	// into Ingest.
	Events *events.Bus
	// Logged carries Events again once Webhooks logged them, each with its
	// id in the event log. GET /api/v1/events/stream serves it.
	Logged *events.Bus
	// Engine runs the jobs of every kind registered with it (Jobs'
	// deliveries among them) on this node.
	Engine *jobs.Engine
	Jobs   *jobs.Queue
	// Updates drives firmware updates (its steps are jobs of Engine).
	Updates *fwupdate.Updater
	// Credentials are the devices' DTLS credentials (CLI, API, DTLS).
	Credentials *credential.Service
	// Firmware is the firmware image store (API, CLI, CoAP downloads).
	Firmware *firmware.Images
	// Webhooks logs Events durably and delivers them to webhooks (its
	// deliveries are jobs of Engine).
	Webhooks *webhook.Service
	API      *api.API
	// Dashboard is the operator's web dashboard, on the HTTP listener
	// beside the API.
	Dashboard *web.Web

	cfg  config.Config
	opts Tuning
	log  *slog.Logger
	web  *httpd.Server
	// health tells /healthz whether the database takes writes.
	health *storageHealth

	httpLn   net.Listener
	httpDone chan error
	// fw serves firmware downloads over HTTPS (or HTTP) on
	// Config.FWListen; nil when that is empty.
	fw *firmware.Server
	// metrics serves /metrics on Config.MetricsListen; nil when it is
	// on the HTTP listener.
	metrics   *http.Server
	metricsLn net.Listener
	stopBg    context.CancelFunc
	bg        sync.WaitGroup
	stopOnce  sync.Once
}

// New opens the database (migrating a fresh or older schema, refusing a
// newer one), refuses a secret key other than the one the stored PSK keys
// are sealed with (CheckSecretKey), and builds every part. Nothing listens
// until Start.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Tuning) (*App, error) {
	if opts.SweepInterval == 0 {
		opts.SweepInterval = 10 * time.Second
	}
	if opts.RegistrationGrace == 0 {
		opts.RegistrationGrace = 30 * time.Second
	} else if opts.RegistrationGrace < 0 {
		opts.RegistrationGrace = 0
	}
	policy, err := devmgmt.ParsePolicy(cfg.AutoObserve, cfg.AutoObserveAttrs)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	st, err := OpenStore(ctx, cfg, log, true)
	if err != nil {
		return nil, err
	}
	a := &App{Store: st, cfg: cfg, opts: opts, log: log, Objects: objects.Default()}
	if err := loadModels(a.Objects, cfg.ModelsDir, log); err != nil {
		st.Close()
		return nil, err
	}
	a.Ingest = ingest.New(st, ingest.Config{Logger: log})
	a.Registry = registry.New(st, registry.Config{
		Grace:     opts.RegistrationGrace,
		Retention: cfg.OfflineRetention,
		Logger:    log,
		Ingest:    a.Ingest,
	})
	if a.Credentials, err = credential.New(st, cfg.SecretKey); err != nil {
		st.Close()
		return nil, err
	}
	if err := CheckSecretKey(ctx, a.Credentials, log); err != nil {
		st.Close()
		return nil, err
	}
	metrics := newDeviceMetrics(a)
	dtlsCfg, err := dtlsConfig(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	dtlsCfg.OnHandshake = metrics.handshake
	dtlsCfg.OnHandshakeFailure = metrics.handshakeFailed
	a.CoAP = coapd.New(coapd.Config{
		Registry:    a.Registry,
		Ingest:      a.Ingest,
		Types:       a.Objects.TypeOf,
		Logger:      log,
		Credentials: a.Credentials,
		IdleTimeout: opts.IdleTimeout,
		MaxLifetime: uint32(cfg.MaxLifetime / time.Second),
		Admission:   admission(cfg.RegisterRate),
		Known:       knownEndpoints(cfg, st),
		// Sessions are saved on stop and resumed on start, so devices need
		// no new handshake after a planned restart.
		DTLS: dtlsCfg,
	})
	if a.Firmware, err = firmware.New(firmware.Config{Store: st, Dir: cfg.Firmware(), MaxSize: cfg.FWMaxSize}); err != nil {
		st.Close()
		return nil, err
	}
	if a.fw, err = firmwareServer(cfg, a.Firmware, log); err != nil {
		st.Close()
		return nil, err
	}
	a.CoAP.Handle(codes.GET, firmware.CoAPPattern, a.Firmware.CoAPHandler())
	a.Devices = devmgmt.New(devmgmt.Config{
		Registry: a.Registry,
		Dial:     a.CoAP.Dial,
		Types:    a.Objects.TypeOf,
		Ingest:   a.Ingest,
		Timeout:  opts.OpTimeout,
		Logger:   log,
		// Applied on every Register (see the subscriptions below).
		AutoObserve: &policy,
	})
	a.Events = &events.Bus{}
	a.Logged = &events.Bus{}
	if a.Engine, err = jobs.NewEngine(jobs.EngineConfig{Store: st, Logger: log, PollInterval: opts.JobPollInterval}); err != nil {
		st.Close()
		return nil, err
	}
	if a.Jobs, err = jobs.New(jobs.Config{
		Engine: a.Engine, Store: st, Registry: a.Registry, Devices: a.Devices, Events: a.Events, Logger: log,
		ReceiveWindow: opts.ReceiveWindow, AttemptTimeout: opts.OpTimeout,
	}); err != nil {
		st.Close()
		return nil, err
	}

	if a.Updates, err = fwupdate.New(fwupdate.Config{
		Store: st, Engine: a.Engine, Queue: a.Jobs, Registry: a.Registry, Devices: a.Devices, Events: a.Events,
		Logger: log, Bases: a.firmwareBases, FirmwareDir: cfg.Firmware(),
		PollInterval: opts.Firmware.PollInterval, ReadInterval: opts.Firmware.ReadInterval,
		DownloadTimeout: opts.Firmware.DownloadTimeout, UpdateTimeout: opts.Firmware.UpdateTimeout,
	}); err != nil {
		st.Close()
		return nil, err
	}

	if a.Webhooks, err = newWebhooks(a, cfg, opts.Webhooks); err != nil {
		st.Close()
		return nil, err
	}

	a.health = newStorageHealth(st, a.Ingest, log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), metrics)
	reg.MustRegister(webhookMetrics(a.Webhooks)...)
	a.web = httpd.New(httpd.Config{
		AllowedHosts:    cfg.AllowedHosts,
		Version:         version.Version,
		Commit:          version.Revision(),
		Ping:            st.DB().PingContext,
		Storage:         a.health.check,
		Registry:        reg,
		SeparateMetrics: cfg.MetricsListen != "",
		Logger:          log,
	})
	a.API = api.New(api.Config{
		Store: st, Devices: a.Devices, Objects: a.Objects, Logger: log,
		Version: version.Version, OpTimeout: opts.OpTimeout, Jobs: a.Jobs, Credentials: a.Credentials,
		Events: a.Logged, KeepAlive: opts.StreamKeepAlive, Firmware: a.Firmware, Updates: a.Updates,
		Webhooks: a.Webhooks, Rate: float64(cfg.APIRate), Burst: 2 * cfg.APIRate,
	})
	a.web.Handle(api.Prefix+"/", a.API.Handler())
	a.Dashboard, err = web.New(web.Config{
		Store: st, Objects: a.Objects, Logger: log, Debug: cfg.Debug, TrustedOrigins: cfg.CSRFOrigins,
		Now: opts.Now, Devices: a.Devices, Jobs: a.Jobs, Events: a.Events, Credentials: a.Credentials,
		Firmware: a.Firmware, Updates: a.Updates, OpTimeout: opts.OpTimeout,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, p := range web.Patterns {
		a.web.Handle(p, a.Dashboard.Handler())
	}
	// Open event streams end when HTTP shutdown begins, not at its deadline.
	a.web.OnShutdown(a.API.CloseStreams)
	a.web.OnShutdown(a.Dashboard.CloseStreams)

	// Who is told of what, now that every part exists (nothing runs
	// before Start). A device's messages: a Register is followed by the
	// auto-observe policy, every message wakes the device's queued
	// operations, and reported values go on the bus for live views. A
	// notification too large for one message is completed by reading the
	// observed resources block-wise. Registration changes go on the bus.
	// What must see every stored value hooks into a.Ingest (OnCommit).
	a.CoAP.Subscribe(a.autoObserve)
	a.CoAP.Subscribe(a.wake)
	a.CoAP.Subscribe(a.publishValues)
	a.CoAP.SetReread(a.reread)
	a.Registry.Subscribe(a.publishRegistration)
	// Firmware updates step when their device's state values are stored
	// or it registers again.
	a.Ingest.OnCommit("firmware", a.Updates.OnCommit)
	a.Registry.Subscribe(a.Updates.OnRegistration)
	return a, nil
}

// firmwareBases are the download URL bases of firmware updates: the
// tuning's, else those of the images' URLs (firmwareURLs: --fw-public-url
// or the firmware server, and the CoAP and CoAPS listeners' route fw/),
// known once Start has bound the listeners.
func (a *App) firmwareBases() fwupdate.Bases {
	if a.opts.Firmware.Bases != nil {
		return *a.opts.Firmware.Bases
	}
	u := a.Firmware.ImageURLs("")
	return fwupdate.Bases{HTTP: u.HTTP, CoAP: u.CoAP, CoAPS: u.CoAPS}
}

// autoObserve applies the auto-observe policy to a device that registered.
func (a *App) autoObserve(act coapd.Activity) {
	if act.Kind == coapd.ActivityRegister {
		a.Devices.AutoObserve(act.Registration)
	}
}

// wake tells the job queue that a device talked: its queued operations
// go out while it listens.
func (a *App) wake(act coapd.Activity) { a.Jobs.Wake(act.Registration) }

// reread reads the resources of an observation in full, for a
// notification that arrived block-wise.
func (a *App) reread(ctx context.Context, reg registry.Registration, obs registry.Observation) ([]lwm2m.Record, error) {
	op := devmgmt.Operation{Kind: devmgmt.KindRead, Paths: obs.Paths}
	if obs.Composite {
		op.Kind = devmgmt.KindReadComposite
	}
	res, err := a.Devices.Do(ctx, reg.Endpoint, op)
	return res.Values, err
}

// Start opens the listeners and starts the background work. On error,
// everything started so far is stopped again.
func (a *App) Start(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopBg = cancel
	a.Ingest.Start()
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.Registry.Run(bg, a.opts.SweepInterval)
	}()
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.health.run(bg, cmp.Or(a.opts.HealthInterval, 10*time.Second))
	}()
	if err := a.Jobs.Start(ctx); err != nil {
		a.Stop(ctx)
		return err
	}
	if err := a.Updates.Watch(ctx); err != nil {
		a.Stop(ctx)
		return err
	}
	if err := a.Webhooks.Start(ctx); err != nil {
		a.Stop(ctx)
		return err
	}
	if err := a.Engine.Start(ctx); err != nil {
		a.Stop(ctx)
		return err
	}
	if a.cfg.CoAPListen != "" {
		if err := a.CoAP.Start(a.cfg.CoAPListen); err != nil {
			a.Stop(ctx)
			return fmt.Errorf("CoAP listener %s: %w", a.cfg.CoAPListen, err)
		}
		a.log.Info("CoAP listening", "addr", a.CoAP.Addr().String())
	}
	if a.cfg.CoAPSListen != "" {
		if err := a.CoAP.StartDTLS(a.cfg.CoAPSListen); err != nil {
			a.Stop(ctx)
			return fmt.Errorf("CoAP/DTLS listener %s: %w", a.cfg.CoAPSListen, err)
		}
		a.log.Info("CoAP/DTLS listening", "addr", a.CoAP.DTLSAddr().String())
	}
	if a.fw != nil {
		if err := a.fw.Start(a.cfg.FWListen); err != nil {
			a.Stop(ctx)
			return fmt.Errorf("firmware listener %s: %w", a.cfg.FWListen, err)
		}
		a.log.Info("firmware downloads listening", "addr", a.fw.Addr().String(), "tls", a.fw.TLS(),
			"record_size", a.cfg.FWRecordSize)
	}
	a.Firmware.SetURLs(a.firmwareURLs())
	if a.cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", a.cfg.MetricsListen)
		if err != nil {
			a.Stop(ctx)
			return fmt.Errorf("metrics listener %s: %w", a.cfg.MetricsListen, err)
		}
		a.metricsLn = ln
		a.metrics = &http.Server{Handler: a.web.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := a.metrics.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics listener stopped", "err", err)
			}
		}()
		a.log.Info("metrics listening", "addr", ln.Addr().String())
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPListen)
	if err != nil {
		a.Stop(ctx)
		return fmt.Errorf("HTTP listener %s: %w", a.cfg.HTTPListen, err)
	}
	a.httpLn = ln
	a.httpDone = make(chan error, 1)
	go func() { a.httpDone <- a.web.Serve(ln) }()
	a.log.Info("HTTP listening", "addr", ln.Addr().String(), "version", version.Version)
	return nil
}

// HTTPAddr is the bound HTTP address (valid after Start).
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// MetricsAddr is the bound metrics address (valid after Start with
// Config.MetricsListen set).
func (a *App) MetricsAddr() string { return a.metricsLn.Addr().String() }

// CoAPAddr is the bound CoAP/UDP address (valid after Start with CoAP on).
func (a *App) CoAPAddr() netip.AddrPort { return a.CoAP.Addr() }

// CoAPSAddr is the bound CoAP/DTLS address (valid after Start with DTLS
// on).
func (a *App) CoAPSAddr() netip.AddrPort { return a.CoAP.DTLSAddr() }

// Done is closed with the HTTP server's error if it stops on its own.
func (a *App) Done() <-chan error { return a.httpDone }

// Stop shuts down in order: HTTP and firmware downloads (in-flight
// requests finish within a third of the time left to ctx's deadline), the job workers (running
// deliveries finish within half of what is left then; they need the CoAP
// socket, so they stop first), CoAP (it takes no new device
// message, lets those in flight commit their values and send their ACKs
// until ctx ends, then closes every session and socket; see
// coapd.Server.Shutdown), background work, the ingest writer (every
// accepted value is committed), and the database last. It is safe to call
// more than once.
func (a *App) Stop(ctx context.Context) {
	a.stopOnce.Do(func() {
		hctx, cancel := share(ctx, 3)
		defer cancel()
		// Firmware downloads stop alongside HTTP, in the same share.
		fwDone := make(chan struct{})
		go func() {
			defer close(fwDone)
			if a.fw != nil && a.fw.Addr() != nil {
				if err := a.fw.Shutdown(hctx); err != nil {
					a.log.Warn("firmware downloads cut off", "err", err)
				}
			}
		}()
		if a.httpLn != nil {
			if err := a.web.Shutdown(hctx); err != nil {
				a.log.Warn("HTTP shutdown incomplete", "err", err)
			}
			<-a.httpDone
			a.log.Info("HTTP stopped")
		}
		<-fwDone
		if a.metrics != nil {
			_ = a.metrics.Shutdown(ctx)
		}
		jctx, cancel := share(ctx, 2)
		defer cancel()
		if err := a.Jobs.Stop(jctx); err != nil {
			a.log.Warn("wake-up handling did not stop in time", "err", err)
		}
		if err := a.Engine.Stop(jctx); err != nil {
			a.log.Warn("job workers stopped before their jobs finished", "err", err)
		}
		if err := a.Updates.Stop(jctx); err != nil {
			a.log.Warn("firmware updates did not stop in time", "err", err)
		}
		start := time.Now()
		if err := a.CoAP.Shutdown(ctx); err != nil {
			a.log.Warn("CoAP shutdown incomplete", "err", err)
		}
		a.log.Info("CoAP stopped", "took", time.Since(start).Round(time.Millisecond))
		a.Devices.Close()
		if a.stopBg != nil {
			a.stopBg()
		}
		a.bg.Wait()
		if err := a.Webhooks.Stop(ctx); err != nil {
			a.log.Warn("event log stopped before it recorded every event", "err", err)
		}
		a.Ingest.Close()
		a.Store.Close()
		a.log.Info("database closed")
	})
}

// share returns ctx with at most 1/n of the time left to its deadline,
// so that a stage of Stop leaves the stages after it their share: the
// last, CoAP, drains the messages in flight and saves the DTLS sessions,
// which must happen before a container's stop timeout kills the process.
func share(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/time.Duration(n))
}

// OpenStore prepares the data directory (SQLite), opens the database and
// checks its schema. With migrate it applies pending migrations; without,
// a database that needs them is an error. A database written by a newer
// flownexus is always refused.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (*store.Store, error) {
	if !cfg.IsPostgres() {
		if err := prepareDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(ctx, cfg.Database(), store.Config{})
	if err != nil {
		return nil, err
	}
	err = st.CheckSchema(ctx)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrSchemaOutdated) && migrate:
		if from, to, verr := st.SchemaVersion(ctx); verr == nil {
			log.Info("migrating database", "from", from, "to", to)
		}
		if _, err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	default:
		st.Close()
		return nil, err
	}
	return st, nil
}

// admission is the CoAP server's admission for the Register budget per
// host: with a budget, coapd's defaults for everything; without one
// (--register-rate 0, a fleet behind one NAT address), no bound per host
// either, only the server-wide one.
func admission(perHost int) coapd.AdmissionConfig {
	if perHost == 0 {
		return coapd.AdmissionConfig{RegisterRate: -1, MaxPerSource: math.MaxInt}
	}
	return coapd.AdmissionConfig{RegisterRate: float64(perHost)}
}

// knownEndpoints is coapd.Config.Known for the register policy: nil
// (every endpoint) when it is open.
func knownEndpoints(cfg config.Config, st *store.Store) func(context.Context, string) (bool, error) {
	if cfg.RegisterPolicy != config.RegisterKnown {
		return nil
	}
	return st.IsKnownEndpoint
}

// loadModels adds the OMA DDF object definitions in dir to objs. A
// directory that cannot be read stops the start; a bad file is logged with
// its name and line and skipped, so one broken vendor file does not keep
// the server down.
func loadModels(objs *objects.Catalog, dir string, log *slog.Logger) error {
	if dir == "" {
		return nil
	}
	n, err := objs.LoadDir(dir)
	if n == 0 && err != nil && !errors.As(err, new(*objects.ParseError)) {
		return fmt.Errorf("object definitions (--models %s): %w", dir, err)
	}
	if err != nil {
		for _, e := range unjoin(err) {
			log.Warn("object definition skipped", "err", e)
		}
	}
	log.Info("object definitions loaded", "dir", dir, "objects", n)
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// prepareDir creates the data directory and checks it is writable, so a
// bad directory fails at start with one clear line.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}
