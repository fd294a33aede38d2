package coapd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/monitor/inactivity"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/options/config"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpserver "github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/dtlsmux"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
)

// ActivityKind says which message an Activity reports.
type ActivityKind uint8

// The device messages reported to the Subscribe functions.
const (
	ActivityRegister ActivityKind = iota + 1
	ActivityUpdate
	ActivitySend
	ActivityNotify
)

func (k ActivityKind) String() string {
	switch k {
	case ActivityRegister:
		return "register"
	case ActivityUpdate:
		return "update"
	case ActivitySend:
		return "send"
	case ActivityNotify:
		return "notify"
	}
	return "activity(?)"
}

// Activity is a message a registered device sent and the server accepted.
type Activity struct {
	Kind         ActivityKind
	Registration registry.Registration
	// Records are the values a Send or notification reported, as stored;
	// nil for Register and Update and for a notification whose payload
	// could not be decoded. They are shared: the callee must not modify
	// them.
	Records []lwm2m.Record
}

// Config wires a Server.
type Config struct {
	Registry *registry.Registry // required
	Ingest   *ingest.Writer     // required: stores Send and notification values
	// Types types decoded values (objects.Default().TypeOf).
	Types lwm2m.TypeFunc
	// IdleTimeout closes a device's CoAP connection state after this long
	// without traffic; <= 0 means 30 s. See the package documentation.
	IdleTimeout time.Duration
	// DefaultLifetime is the lifetime of a Register without lt; <= 0
	// means 86400 s, the LwM2M default.
	DefaultLifetime uint32
	// MaxLifetime caps the lifetime of a Register or Update (seconds); a
	// longer lt= is taken as MaxLifetime. 0 means no cap.
	MaxLifetime uint32
	// Known, when set, is the register policy "known": a plain-CoAP
	// Register of an endpoint for which it reports false is refused with
	// 4.03. nil accepts every endpoint.
	Known func(ctx context.Context, endpoint string) (bool, error)
	// Logger receives the request log and go-coap's errors; nil means
	// slog.Default().
	Logger *slog.Logger
	// Credentials binds endpoints to DTLS credentials. With it, the DTLS
	// listener authenticates devices and an endpoint that has credentials
	// is refused over plain CoAP; without it, ListenDTLS fails and plain
	// CoAP takes every endpoint.
	Credentials *credential.Service
	// DTLS tunes the CoAP/DTLS listener.
	DTLS DTLSConfig
	// Admission bounds the device messages worked on at once, per
	// connection, per source and in all, and the Registers a source may
	// make; see AdmissionConfig.
	Admission AdmissionConfig
}

// RereadFunc reads the resources of an observation in full (a Read or
// Read-Composite of obs.Paths on the device of reg); see Server.SetReread.
type RereadFunc func(ctx context.Context, reg registry.Registration, obs registry.Observation) ([]lwm2m.Record, error)

// Server is the CoAP/UDP server. Create it with New, start it with Listen
// and Serve (or Start), stop it with Stop.
type Server struct {
	reg      *registry.Registry
	ingest   *ingest.Writer
	types    lwm2m.TypeFunc
	lifetime uint32
	// maxLifetime is Config.MaxLifetime; 0: none.
	maxLifetime uint32
	known       func(ctx context.Context, endpoint string) (bool, error)
	log         *slog.Logger

	creds   *credential.Service
	dtlsCfg DTLSConfig
	refused refusalLimiter
	adm     *admission

	srv     *udpserver.Server
	dtlsSrv *dtlsserver.Server

	hooksMu    sync.RWMutex
	onActivity []func(Activity) // guarded by hooksMu; see Subscribe
	reread     RereadFunc       // guarded by hooksMu; see SetReread
	// routes is the route table (Server.Handle), replaced whole when a
	// route is added; routesMu serializes the additions.
	routesMu sync.Mutex
	routes   atomic.Pointer[[]*route]
	// Background work (block-wise notifications) runs under base; Stop
	// cancels it and waits.
	base     context.Context
	stopBase context.CancelFunc
	bgMu     sync.Mutex
	stopping bool // guarded by bgMu
	bg       sync.WaitGroup
	// blockwiseSeen are the block-wise notifications handled lately, by
	// token and message ID; guarded by bgMu.
	blockwiseSeen map[string]time.Time

	sessionsSaved atomic.Bool // Stop saved the sessions once

	dmu sync.Mutex
	dl  *dtlsmux.Listener // guarded by dmu

	// sessions are the DTLS sessions by the endpoint that last registered,
	// updated or sent on them: requests to a DTLS device go out on its
	// session, whatever address the session has moved to.
	sessionsMu   sync.Mutex
	sessions     map[string]*udpclient.Conn // guarded by sessionsMu
	sessionBound chan struct{}              // closed and replaced when a session is bound; guarded by sessionsMu

	udp  dtlsmux.Socket // plain CoAP
	dtls dtlsmux.Socket // CoAP/DTLS

	dtlsSessions sessionSet // every DTLS session, for Shutdown to close
	hsFailures   failureLimiter

	// conns are go-coap's live connections by remote address, so Dial
	// reuses the connection a device's own messages arrive on. go-coap
	// keys its connections by remote and local address; on a wildcard
	// listener (":5683") incoming datagrams carry the concrete local
	// address while NewConn keys by the wildcard one, so without this a
	// second connection would send the request and the device's answer
	// would reach the first.
	connsMu sync.Mutex
	conns   map[netip.AddrPort]*udpclient.Conn // guarded by connsMu
}

// New returns a Server. It panics when Registry or Ingest is nil.
func New(cfg Config) *Server {
	if cfg.Registry == nil || cfg.Ingest == nil {
		panic("coapd: Config.Registry and Config.Ingest are required")
	}
	s := &Server{
		reg:         cfg.Registry,
		ingest:      cfg.Ingest,
		types:       cfg.Types,
		lifetime:    cfg.DefaultLifetime,
		maxLifetime: cfg.MaxLifetime,
		known:       cfg.Known,
		log:         cfg.Logger,
		conns:       make(map[netip.AddrPort]*udpclient.Conn),
		creds:       cfg.Credentials,
		dtlsCfg:     cfg.DTLS,
		sessions:    make(map[string]*udpclient.Conn),

		sessionBound: make(chan struct{}),
		adm:          newAdmission(cfg.Admission, time.Now),
		udp:          dtlsmux.Socket{Name: "CoAP"},
		dtls:         dtlsmux.Socket{Name: "CoAP/DTLS"},
	}
	if s.dtlsCfg.HandshakeTimeout <= 0 {
		s.dtlsCfg.HandshakeTimeout = 15 * time.Second
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.base, s.stopBase = context.WithCancel(context.Background())
	if s.lifetime == 0 {
		s.lifetime = 86400
	}
	if s.maxLifetime != 0 && s.lifetime > s.maxLifetime {
		s.lifetime = s.maxLifetime
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	onInactive := func(cc *udpclient.Conn) { _ = cc.Close() }
	s.srv = udp.NewServer(
		options.WithHandlerFunc(s.handle),
		options.WithOnNewConn(s.trackConn),
		options.WithErrors(func(err error) {
			s.log.Debug("coap transport", "err", err)
		}),
		options.WithProcessReceivedMessageFunc(config.ProcessReceivedMessageFunc[*udpclient.Conn](s.processReceived)),
		idleMonitor(idle, onInactive),
		periodicRunner(idle, nil),
	)
	s.dtlsSrv = s.newDTLSServer(s.dtlsCfg, idle)
	s.Handle(codes.POST, "rd", s.register)
	s.Handle(codes.POST, "rd/{id}", s.update)
	s.Handle(codes.DELETE, "rd/{id}", s.deregister)
	s.Handle(codes.POST, "dp", s.send)
	return s
}

// busyMonitor keeps a connection while one of its messages is being
// handled: a Register or notification waiting for the store must not lose
// its connection, and with it its answer, to the idle timeout. Otherwise
// it defers to go-coap's monitor, which also keeps connections with
// pending confirmable messages of the server.
type busyMonitor struct {
	inner udpclient.InactivityMonitor
	busy  atomic.Int32
}

func (m *busyMonitor) Notify() { m.inner.Notify() }

func (m *busyMonitor) CheckInactivity(now time.Time, cc *udpclient.Conn) {
	if m.busy.Load() > 0 {
		m.inner.Notify()
		return
	}
	m.inner.CheckInactivity(now, cc)
}

// idleMonitor gives each connection a busyMonitor over go-coap's
// inactivity monitor, which calls onInactive after idle without traffic.
func idleMonitor(idle time.Duration, onInactive func(*udpclient.Conn)) udpInactivity {
	return udpInactivity{func() udpclient.InactivityMonitor {
		return &busyMonitor{inner: udpclient.DeferInactivityWhileConfirmableMessagesPending(inactivity.New(idle, onInactive))}
	}}
}

// periodicRunner runs go-coap's connection housekeeping often enough for
// the idle timeout (idle/8, between 250 ms and 2 s) and, when every is
// set, calls it about once per idle timeout (at least 1 s apart).
func periodicRunner(idle time.Duration, every func()) options.PeriodicRunnerOpt {
	return options.WithPeriodicRunner(func(f func(time.Time) bool) {
		go func() {
			t := time.NewTicker(min(max(idle/8, 250*time.Millisecond), 2*time.Second))
			defer t.Stop()
			var last time.Time
			for now := range t.C {
				if !f(now) {
					return
				}
				if every != nil && now.Sub(last) >= max(idle, time.Second) {
					every()
					last = now
				}
			}
		}()
	})
}

// udpInactivity installs an inactivity monitor factory on the UDP server.
type udpInactivity struct {
	create func() udpclient.InactivityMonitor
}

func (o udpInactivity) UDPServerApply(cfg *udpserver.Config) { cfg.CreateInactivityMonitor = o.create }

// Listen binds the UDP socket ("127.0.0.1:0", ":5683").
func (s *Server) Listen(addr string) error {
	c, err := dtlsmux.ListenUDP(addr)
	if err != nil {
		return fmt.Errorf("coapd: listen %s: %w", addr, err)
	}
	l := coapnet.NewUDPConn("udp", c)
	if err := s.udp.Bind(c.LocalAddr(), func() error { return s.srv.Serve(l) }, l.Close); err != nil {
		_ = l.Close()
		return err
	}
	return nil
}

// Serve serves on the socket bound by Listen until Stop.
func (s *Server) Serve() error { return s.udp.Run() }

// Start is Listen followed by Serve in a new goroutine; a Serve error is
// logged.
func (s *Server) Start(addr string) error { return s.start(s.Listen, s.Serve, addr) }

// start is listen followed by serve in a new goroutine.
func (s *Server) start(listen func(string) error, serve func() error, addr string) error {
	if err := listen(addr); err != nil {
		return err
	}
	go func() {
		if err := serve(); err != nil {
			s.log.Error("coap server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the bound address, or the zero AddrPort before Listen.
func (s *Server) Addr() netip.AddrPort { return s.udp.Bound() }

// ErrNoSession is matched by Dial for a DTLS device with no live session:
// only the device can start one.
var ErrNoSession = errors.New("coapd: no DTLS session with the device")

// unparkTimeout bounds how long Dial waits for a parked session to resume
// when its ctx has no deadline.
const unparkTimeout = 5 * time.Second

// Dial returns a connection to the device of reg: over plain CoAP the live
// connection of its address or a new one on the server's socket; over
// DTLS the session the device last talked on, resumed if it was parked
// (waiting until ctx ends, or unparkTimeout when ctx has no deadline), or
// an error matching ErrNoSession, and ctx's error too when ctx ended while
// the session was being resumed. It is the devmgmt.DialFunc.
func (s *Server) Dial(ctx context.Context, reg registry.Registration) (*udpclient.Conn, error) {
	if reg.Transport == registry.TransportDTLS {
		if cc := s.sessionOf(reg.Endpoint); cc != nil && cc.Context().Err() == nil {
			return cc, nil
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, unparkTimeout)
			defer cancel()
		}
		if cc := s.unparkSession(ctx, reg.Endpoint); cc != nil {
			return cc, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrNoSession, reg.Endpoint, err)
		}
		return nil, fmt.Errorf("%w %q", ErrNoSession, reg.Endpoint)
	}
	addr := dtlsmux.Unmapped(reg.Addr)
	s.connsMu.Lock()
	cc := s.conns[addr]
	s.connsMu.Unlock()
	if cc != nil && cc.Context().Err() == nil {
		return cc, nil
	}
	cc, err := s.srv.NewConn(net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("coapd: dial %s: %w", addr, err)
	}
	return cc, nil
}

// trackConn records a new go-coap connection under its remote address
// until it closes.
func (s *Server) trackConn(cc *udpclient.Conn) {
	addr := connAddr(cc)
	s.connsMu.Lock()
	s.conns[addr] = cc
	s.connsMu.Unlock()
	cc.AddOnClose(func() {
		s.connsMu.Lock()
		if s.conns[addr] == cc {
			delete(s.conns, addr)
		}
		s.connsMu.Unlock()
	})
}

// optAnswer is a private-use option (RFC 7252 §12.2 reserves 65000 and
// above) the notification handler puts on an empty answer to ask
// processReceived for a Reset (answerReset) or for no answer at all
// (answerNone). It never leaves the server.
const optAnswer message.OptionID = 65000

const (
	answerReset = 1
	answerNone  = 2
)

// processReceived is go-coap's hook for every received message that is
// not a duplicate or an answer go-coap matched itself; it runs on the
// connection's reader goroutine. It asks admission whether the message is
// worked on: an admitted message is handled on the connection's worker
// goroutine (serve), a refused one is answered at once, and the reader
// goes back to the socket without waiting for the store.
func (s *Server) processReceived(req *pool.Message, cc *udpclient.Conn, handler config.HandlerFunc[*udpclient.Conn]) {
	src := dtlsmux.SourceKey(connAddr(cc).Addr())
	switch v, why := s.adm.admit(cc, src, req, isRegister(req), handler); v {
	case admitRun:
		s.hold(cc)
		go s.work(cc, job{req: req, handler: handler})
	case admitQueued:
		s.hold(cc)
	case admitDuplicate, admitDropped:
		cc.ReleaseMessage(req)
	case admitRefused:
		s.refuseMessage(cc, req, why)
		cc.ReleaseMessage(req)
	}
}

// refuseMessage answers a message admission refused, straight to the
// socket: a request with 5.03 and a Max-Age the device should wait, a
// notification with nothing, so that the device retransmits it. The
// answer is not cached for duplicates (a retransmission is decided
// again), so a flood leaves nothing behind.
func (s *Server) refuseMessage(cc *udpclient.Conn, req *pool.Message, why string) {
	if req.Code() >= codes.Created || req.Type() == message.Acknowledgement || req.Type() == message.Reset {
		return
	}
	resp := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(resp)
	resp.SetCode(codes.ServiceUnavailable)
	resp.SetToken(req.Token())
	if req.Type() == message.Confirmable {
		resp.SetType(message.Acknowledgement)
		resp.SetMessageID(req.MessageID())
	} else {
		resp.SetType(message.NonConfirmable)
		resp.SetMessageID(cc.GetMessageID())
	}
	resp.SetOptionUint32(message.MaxAge, s.adm.retryAfter())
	if err := writeAnswer(cc, req, resp); err != nil {
		s.log.Debug("coap refusal not sent", "remote_addr", connAddr(cc).String(), "err", err)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("coap request refused: server busy", "remote_addr", connAddr(cc).String(),
			"path", "/"+strings.Join(pathSegments(req), "/"), "reason", why)
	}
}

// writeAnswer writes resp, an answer to req, straight to cc's socket (past
// go-coap's exchange and block-wise layers), from the local address req
// arrived at (a wildcard listener has several).
func writeAnswer(cc *udpclient.Conn, req, resp *pool.Message) error {
	if cm := req.ControlMessage(); cm != nil && len(cm.Dst) > 0 && !cm.Dst.IsMulticast() {
		resp.SetControlMessage(&coapnet.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex})
	}
	return cc.Session().WriteMessage(resp)
}

// hold keeps cc from the idle timeout while a message of it is queued or
// running; work releases it.
func (s *Server) hold(cc *udpclient.Conn) {
	if m, ok := cc.InactivityMonitor().(*busyMonitor); ok {
		m.busy.Add(1)
	}
}

// work serves the admitted messages of cc, first j, one after another.
func (s *Server) work(cc *udpclient.Conn, j job) {
	for {
		s.serve(j.req, cc, j.handler)
		if m, ok := cc.InactivityMonitor().(*busyMonitor); ok {
			m.inner.Notify()
			m.busy.Add(-1)
		}
		var more bool
		if j, more = s.adm.done(cc); !more {
			return
		}
	}
}

// serve runs go-coap's handling of a received message and then applies
// the answer the notification handler asked for with optAnswer: go-coap
// answers a confirmable message with an ACK of its own (and caches it for
// duplicates), and only an empty answer escapes both, so the change is
// made after go-coap's handling.
func (s *Server) serve(req *pool.Message, cc *udpclient.Conn, handler config.HandlerFunc[*udpclient.Conn]) {
	mid := req.MessageID()
	isResponse := req.Code() >= codes.Created
	if isResponse && s.blockwiseNotification(req, cc) {
		cc.ReleaseMessage(req)
		return
	}
	cc.ProcessReceivedMessageWithHandler(req, func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
		handler(w, r)
		m := w.Message()
		if !isResponse || !m.IsModified() || m.Code() != codes.Empty {
			return
		}
		switch v, _ := m.GetOptionUint32(optAnswer); v {
		case answerNone:
			m.SetModified(false)
		case answerReset:
			m.SetType(message.Reset)
			m.SetMessageID(mid)
			m.SetToken(nil)
			m.ResetOptionsTo(nil)
			m.SetBody(nil)
		}
	})
}

// afterWrite runs fn once the answer to r has been written.
func afterWrite(r *pool.Message, fn func()) {
	if !responsewriter.AfterWrite(r.Context(), fn) {
		fn()
	}
}

// Subscribe adds fn to the functions told of each Activity: after the
// answer to a Register, Update or Send has been written, and after the
// values of a notification are stored (a non-confirmable one gets no
// answer). They run in the order they were added, on the connection's
// goroutine: fn must not block (start a goroutine for slow work). This is
// where auto-observe, queue-mode wake-ups and the values events are
// hooked in. A message handled while Subscribe runs may miss fn: add the
// functions before Start.
func (s *Server) Subscribe(fn func(Activity)) {
	s.hooksMu.Lock()
	s.onActivity = append(s.onActivity[:len(s.onActivity):len(s.onActivity)], fn)
	s.hooksMu.Unlock()
}

// SetReread sets the function that completes a notification arriving
// block-wise: the server calls it to read the observed resources in full
// and stores its result as the notification's values. Without it such a
// notification is dropped. Set it before Start.
func (s *Server) SetReread(fn RereadFunc) {
	s.hooksMu.Lock()
	s.reread = fn
	s.hooksMu.Unlock()
}

// rereadFunc is the function SetReread set, or nil.
func (s *Server) rereadFunc() RereadFunc {
	s.hooksMu.RLock()
	defer s.hooksMu.RUnlock()
	return s.reread
}

// emit tells the Subscribe functions of a.
func (s *Server) emit(a Activity) {
	s.hooksMu.RLock()
	fns := s.onActivity
	s.hooksMu.RUnlock()
	for _, fn := range fns {
		fn(a)
	}
}

// activity emits a after the answer to r is written.
func (s *Server) activity(r *pool.Message, a Activity) {
	afterWrite(r, func() { s.emit(a) })
}
