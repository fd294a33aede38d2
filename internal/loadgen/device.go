package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
)

// RFC 7252 §4.8 transmission parameters.
const (
	ackTimeout    = 2 * time.Second
	ackRandom     = 1.5
	maxRetransmit = 4
	// maxSeparateWait bounds the wait for a separate response after an
	// empty ACK (MAX_TRANSMIT_WAIT).
	maxSeparateWait = 93 * time.Second
)

// errTimeout is a request that got no answer after every retransmission.
var errTimeout = errors.New("timeout")

// errReset is a request the server answered with Reset.
var errReset = errors.New("reset")

// response is what a device keeps of an answer.
type response struct {
	code     codes.Code
	location []string
	maxAge   uint32 // Max-Age option, seconds; 60 when absent (RFC 7252)
}

// exchange is the one confirmable request a device has in flight.
type exchange struct {
	mid   int32
	token string
	acked chan struct{} // closed on an empty ACK
	done  chan response // one answer
	reset chan struct{} // closed on a Reset
	once  sync.Once     // guards closing acked
	rst   sync.Once     // guards closing reset
	sent  atomic.Bool   // an answer was delivered
}

// device is one simulated LwM2M client on its own UDP socket. Its
// requests are sent by one goroutine at a time; its reader goroutine
// delivers answers and serves the server's requests.
type device struct {
	ep       string
	conn     *net.UDPConn
	mid      atomic.Uint32 // next message ID (low 16 bits)
	tokens   atomic.Uint64 // next token
	location []string      // Location-Path of the registration; set by register

	mu      sync.Mutex
	waiting *exchange // guarded by mu

	// Read by the reader goroutine only.
	obsSeq   uint32
	answered [8]answered // recent answers to confirmable server requests
	next     int

	served *serverStats
}

// answered is an answer to a confirmable server request, kept so that a
// retransmission of the request gets it again.
type answered struct {
	mid int32
	pkt []byte
}

// serverStats counts what the server asked the devices.
type serverStats struct {
	observe  atomic.Int64 // Observe requests answered with a value
	read     atomic.Int64 // other requests answered with a value
	attrs    atomic.Int64 // Write-Attributes answered 2.04
	notFound atomic.Int64 // requests answered 4.04
	deferred atomic.Int64 // requests of the devices answered 5.03 and sent again after Max-Age
}

func newDevice(ep string, conn *net.UDPConn, seed uint64, served *serverStats) *device {
	d := &device{ep: ep, conn: conn, served: served}
	d.mid.Store(uint32(seed))
	d.tokens.Store(seed << 16)
	return d
}

// readLoop reads the device's socket until it is closed.
func (d *device) readLoop() {
	buf := make([]byte, 1500)
	opts := make(message.Options, 0, 32) // Decode fills, never grows, it
	for {
		n, err := d.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP port unreachable while the server is down
		}
		m := message.Message{Options: opts[:0]}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			continue
		}
		d.receive(m)
	}
}

func (d *device) receive(m message.Message) {
	switch {
	case m.Type == message.Acknowledgement || m.Type == message.Reset:
		d.mu.Lock()
		ex := d.waiting
		d.mu.Unlock()
		if ex == nil || ex.mid != m.MessageID {
			return
		}
		switch {
		case m.Type == message.Reset:
			ex.rst.Do(func() { close(ex.reset) })
		case m.Code == codes.Empty:
			ex.once.Do(func() { close(ex.acked) })
		case string(m.Token) == ex.token:
			ex.deliver(m)
		}
	case m.Code >= codes.Created: // a separate response
		if m.Type == message.Confirmable {
			d.write(message.Message{Type: message.Acknowledgement, Code: codes.Empty, MessageID: m.MessageID})
		}
		d.mu.Lock()
		ex := d.waiting
		d.mu.Unlock()
		if ex != nil && string(m.Token) == ex.token {
			ex.deliver(m)
		}
	case m.Code == codes.Empty:
		if m.Type == message.Confirmable { // CoAP ping
			d.write(message.Message{Type: message.Reset, Code: codes.Empty, MessageID: m.MessageID})
		}
	default:
		d.serve(m)
	}
}

func (ex *exchange) deliver(m message.Message) {
	if !ex.sent.CompareAndSwap(false, true) {
		return
	}
	r := response{code: m.Code, maxAge: 60}
	for _, o := range m.Options {
		switch o.ID {
		case message.LocationPath:
			r.location = append(r.location, string(o.Value))
		case message.MaxAge:
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			r.maxAge = v
		}
	}
	ex.done <- r
}

// The values a device reports; anything else it answers 4.04.
var deviceValues = map[lwm2m.Path]lwm2m.Value{
	lwm2m.NewPath(3303, 0, 5700): lwm2m.Float(21.5),
	lwm2m.NewPath(3304, 0, 5700): lwm2m.Float(48.0),
	lwm2m.NewPath(5, 0, 3):       lwm2m.Int(0),
	lwm2m.NewPath(5, 0, 5):       lwm2m.Int(0),
}

// serve answers a request of the server: see the package documentation.
func (d *device) serve(m message.Message) {
	if m.Type == message.Confirmable {
		for _, a := range d.answered {
			if a.pkt != nil && a.mid == m.MessageID {
				_, _ = d.conn.Write(a.pkt)
				return
			}
		}
	}
	resp := message.Message{Token: m.Token, Code: codes.NotFound, Type: message.Acknowledgement, MessageID: m.MessageID}
	if m.Type != message.Confirmable {
		resp.Type, resp.MessageID = message.NonConfirmable, d.nextMID()
	}
	path, _ := m.Options.Path()
	p, err := lwm2m.ParsePath(path)
	v, known := deviceValues[p]
	if err == nil && known && m.Code == codes.GET {
		f := lwm2m.FormatText
		if acc, err := m.Options.Accept(); err == nil {
			f = lwm2m.MediaType(acc)
		}
		payload, err := codec.Encode(f, p, []lwm2m.Record{{Path: p, Value: v}})
		if err != nil {
			resp.Code = codes.NotAcceptable
		} else {
			resp.Code, resp.Payload = codes.Content, payload
			resp.Options = resp.Options.Add(uintOption(message.ContentFormat, uint32(f)))
			if obs, err := m.Options.Observe(); err == nil && obs == 0 {
				d.obsSeq++
				resp.Options = resp.Options.Add(uintOption(message.Observe, d.obsSeq))
				d.served.observe.Add(1)
			} else {
				d.served.read.Add(1)
			}
		}
	}
	if q, qerr := m.Options.Queries(); err == nil && known && m.Code == codes.PUT && qerr == nil && len(q) > 0 && len(m.Payload) == 0 {
		resp.Code = codes.Changed // Write-Attributes (pmin, pmax, ...)
		d.served.attrs.Add(1)
	}
	if resp.Code == codes.NotFound {
		d.served.notFound.Add(1)
	}
	pkt := d.write(resp)
	if m.Type == message.Confirmable && pkt != nil {
		d.answered[d.next] = answered{mid: m.MessageID, pkt: pkt}
		d.next = (d.next + 1) % len(d.answered)
	}
}

// write encodes and sends m, and returns the datagram (nil when it could
// not be encoded).
func (d *device) write(m message.Message) []byte {
	pkt, err := encode(m)
	if err != nil {
		return nil
	}
	_, _ = d.conn.Write(pkt)
	return pkt
}

func encode(m message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Size(m)
	if err != nil {
		return nil, err
	}
	pkt := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, pkt); err != nil {
		return nil, err
	}
	return pkt, nil
}

func (d *device) nextMID() int32 { return int32(uint16(d.mid.Add(1))) }

// uintOption is a CoAP option with a uint value in its shortest form.
func uintOption(id message.OptionID, v uint32) message.Option {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	i := 0
	for i < 4 && b[i] == 0 {
		i++
	}
	return message.Option{ID: id, Value: b[i:]}
}

// maxDeferrals is how often a device retries a request the server
// answered 5.03 Service Unavailable.
const maxDeferrals = 5

// request is do, and on 5.03 Service Unavailable it waits the answer's
// Max-Age and sends the request again, as a device does when the server
// sheds load, up to maxDeferrals times; each wait is counted in
// served.deferred.
func (d *device) request(ctx context.Context, m message.Message) (response, error) {
	for n := 0; ; n++ {
		r, err := d.do(ctx, m)
		if err != nil || r.code != codes.ServiceUnavailable || n == maxDeferrals {
			return r, err
		}
		d.served.deferred.Add(1)
		t := time.NewTimer(time.Duration(r.maxAge) * time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		}
	}
}

// do sends m as a confirmable request with a fresh message ID and token,
// retransmits it as RFC 7252 says until it is answered, and returns the
// answer. It fails with errTimeout, errReset or ctx's error.
func (d *device) do(ctx context.Context, m message.Message) (response, error) {
	var tok [8]byte
	binary.BigEndian.PutUint64(tok[:], d.tokens.Add(1))
	m.Token, m.Type, m.MessageID = tok[:], message.Confirmable, d.nextMID()
	pkt, err := encode(m)
	if err != nil {
		return response{}, err
	}
	ex := &exchange{mid: m.MessageID, token: string(m.Token), acked: make(chan struct{}),
		done: make(chan response, 1), reset: make(chan struct{})}
	d.mu.Lock()
	d.waiting = ex
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.waiting = nil
		d.mu.Unlock()
	}()
	timeout := ackTimeout + time.Duration(rand.Float64()*(ackRandom-1)*float64(ackTimeout))
	t := time.NewTimer(timeout)
	defer t.Stop()
	for attempt := 0; ; attempt++ {
		if _, err := d.conn.Write(pkt); err != nil && attempt == 0 {
			return response{}, err
		}
		t.Reset(timeout)
		select {
		case r := <-ex.done:
			return r, nil
		case <-ex.reset:
			return response{}, errReset
		case <-ex.acked:
			t.Reset(maxSeparateWait)
			select {
			case r := <-ex.done:
				return r, nil
			case <-t.C:
				return response{}, errTimeout
			case <-ctx.Done():
				return response{}, ctx.Err()
			}
		case <-t.C:
			if attempt == maxRetransmit {
				return response{}, errTimeout
			}
			timeout *= 2
		case <-ctx.Done():
			return response{}, ctx.Err()
		}
	}
}
