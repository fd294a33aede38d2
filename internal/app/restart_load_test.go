package app

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/store"
)

// Paths the load devices report: Sends carry the minimum measured value,
// notifications the sensor value, each a counter of its own.
var (
	sendPath   = lwm2m.NewPath(3303, 0, 5601)
	notifyPath = lwm2m.NewPath(3303, 0, 5700)
)

// loadDevice is a small LwM2M client that records exactly which values the
// server acknowledged: it registers, answers the server's Observe of
// /3303/0/5700 (auto-observe), and then, until stopped, sends a
// confirmable Send of /3303/0/5601 and a confirmable notification of
// /3303/0/5700, each with the next value of its own counter. One message
// is in flight at a time; a socket that closes (ICMP port unreachable
// while the server restarts) is replaced and the registration updated, as
// a device would.
type loadDevice struct {
	ep   string
	dial func(h udpclient.HandlerFunc, monitor func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error)

	mu       sync.Mutex
	conn     *udpclient.Conn // guarded by mu
	token    message.Token   // of the server's observation; guarded by mu
	format   lwm2m.MediaType // of the observation; guarded by mu
	obsSeq   uint32          // guarded by mu
	observed chan struct{}   // closed when observed
	loc      string          // registration location
	acked    map[lwm2m.Path][]float64
	sent     map[lwm2m.Path]int
	resets   atomic.Int64 // Resets received: the server dropped the observation
	inNote   atomic.Bool  // a notification is waiting for its ACK
	noteRST  atomic.Bool  // that notification was answered with Reset
	redials  int
}

func newLoadDevice(ep string, dial func(udpclient.HandlerFunc, func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error)) *loadDevice {
	return &loadDevice{ep: ep, dial: dial, observed: make(chan struct{}),
		acked: map[lwm2m.Path][]float64{}, sent: map[lwm2m.Path]int{}}
}

// handle answers the server's requests: the Observe of notifyPath, 4.04
// to anything else.
func (d *loadDevice) handle(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
	p, _ := r.Path()
	obs, err := r.Observe()
	if r.Code() != codes.GET || p != notifyPath.String() || err != nil || obs != 0 {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	f := lwm2m.FormatText
	if a, err := r.Accept(); err == nil {
		f = lwm2m.MediaType(a)
	}
	body, err := codec.Encode(f, notifyPath, []lwm2m.Record{{Path: notifyPath, Value: lwm2m.Float(-1)}})
	if err != nil {
		_ = w.SetResponse(codes.NotAcceptable, message.TextPlain, nil)
		return
	}
	d.mu.Lock()
	first := d.token == nil
	d.token, d.format, d.obsSeq = append(message.Token(nil), r.Token()...), f, 1
	d.mu.Unlock()
	_ = w.SetResponse(codes.Content, message.MediaType(f), bytes.NewReader(body))
	w.Message().SetObserve(1)
	if first {
		close(d.observed)
	}
}

// monitor notes a Reset answering the notification in flight.
func (d *loadDevice) monitor(_ *udpclient.Conn, m *pool.Message) (bool, error) {
	if m.Type() == message.Reset && d.inNote.Load() {
		d.noteRST.Store(true)
		d.resets.Add(1)
	}
	return false, nil
}

func (d *loadDevice) start() error {
	cc, err := d.dial(d.handle, d.monitor)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.conn = cc
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte(`</1/0>,</3/0>,</3303/0>`)),
		message.Option{ID: message.URIQuery, Value: []byte("ep=" + d.ep)},
		message.Option{ID: message.URIQuery, Value: []byte("lwm2m=1.1")},
		message.Option{ID: message.URIQuery, Value: []byte("lt=3600")})
	if err != nil {
		return fmt.Errorf("%s: register: %w", d.ep, err)
	}
	if resp.Code() != codes.Created {
		return fmt.Errorf("%s: register: %v", d.ep, resp.Code())
	}
	d.loc, _ = resp.Options().LocationPath()
	return nil
}

// connection returns the device's connection, replaced (and the
// registration updated from it) when the old one closed.
func (d *loadDevice) connection() (*udpclient.Conn, error) {
	d.mu.Lock()
	cc := d.conn
	d.mu.Unlock()
	if cc.Context().Err() == nil {
		return cc, nil
	}
	cc, err := d.dial(d.handle, d.monitor)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conn = cc
	d.redials++
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cc.Post(ctx, d.loc, message.TextPlain, nil)
	if err != nil {
		return nil, err
	}
	if resp.Code() != codes.Changed {
		return nil, fmt.Errorf("%s: update from a new socket: %v", d.ep, resp.Code())
	}
	return cc, nil
}

// run sends until stop is closed; the message in flight then finishes.
func (d *loadDevice) run(stop <-chan struct{}) {
	var sendN, noteN int
	for {
		select {
		case <-stop:
			return
		default:
		}
		cc, err := d.connection()
		if err != nil {
			time.Sleep(200 * time.Millisecond) // the server is restarting
			continue
		}
		sendN++
		if d.send(cc, float64(sendN)) {
			d.ack(sendPath, float64(sendN))
		}
		noteN++
		if d.notify(cc, float64(noteN)) {
			d.ack(notifyPath, float64(noteN))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *loadDevice) ack(p lwm2m.Path, v float64) {
	d.mu.Lock()
	d.acked[p] = append(d.acked[p], v)
	d.mu.Unlock()
}

// send reports whether the Send of v was answered 2.04.
func (d *loadDevice) send(cc *udpclient.Conn, v float64) bool {
	d.mu.Lock()
	d.sent[sendPath]++
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := `[{"bn":"/3303/0/","n":"5601","v":` + strconv.FormatFloat(v, 'f', -1, 64) + `}]`
	resp, err := cc.Post(ctx, "/dp", message.AppSenmlJSON, bytes.NewReader([]byte(body)))
	return err == nil && resp.Code() == codes.Changed
}

// notify reports whether the notification of v was acknowledged (not
// reset).
func (d *loadDevice) notify(cc *udpclient.Conn, v float64) bool {
	d.mu.Lock()
	token, f := d.token, d.format
	d.obsSeq++
	seq := d.obsSeq
	d.sent[notifyPath]++
	d.mu.Unlock()
	body, err := codec.Encode(f, notifyPath, []lwm2m.Record{{Path: notifyPath, Value: lwm2m.Float(v)}})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(m)
	m.SetCode(codes.Content)
	m.SetType(message.Confirmable)
	m.SetToken(token)
	m.SetObserve(seq)
	m.SetContentFormat(message.MediaType(f))
	m.SetBody(bytes.NewReader(body))
	d.noteRST.Store(false)
	d.inNote.Store(true)
	err = cc.WriteMessage(m)
	d.inNote.Store(false)
	return err == nil && !d.noteRST.Load()
}

func (d *loadDevice) close() {
	d.mu.Lock()
	cc := d.conn
	d.mu.Unlock()
	if cc != nil {
		_ = cc.Close()
	}
}

// dialUDP opens a plain CoAP connection to addr.
func dialUDP(addr string) func(udpclient.HandlerFunc, func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error) {
	return func(h udpclient.HandlerFunc, mon func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error) {
		return udp.Dial(addr, options.WithHandlerFunc(h), options.WithRequestMonitor(mon), options.WithErrors(func(error) {}))
	}
}

// dialDTLS opens a CoAP/DTLS-PSK connection to addr from an unconnected
// socket, as a device's stack does (an ICMP error does not close it).
func dialDTLS(addr, identity string, key []byte) func(udpclient.HandlerFunc, func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error) {
	return func(h udpclient.HandlerFunc, mon func(*udpclient.Conn, *pool.Message) (bool, error)) (*udpclient.Conn, error) {
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		dc, err := piondtls.ClientWithOptions(&serverConn{UDPConn: c, server: raddr}, raddr,
			piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			piondtls.WithPSKIdentityHint([]byte(identity)),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
			piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := dc.HandshakeContext(ctx); err != nil {
			_ = dc.Close()
			return nil, err
		}
		return coapdtls.Client(dc, options.WithHandlerFunc(h), options.WithRequestMonitor(mon),
			options.WithErrors(func(error) {}), options.WithCloseSocket()), nil
	}
}

// serverConn is an unconnected UDP socket talking to one server.
type serverConn struct {
	*net.UDPConn
	server *net.UDPAddr
}

func (c *serverConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.UDPConn.ReadFromUDP(p)
		if err != nil {
			return n, nil, err
		}
		if from.Port == c.server.Port && from.IP.Equal(c.server.IP) {
			return n, c.server, nil
		}
	}
}

func (c *serverConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	return c.UDPConn.WriteToUDP(p, c.server)
}

// restartResult is what runRestartUnderLoad saw.
type restartResult struct {
	stop                      time.Duration // App.Stop under load
	sent, acked, stored       int
	ackedBefore               int // acknowledged when the stop began
	ackedMissing, ackedTwice  int // acknowledged values not stored, stored more than once
	unackedStored, unackedDup int // values never acknowledged but stored, and stored more than once
	resets, redials           int
}

// runRestartUnderLoad starts a server, nUDP plain CoAP and nDTLS DTLS-PSK
// load devices, lets them send for a while (with load; otherwise they
// stay idle), stops the server gracefully in the middle of it, starts it
// again on the same ports and data, lets them send again, and compares
// what the devices saw acknowledged with what is stored.
func runRestartUnderLoad(t testing.TB, nUDP, nDTLS int, phase time.Duration, load bool) restartResult {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	s := startServer(t, cfg, Tuning{OpTimeout: 30 * time.Second})
	cfg.CoAPListen, cfg.CoAPSListen = s.CoAPAddr().String(), s.CoAPSAddr().String()
	var devs []*loadDevice
	for i := range nUDP {
		devs = append(devs, newLoadDevice(fmt.Sprintf("urn:imei:load-u%05d", i), dialUDP(cfg.CoAPListen)))
	}
	for i := range nDTLS {
		ep, key := fmt.Sprintf("urn:imei:load-d%05d", i), []byte(fmt.Sprintf("key-of-load-%05d", i))
		if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"},
			credential.AddRequest{Endpoint: ep, PSKIdentity: ep, PSKKey: key}); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, newLoadDevice(ep, dialDTLS(cfg.CoAPSListen, ep, key)))
	}
	defer func() {
		for _, d := range devs {
			d.close()
		}
	}()
	// Start at most 64 at a time, as a fleet coming online does.
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(devs))
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- d.start()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devs {
		select {
		case <-d.observed:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: not observed", d.ep)
		}
	}

	stop := make(chan struct{})
	var running sync.WaitGroup
	if load {
		for _, d := range devs {
			running.Go(func() { d.run(stop) })
		}
	}
	time.Sleep(phase)
	var res restartResult
	for _, d := range devs {
		d.mu.Lock()
		res.ackedBefore += len(d.acked[sendPath]) + len(d.acked[notifyPath])
		d.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	start := time.Now()
	s.Stop(ctx)
	res.stop = time.Since(start)
	cancel()
	s2 := startServer(t, cfg, Tuning{OpTimeout: 30 * time.Second})
	time.Sleep(phase)
	close(stop)
	running.Wait()

	ctx = context.Background()
	for _, d := range devs {
		e, err := s2.Store.GetEndpoint(ctx, d.ep)
		if err != nil {
			t.Fatal(err)
		}
		res.resets += int(d.resets.Load())
		res.redials += d.redials
		for _, p := range []lwm2m.Path{sendPath, notifyPath} {
			vals, err := s2.Store.ResourceHistory(ctx, e.ID, p, time.Time{}, time.Now().Add(time.Hour), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			stored := map[float64]int{}
			for _, v := range vals {
				if f := v.Value.FloatValue(); f >= 0 { // -1: the Observe answer
					stored[f]++
					res.stored++
				}
			}
			acked := map[float64]bool{}
			for _, v := range d.acked[p] {
				acked[v] = true
				switch stored[v] {
				case 0:
					res.ackedMissing++
				case 1:
				default:
					res.ackedTwice++
				}
			}
			for v, n := range stored {
				if !acked[v] {
					res.unackedStored++
					if n > 1 {
						res.unackedDup++
					}
				}
			}
			res.acked += len(d.acked[p])
			res.sent += d.sent[p]
		}
	}
	return res
}

// TestGracefulRestartUnderLoad restarts the server while plain CoAP and
// DTLS devices send confirmable Sends and notifications as fast as it
// answers (closing the sockets before committing in-flight values once
// stored 243 values of 1,000 devices twice).
// Every value a device saw acknowledged is stored exactly once; a value
// never acknowledged may be stored (and the device then sends it again),
// and is reported. FLOWNEXUS_TEST_RESTART_DEVICES sets the number of
// devices (default 60, a third over DTLS).
func TestGracefulRestartUnderLoad(t *testing.T) {
	n := 60
	if v, err := strconv.Atoi(os.Getenv("FLOWNEXUS_TEST_RESTART_DEVICES")); err == nil && v > 0 {
		n = v
	}
	res := runRestartUnderLoad(t, n-n/3, n/3, 2*time.Second, true)
	t.Logf("%d devices: stop under load took %v; sent %d, acknowledged %d, stored %d; stored unacknowledged %d (twice %d); socket reopened %d",
		n, res.stop.Round(time.Millisecond), res.sent, res.acked, res.stored, res.unackedStored, res.unackedDup, res.redials)
	if res.acked == 0 {
		t.Fatal("nothing acknowledged")
	}
	if res.ackedMissing > 0 || res.ackedTwice > 0 {
		t.Errorf("of %d acknowledged values, %d not stored and %d stored more than once", res.acked, res.ackedMissing, res.ackedTwice)
	}
	if res.resets > 0 {
		t.Errorf("%d notifications answered with Reset: the restarted server lost observations", res.resets)
	}
	if res.stop > 15*time.Second {
		t.Errorf("stop took %v, more than its grace", res.stop)
	}
}

// BenchmarkGracefulStop measures App.Stop with 1,000 devices (a third over
// DTLS) registered and observed: idle (the baseline) and sending
// confirmable Sends and notifications as fast as the server answers. Run
// with -benchtime=1x: each iteration is a whole start, load and restart.
func BenchmarkGracefulStop(b *testing.B) {
	const n = 1000
	for _, load := range []bool{false, true} {
		name := "idle"
		if load {
			name = "load"
		}
		b.Run(fmt.Sprintf("%s/devices=%d", name, n), func(b *testing.B) {
			for range b.N {
				res := runRestartUnderLoad(b, n-n/3, n/3, 3*time.Second, load)
				b.ReportMetric(float64(res.stop.Milliseconds()), "stop-ms")
				b.ReportMetric(float64(res.acked), "acked")
				b.ReportMetric(float64(res.ackedBefore), "acked-before-stop")
				b.ReportMetric(float64(res.ackedMissing+res.ackedTwice), "acked-lost-or-twice")
				b.ReportMetric(float64(res.unackedStored), "stored-unacked")
			}
		})
	}
}
