package devmgmt

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/registry"
)

// DialFunc returns a CoAP connection to the device of a registration over
// the transport it registered on (reg.Addr, reg.Transport), sharing the
// server's socket or DTLS session, and gives up when ctx ends (resuming a
// parked DTLS session waits). coapd.Server.Dial is the one in use.
type DialFunc func(ctx context.Context, reg registry.Registration) (*udpclient.Conn, error)

// Config wires a Manager.
type Config struct {
	Registry *registry.Registry // required
	Dial     DialFunc           // required
	// Types types the values of decoded responses (objects.Default().TypeOf).
	Types lwm2m.TypeFunc
	// Ingest stores the values of Observe responses; nil stores nothing.
	Ingest *ingest.Writer
	// Timeout bounds an operation whose ctx has no deadline; <= 0 means
	// 30 s.
	Timeout time.Duration
	// AutoObserve is the policy AutoObserve applies; nil means
	// DefaultPolicy(), a Policy without entries observes nothing.
	AutoObserve *Policy
	// AutoObserveRuns bounds how many devices' auto-observe policies run
	// at once; <= 0 means 512. A fleet registering at once after an
	// outage then spends the server on the Registers first, and its
	// observations follow.
	AutoObserveRuns int
	// Logger receives one line per failed automatic observation; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Manager performs operations on registered devices. It is safe for
// concurrent use; operations on one device are sent one at a time (the
// CoAP connection to a device allows one outstanding request).
type Manager struct {
	reg     *registry.Registry
	dial    DialFunc
	types   lwm2m.TypeFunc
	ingest  *ingest.Writer
	timeout time.Duration
	auto    Policy
	// autoRuns holds a token per auto-observe policy running
	// (Config.AutoObserveRuns).
	autoRuns chan struct{}
	log      *slog.Logger

	// Background work (auto-observe) runs under base and is waited for by
	// Close.
	base     context.Context
	stopBase context.CancelFunc
	bgMu     sync.Mutex
	closed   bool // guarded by bgMu
	bg       sync.WaitGroup
}

// New returns a Manager. It panics when Registry or Dial is nil.
func New(cfg Config) *Manager {
	if cfg.Registry == nil || cfg.Dial == nil {
		panic("devmgmt: Config.Registry and Config.Dial are required")
	}
	m := &Manager{
		reg:     cfg.Registry,
		dial:    cfg.Dial,
		types:   cfg.Types,
		ingest:  cfg.Ingest,
		timeout: cfg.Timeout,
		log:     cfg.Logger,
	}
	if m.timeout <= 0 {
		m.timeout = 30 * time.Second
	}
	m.autoRuns = make(chan struct{}, cmp.Or(max(cfg.AutoObserveRuns, 0), 512))
	if cfg.AutoObserve != nil {
		m.auto = *cfg.AutoObserve
	} else {
		m.auto = DefaultPolicy()
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.base, m.stopBase = context.WithCancel(context.Background())
	return m
}

// Close cancels the Manager's background work (auto-observe) and waits for
// it; call it after the CoAP server stopped and before the store closes.
// Later AutoObserve calls do nothing.
func (m *Manager) Close() {
	m.bgMu.Lock()
	m.closed = true
	m.bgMu.Unlock()
	m.stopBase()
	m.bg.Wait()
}

// goBackground runs fn in a goroutine Close waits for; false, and fn does
// not run, once Close was called.
func (m *Manager) goBackground(fn func(ctx context.Context)) bool {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	if m.closed {
		return false
	}
	m.bg.Go(func() { fn(m.base) })
	return true
}

// Types returns the TypeFunc the Manager decodes with.
func (m *Manager) Types() lwm2m.TypeFunc { return m.types }

// request describes one CoAP request to a device.
type request struct {
	op        string
	code      codes.Code
	path      lwm2m.Path
	queries   []string
	format    lwm2m.MediaType // content format of body, when body != nil
	body      []byte
	accept    lwm2m.MediaType
	hasAcc    bool
	observe   int // -1: no Observe option; 0 register; 1 deregister
	token     message.Token
	composite bool // path is ignored; the request goes to the root path
}

// response is what callers of exchange get: the code, content format and
// body, copied out of the pooled message.
type response struct {
	code      codes.Code
	format    lwm2m.MediaType
	hasFormat bool
	body      []byte
	location  string
	observed  bool // the response carries an Observe option
}

// registration returns the live registration of endpoint as its record
// in the store has it now (registry.Current: another node may have served
// the device since this one did, or the server restarted); an error
// matching ErrOffline when it has none.
func (m *Manager) registration(ctx context.Context, endpoint string) (registry.Registration, error) {
	reg, err := m.reg.Current(ctx, endpoint)
	if errors.Is(err, registry.ErrNotFound) {
		return reg, fmt.Errorf("%w: %q", ErrOffline, endpoint)
	}
	return reg, err
}

// exchange sends req to the device of reg and returns its answer. A CoAP
// error code becomes a *CoAPError.
func (m *Manager) exchange(ctx context.Context, reg registry.Registration, req request) (response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	pathStr := req.path.String()
	if req.composite {
		pathStr = "/"
	}
	fail := func(err error) (response, error) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return response{}, fmt.Errorf("devmgmt: %s %s on %q: %w (%w)", req.op, pathStr, reg.Endpoint, ErrTimeout, err)
		case ctx.Err() != nil:
			return response{}, fmt.Errorf("devmgmt: %s %s on %q: %w", req.op, pathStr, reg.Endpoint, ctx.Err())
		}
		return response{}, fmt.Errorf("devmgmt: %s %s on %q: %w", req.op, pathStr, reg.Endpoint, err)
	}
	// The one check every request passes: nothing goes to a device that
	// cannot understand it.
	if err := requireVersion(reg, req.op, req.composite, req.path); err != nil {
		return response{}, err
	}
	if !reg.Addr.IsValid() {
		return fail(errors.New("registration has no address"))
	}
	cc, err := m.dial(ctx, reg)
	if err != nil {
		return fail(err)
	}
	msg := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(msg)
	token := req.token
	if token == nil {
		if token, err = message.GetToken(); err != nil {
			return fail(err)
		}
	}
	if err := msg.SetupGet(devicePath(reg.Objects.RootPath, pathStr), token); err != nil {
		return fail(err)
	}
	msg.SetCode(req.code)
	msg.SetType(message.Confirmable)
	for _, q := range req.queries {
		msg.AddQuery(q)
	}
	if req.observe >= 0 {
		msg.SetObserve(uint32(req.observe))
	}
	if req.hasAcc {
		msg.SetAccept(message.MediaType(req.accept))
	}
	if req.body != nil {
		msg.SetContentFormat(message.MediaType(req.format))
		msg.SetBody(bytes.NewReader(req.body))
	}
	out, err := cc.Do(msg)
	if err != nil {
		return fail(err)
	}
	defer cc.ReleaseMessage(out)
	resp := response{code: out.Code()}
	if cf, err := out.ContentFormat(); err == nil {
		resp.format, resp.hasFormat = lwm2m.MediaType(cf), true
	}
	if out.Body() != nil {
		if resp.body, err = io.ReadAll(out.Body()); err != nil {
			return fail(err)
		}
	}
	if _, err := out.Observe(); err == nil {
		resp.observed = true
	}
	if loc, err := out.Options().LocationPath(); err == nil {
		resp.location = loc
	}
	if resp.code >= codes.BadRequest || resp.code < codes.Created {
		return resp, &CoAPError{Op: req.op, Endpoint: reg.Endpoint, Path: pathStr, Code: resp.code,
			Diagnostic: diagnostic(resp.body)}
	}
	return resp, nil
}

// devicePath puts p under the client's alternate root path.
func devicePath(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	if p == "/" {
		return root
	}
	return root + p
}

// diagnostic returns a printable excerpt of an error payload.
func diagnostic(b []byte) string {
	const max = 200
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}

// decode decodes a response body read from base.
func (m *Manager) decode(op, endpoint string, base lwm2m.Path, resp response) ([]lwm2m.Record, error) {
	f := resp.format
	if !resp.hasFormat {
		if len(resp.body) == 0 {
			return nil, nil
		}
		f = lwm2m.FormatText // RFC 7252: no Content-Format means text/plain
	}
	recs, err := codec.Decode(f, resp.body, base, m.types)
	if err != nil {
		return nil, fmt.Errorf("devmgmt: %s %s on %q: %w: %w", op, base, endpoint, ErrBadResponse, err)
	}
	return recs, nil
}
