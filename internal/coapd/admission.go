package coapd

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options/config"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// AdmissionConfig bounds the device messages the server works on at once.
// The zero value takes the defaults given per field.
type AdmissionConfig struct {
	// MaxInFlight bounds the messages being handled or waiting to be,
	// server-wide; <= 0 means 16384: about what the server stores within
	// CoAP's first retransmission timeout (2 s) at its measured rates, so
	// a message queued behind more would be retransmitted by its device
	// anyway (BENCHMARKS.md). A fleet of that many devices each with one
	// request in flight fits.
	MaxInFlight int
	// MaxPerSource bounds them per source (an IPv4 address or an IPv6
	// /64), so that one host holds at most this share; <= 0 means 256.
	MaxPerSource int
	// MaxPerConn bounds them per remote address and port: a device has one
	// confirmable message in flight (RFC 7252 NSTART 1) and a few
	// non-confirmable ones; <= 0 means 8.
	MaxPerConn int
	// RegisterRate is how many Registers a second one source may make,
	// with bursts of RegisterBurst (<= 0: twice the rate); 0 means 50 a
	// second in bursts of 100, < 0 no limit. A Register creates an
	// endpoint and its observations: it is the dearest request a stranger
	// can send.
	RegisterRate  float64
	RegisterBurst int
	// RetryAfter is the Max-Age of a refusal (5.03): the device is asked
	// to wait between one and two times this long, spread at random so a
	// refused crowd does not come back at once; <= 0 means 3 s.
	RetryAfter time.Duration
}

func (c AdmissionConfig) withDefaults() AdmissionConfig {
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 16384
	}
	if c.MaxPerSource <= 0 {
		c.MaxPerSource = 256
	}
	if c.MaxPerConn <= 0 {
		c.MaxPerConn = 8
	}
	if c.RegisterRate == 0 {
		c.RegisterRate, c.RegisterBurst = 50, 100
	}
	if c.RegisterBurst <= 0 {
		c.RegisterBurst = max(1, int(2*c.RegisterRate))
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 3 * time.Second
	}
	return c
}

// The reasons a message is refused, as the metric labels them.
const (
	refusedConn     = "conn"     // MaxPerConn messages of the address are waiting
	refusedSource   = "source"   // MaxPerSource messages of the source are in flight
	refusedServer   = "server"   // MaxInFlight messages are in flight
	refusedRate     = "rate"     // the source's Register budget is spent
	refusedDraining = "draining" // the server is stopping: dropped, not answered
)

// admission decides, on the connection's reader goroutine and without any
// I/O, whether a device message is worked on, and runs the admitted
// messages of each connection one after another on a goroutine of their
// own. go-coap's reader hands a connection's messages to one queue per
// connection and the socket's single reader waits when that queue is full:
// one device whose messages wait on the store would stop the server from
// reading anyone's datagrams. Here the reader never waits: a message is
// queued within the bounds of AdmissionConfig or refused at once
// (Server.refuseMessage): a request with 5.03 and Max-Age, a notification
// with no answer, so that the device retransmits it. While the server
// shuts down (drain) every new message is dropped unanswered: its device
// retransmits it to the restarted server.
//
// A message is done when its handler has returned and its answer has been
// written; a retransmission that arrives while the original is queued or
// being handled is dropped (go-coap's own duplicate detection ends when
// processReceived returns), and one that arrives later gets go-coap's
// cached answer.
type admission struct {
	cfg AdmissionConfig
	now func() time.Time

	mu       sync.Mutex
	total    int                            // guarded by mu: queued and running messages
	conns    map[*udpclient.Conn]*connQueue // guarded by mu: connections with messages queued or running
	sources  map[netip.Addr]*sourceState    // guarded by mu
	draining bool                           // guarded by mu
	idle     chan struct{}                  // guarded by mu: closed when total reaches 0 while draining
	refused  map[string]uint64              // guarded by mu: by reason
}

// connQueue is the work of one connection: at most one message runs.
type connQueue struct {
	src     netip.Addr
	running int32 // message ID of the running message
	jobs    []job // waiting, in arrival order
}

type job struct {
	req     *pool.Message
	handler config.HandlerFunc[*udpclient.Conn]
}

// sourceState is the budget of one source.
type sourceState struct {
	inflight int
	tokens   float64
	last     time.Time
}

// maxSources bounds the sources remembered; idle ones (nothing in flight,
// a full Register budget) are forgotten first.
const maxSources = 1 << 16

func newAdmission(cfg AdmissionConfig, now func() time.Time) *admission {
	return &admission{
		cfg:     cfg.withDefaults(),
		now:     now,
		conns:   make(map[*udpclient.Conn]*connQueue),
		sources: make(map[netip.Addr]*sourceState),
		refused: make(map[string]uint64),
	}
}

// verdict is what admit decided for a message.
type verdict uint8

const (
	admitRun       verdict = iota + 1 // start a worker for the connection with this message
	admitQueued                       // queued behind the connection's running message
	admitDuplicate                    // the same message ID is queued or running: drop it
	admitRefused                      // answer it with a refusal
	admitDropped                      // the server is stopping: drop it unanswered
)

// admit decides for req of cc from src; a Register also spends one unit
// of the source's Register budget. With admitRefused, reason says why.
func (a *admission) admit(cc *udpclient.Conn, src netip.Addr, req *pool.Message, register bool, h config.HandlerFunc[*udpclient.Conn]) (v verdict, reason string) {
	mid := req.MessageID()
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.conns[cc]
	if q != nil {
		if q.running == mid {
			return admitDuplicate, ""
		}
		for _, j := range q.jobs {
			if j.req.MessageID() == mid {
				return admitDuplicate, ""
			}
		}
	}
	if a.draining {
		a.refused[refusedDraining]++
		return admitDropped, refusedDraining
	}
	st := a.sources[src]
	switch {
	case q != nil && len(q.jobs)+1 >= a.cfg.MaxPerConn:
		reason = refusedConn
	case a.total >= a.cfg.MaxInFlight:
		reason = refusedServer
	case st != nil && st.inflight >= a.cfg.MaxPerSource:
		reason = refusedSource
	}
	if reason == "" && register && a.cfg.RegisterRate > 0 {
		if st == nil {
			st = a.newSource(src)
		}
		if !st.spend(a.now(), a.cfg.RegisterRate, a.cfg.RegisterBurst) {
			reason = refusedRate
		}
	}
	if reason != "" {
		a.refused[reason]++
		return admitRefused, reason
	}
	if st == nil {
		st = a.newSource(src)
	}
	st.inflight++
	a.total++
	if q == nil {
		a.conns[cc] = &connQueue{src: src, running: mid}
		return admitRun, ""
	}
	q.jobs = append(q.jobs, job{req: req, handler: h})
	return admitQueued, ""
}

func (a *admission) newSource(src netip.Addr) *sourceState {
	if len(a.sources) >= maxSources {
		a.forgetIdleLocked()
	}
	st := &sourceState{tokens: float64(a.cfg.RegisterBurst), last: a.now()}
	a.sources[src] = st
	return st
}

// forgetIdleLocked drops sources with nothing in flight whose Register
// budget has refilled. a.mu must be held.
func (a *admission) forgetIdleLocked() {
	now := a.now()
	for k, st := range a.sources {
		if st.inflight == 0 && st.refill(now, a.cfg.RegisterRate, a.cfg.RegisterBurst) >= float64(a.cfg.RegisterBurst) {
			delete(a.sources, k)
		}
	}
}

// refill brings the budget to now and returns it.
func (st *sourceState) refill(now time.Time, rate float64, burst int) float64 {
	if d := now.Sub(st.last); d > 0 {
		st.tokens = min(float64(burst), st.tokens+d.Seconds()*rate)
		st.last = now
	}
	return st.tokens
}

// spend takes one unit of the budget if there is one.
func (st *sourceState) spend(now time.Time, rate float64, burst int) bool {
	if st.refill(now, rate, burst) < 1 {
		return false
	}
	st.tokens--
	return true
}

// done records that the running message of cc finished and returns the
// next one to run, if any.
func (a *admission) done(cc *udpclient.Conn) (job, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.conns[cc]
	if st := a.sources[q.src]; st != nil {
		st.inflight--
	}
	a.total--
	if a.total == 0 && a.idle != nil {
		close(a.idle)
		a.idle = nil
	}
	if len(q.jobs) == 0 {
		delete(a.conns, cc)
		return job{}, false
	}
	next := q.jobs[0]
	q.jobs[0] = job{}
	q.jobs = q.jobs[1:]
	q.running = next.req.MessageID()
	return next, true
}

// drain takes no message from now on (admit drops them unanswered, so
// their devices retransmit them to the restarted server) and returns a
// channel closed once the admitted ones are done.
func (a *admission) drain() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.draining = true
	if a.total == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if a.idle == nil {
		a.idle = make(chan struct{})
	}
	return a.idle
}

// AdmissionStats are the admission figures of a Server.
type AdmissionStats struct {
	// InFlight is the number of device messages queued or being handled.
	InFlight int
	// Refused counts the messages refused since the start by reason:
	// "conn", "source", "server", "rate" or "draining".
	Refused map[string]uint64
}

// AdmissionStats returns the current admission figures.
func (s *Server) AdmissionStats() AdmissionStats {
	a := s.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	st := AdmissionStats{InFlight: a.total, Refused: make(map[string]uint64, len(a.refused))}
	for k, v := range a.refused {
		st.Refused[k] = v
	}
	return st
}

// retryAfter is the Max-Age of one refusal, in whole seconds.
func (a *admission) retryAfter() uint32 {
	d := a.cfg.RetryAfter + rand.N(a.cfg.RetryAfter+1)
	return uint32(max(1, d.Round(time.Second)/time.Second))
}

// isRegister reports whether req is a Register (POST /rd).
func isRegister(req *pool.Message) bool {
	if req.Code() != codes.POST {
		return false
	}
	n := 0
	for _, o := range req.Options() {
		if o.ID != message.URIPath {
			continue
		}
		if n > 0 || string(o.Value) != "rd" {
			return false
		}
		n++
	}
	return n == 1
}
