package simulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
	"github.com/plgd-dev/go-coap/v3/udp/server"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

// peer is a small LwM2M server for the tests: it answers Register, Update,
// De-register and Send on real UDP sockets with go-coap and lets a test send
// device management requests to a registered device.
type peer struct {
	t    testing.TB
	srv  *server.Server
	addr string
	reg  *objects.Catalog

	mu      sync.Mutex
	byEP    map[string]*peerReg
	byLoc   map[string]*peerReg
	nextLoc int
	refuse  map[string]bool // lwm2m= versions answered with 4.12
	// sendCode answers Send (default 2.04); registerCode, when set,
	// answers Register instead of registering.
	sendCode     codes.Code
	registerCode codes.Code
	fw           []byte // served at /fw, block-wise
	// resetTokens: notifications with these tokens are answered with
	// Reset instead of an acknowledgement.
	resetTokens map[string]bool
	// beforeRegistered, when set, runs before a Register is answered,
	// with the device's connection: as a server's auto-observe can reach
	// a device before the Register answer does.
	beforeRegistered func(cc *client.Conn)
	listener         *coapnet.UDPConn
	served           chan struct{} // closed when srv's loop returns

	events chan peerEvent
}

// peerReg is one registration held by the peer.
type peerReg struct {
	ep, loc, version, binding string
	lt                        int64
	queue                     bool
	queries                   []string
	payload                   []byte
	objects                   linkformat.Registration
	conn                      *client.Conn
	addr                      string
}

type peerEvent struct {
	kind    string // "register", "update", "deregister", "send"
	ep      string
	loc     string
	addr    string
	queries []string
	payload []byte
	format  lwm2m.MediaType
	records []lwm2m.Record
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	p := &peer{
		t:           t,
		reg:         objects.Default(),
		byEP:        map[string]*peerReg{},
		byLoc:       map[string]*peerReg{},
		refuse:      map[string]bool{},
		resetTokens: map[string]bool{},
		events:      make(chan peerEvent, 4096),
	}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.stopServer)
	return p
}

// listen binds addr and serves it.
func (p *peer) listen(addr string) {
	l, err := coapnet.NewListenUDP("udp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.addr = l.LocalAddr().String()
	p.listener = l
	p.srv = udp.NewServer(options.WithHandlerFunc(p.handle), options.WithErrors(func(err error) { p.t.Logf("peer coap: %v", err) }),
		options.WithRequestMonitor(p.monitor))
	done := make(chan struct{})
	p.served = done
	go func() {
		defer close(done)
		_ = p.srv.Serve(l)
	}()
}

// stopServer closes the socket and waits for the server loop: datagrams
// to it get ICMP port unreachable, as while a server restarts.
func (p *peer) stopServer() {
	p.srv.Stop()
	<-p.served
}

// restart serves the same address again with the registrations it held.
func (p *peer) restart() { p.listen(p.addr) }

// monitor answers notifications of tokens in resetTokens with Reset.
func (p *peer) monitor(cc *client.Conn, m *pool.Message) (bool, error) {
	if m.Type() != message.Confirmable || m.Code() != codes.Content {
		return false, nil
	}
	p.mu.Lock()
	reset := p.resetTokens[string(m.Token())]
	p.mu.Unlock()
	if !reset {
		return false, nil
	}
	rst := message.Message{Type: message.Reset, Code: codes.Empty, MessageID: m.MessageID()}
	buf := make([]byte, 16)
	n, err := coder.DefaultCoder.Encode(rst, buf)
	if err != nil {
		return false, err
	}
	raddr, _ := cc.RemoteAddr().(*net.UDPAddr)
	if err := p.listener.WriteWithContext(context.Background(), raddr, buf[:n]); err != nil {
		p.t.Errorf("peer: write reset: %v", err)
	}
	return true, nil
}

func (p *peer) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	path, _ := r.Options().Path()
	queries, _ := r.Queries()
	body, _ := r.ReadBody()
	addr := w.Conn().RemoteAddr().String()
	set := func(c codes.Code, loc ...string) {
		opts := message.Options{}
		buf := make([]byte, 64)
		for _, l := range loc {
			var n int
			opts, n, _ = opts.AddString(buf, message.LocationPath, l)
			buf = buf[n:]
		}
		if err := w.SetResponse(c, message.TextPlain, nil, opts...); err != nil {
			p.t.Errorf("peer: set response: %v", err)
		}
	}
	switch {
	case r.Code() == codes.POST && path == "/rd":
		ep, version, binding, lt, queue := "", "", "", int64(0), false
		for _, q := range queries {
			k, v, _ := strings.Cut(q, "=")
			switch k {
			case "ep":
				ep = v
			case "lwm2m":
				version = v
			case "b":
				binding = v
			case "lt":
				lt, _ = strconv.ParseInt(v, 10, 64)
			case "Q":
				queue = true
			}
		}
		objs, err := linkformat.ParseRegistration(body)
		if err != nil {
			p.t.Errorf("peer: register payload %q: %v", body, err)
			set(codes.BadRequest)
			return
		}
		p.mu.Lock()
		if p.refuse[version] {
			p.mu.Unlock()
			set(codes.PreconditionFailed)
			return
		}
		if p.registerCode != 0 {
			c := p.registerCode
			p.mu.Unlock()
			set(c)
			return
		}
		if old := p.byEP[ep]; old != nil {
			delete(p.byLoc, old.loc)
		}
		p.nextLoc++
		loc := fmt.Sprintf("r%d", p.nextLoc)
		pr := &peerReg{ep: ep, loc: "/rd/" + loc, version: version, binding: binding, lt: lt, queue: queue,
			queries: queries, payload: body, objects: objs, conn: w.Conn(), addr: addr}
		p.byEP[ep] = pr
		p.byLoc[pr.loc] = pr
		before := p.beforeRegistered
		p.mu.Unlock()
		if before != nil {
			before(w.Conn())
		}
		set(codes.Created, "rd", loc)
		p.events <- peerEvent{kind: "register", ep: ep, loc: pr.loc, addr: addr, queries: queries, payload: body}
	case r.Code() == codes.POST && strings.HasPrefix(path, "/rd/"):
		p.mu.Lock()
		pr := p.byLoc[path]
		if pr != nil {
			pr.conn, pr.addr = w.Conn(), addr
			for _, q := range queries {
				k, v, _ := strings.Cut(q, "=")
				switch k {
				case "lt":
					pr.lt, _ = strconv.ParseInt(v, 10, 64)
				case "b":
					pr.binding = v
				}
			}
			if len(body) > 0 {
				if objs, err := linkformat.ParseRegistration(body); err == nil {
					pr.objects = objs
				} else {
					p.t.Errorf("peer: update payload %q: %v", body, err)
				}
			}
		}
		p.mu.Unlock()
		if pr == nil {
			set(codes.NotFound)
			return
		}
		set(codes.Changed)
		p.events <- peerEvent{kind: "update", ep: pr.ep, loc: path, addr: addr, queries: queries, payload: body}
	case r.Code() == codes.DELETE && strings.HasPrefix(path, "/rd/"):
		p.mu.Lock()
		pr := p.byLoc[path]
		if pr != nil {
			delete(p.byLoc, path)
			delete(p.byEP, pr.ep)
		}
		p.mu.Unlock()
		if pr == nil {
			set(codes.NotFound)
			return
		}
		set(codes.Deleted)
		p.events <- peerEvent{kind: "deregister", ep: pr.ep, loc: path, addr: addr}
	case r.Code() == codes.POST && path == "/dp":
		cf, _ := r.ContentFormat()
		recs, err := decode(lwm2m.MediaType(cf), body, lwm2m.Root, p.reg.TypeOf, time.Now())
		if err != nil {
			p.t.Errorf("peer: send payload: %v", err)
		}
		p.mu.Lock()
		c := p.sendCode
		ep := ""
		for _, pr := range p.byEP {
			if pr.addr == addr {
				ep = pr.ep
			}
		}
		p.mu.Unlock()
		if c == 0 {
			c = codes.Changed
		}
		set(c)
		p.events <- peerEvent{kind: "send", ep: ep, addr: addr, payload: body, format: lwm2m.MediaType(cf), records: recs}
	case r.Code() == codes.GET && path == "/fw":
		p.mu.Lock()
		fw := p.fw
		p.mu.Unlock()
		if fw == nil {
			set(codes.NotFound)
			return
		}
		_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(fw))
	default:
		set(codes.NotFound)
	}
}

// wait returns the next peer event of the given kind (and endpoint, when
// not empty), failing the test after timeout.
func (p *peer) wait(kind, ep string, timeout time.Duration) peerEvent {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-p.events:
			if e.kind == kind && (ep == "" || e.ep == ep) {
				return e
			}
		case <-deadline:
			p.t.Fatalf("peer: no %s event for %q within %v", kind, ep, timeout)
		}
	}
}

// none fails when an event of kind arrives within d.
func (p *peer) none(kind string, d time.Duration) {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-p.events:
			if e.kind == kind {
				p.t.Fatalf("peer: unexpected %s event: %+v", kind, e)
			}
		case <-deadline:
			return
		}
	}
}

// registration returns a copy of the registration of ep, or nil.
func (p *peer) registration(ep string) *peerReg {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.byEP[ep]
	if pr == nil {
		return nil
	}
	c := *pr
	return &c
}

// reply is a device's answer, copied out of the pool.
type reply struct {
	code    codes.Code
	format  lwm2m.MediaType
	hasCF   bool
	body    []byte
	loc     string
	observe uint32
	hasObs  bool
}

func copyReply(m *pool.Message) reply {
	r := reply{code: m.Code()}
	if cf, err := m.ContentFormat(); err == nil {
		r.format, r.hasCF = lwm2m.MediaType(cf), true
	}
	r.body, _ = m.ReadBody()
	r.loc, _ = m.Options().LocationPath()
	if o, err := m.Observe(); err == nil {
		r.observe, r.hasObs = o, true
	}
	return r
}

type poolMessage = pool.Message

// reqOpt adjusts a request before it is sent.
type reqOpt func(*pool.Message)

func accept(f lwm2m.MediaType) reqOpt {
	return func(m *pool.Message) { m.SetAccept(message.MediaType(f)) }
}

func query(q ...string) reqOpt {
	return func(m *pool.Message) {
		for _, s := range q {
			m.AddQuery(s)
		}
	}
}

// request sends one request to the device registered as ep and returns
// its answer; it fails the test on transport errors.
func (p *peer) request(ep string, code codes.Code, path string, cf lwm2m.MediaType, body []byte, opts ...reqOpt) reply {
	p.t.Helper()
	r, err := p.try(ep, code, path, cf, body, 5*time.Second, opts...)
	if err != nil {
		p.t.Fatalf("peer: %v %s to %s: %v", code, path, ep, err)
	}
	return r
}

// try is request returning the transport error, with a timeout.
func (p *peer) try(ep string, code codes.Code, path string, cf lwm2m.MediaType, body []byte, timeout time.Duration, opts ...reqOpt) (reply, error) {
	pr := p.registration(ep)
	if pr == nil {
		return reply{}, fmt.Errorf("%s not registered", ep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	token, err := message.GetToken()
	if err != nil {
		return reply{}, err
	}
	req := pr.conn.AcquireMessage(ctx)
	defer pr.conn.ReleaseMessage(req)
	var payload io.ReadSeeker
	if body != nil {
		payload = bytes.NewReader(body)
	}
	switch code {
	case codes.GET:
		err = req.SetupGet(path, token)
	case codes.POST:
		err = req.SetupPost(path, token, message.MediaType(cf), payload)
	case codes.PUT:
		err = req.SetupPut(path, token, message.MediaType(cf), payload)
	case codes.DELETE:
		err = req.SetupDelete(path, token)
	case codes.FETCH:
		err = req.SetupFetch(path, token, message.MediaType(cf), payload)
	case codes.IPATCH:
		err = req.SetupIPatch(path, token, message.MediaType(cf), payload)
	default:
		err = fmt.Errorf("method %v", code)
	}
	if err != nil {
		return reply{}, err
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := pr.conn.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer pr.conn.ReleaseMessage(resp)
	return copyReply(resp), nil
}

// observation is an observation the peer holds on a device.
type peerObs struct {
	obs interface {
		Cancel(context.Context, ...message.Option) error
	}
	notes chan reply
	conn  *client.Conn
	token message.Token
}

// observe starts an Observe (GET) or, with paths, an Observe-Composite
// (FETCH) and returns it with the first answer.
func (p *peer) observe(ep, path string, paths []lwm2m.Path, opts ...reqOpt) (*peerObs, reply) {
	p.t.Helper()
	pr := p.registration(ep)
	if pr == nil {
		p.t.Fatalf("%s not registered", ep)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	token, _ := message.GetToken()
	req := pr.conn.AcquireMessage(ctx)
	defer pr.conn.ReleaseMessage(req)
	if paths == nil {
		if err := req.SetupGet(path, token); err != nil {
			p.t.Fatal(err)
		}
	} else {
		body, err := senml.EncodePathsCBOR(paths)
		if err != nil {
			p.t.Fatal(err)
		}
		if err := req.SetupFetch("/", token, message.MediaType(lwm2m.FormatSenMLCBOR), bytes.NewReader(body)); err != nil {
			p.t.Fatal(err)
		}
	}
	req.SetObserve(0)
	for _, o := range opts {
		o(req)
	}
	po := &peerObs{notes: make(chan reply, 256), conn: pr.conn, token: token}
	obs, err := pr.conn.DoObserve(req, func(m *pool.Message) {
		r := copyReply(m)
		po.notes <- r
	})
	if err != nil {
		p.t.Fatalf("observe %s: %v", path, err)
	}
	po.obs = obs
	first := po.next(p.t, 5*time.Second)
	return po, first
}

func (o *peerObs) next(t testing.TB, timeout time.Duration) reply {
	t.Helper()
	select {
	case r := <-o.notes:
		return r
	case <-time.After(timeout):
		t.Fatalf("no notification within %v", timeout)
	}
	return reply{}
}

func (o *peerObs) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case r := <-o.notes:
		t.Fatalf("unexpected notification: %+v", r)
	case <-time.After(d):
	}
}
