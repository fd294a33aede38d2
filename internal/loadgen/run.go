package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

// Config is one load run. Server and Devices are required.
type Config struct {
	Server  string // "HOST:PORT" of a CoAP/UDP LwM2M server
	Devices int
	// Send is how long phase 2 (Sends) lasts; 0 skips it.
	Send time.Duration
	// Deregister runs phase 3.
	Deregister bool
	// Lifetime is the registration lifetime (lt=) in seconds; 0 means
	// 3600.
	Lifetime uint32
	// IMEIBase is the first 14 IMEI digits of device 0 (device i has
	// IMEIBase+i and a Luhn check digit); 0 means 35693803000000.
	IMEIBase uint64
	// FloodRate, when > 0, is how many Registers per second one extra
	// socket sends for FloodFor (0: 10 s); the devices register when half
	// of that has passed.
	FloodRate int
	FloodFor  time.Duration
	// From, when valid, spreads the devices over the addresses of this
	// prefix (device i binds to its (i+1)-th address, wrapping around), as
	// devices behind many NATs arrive: on loopback, 127.1.0.0/16 gives
	// each of 65,535 devices a host of its own. The zero prefix leaves
	// the source address to the system. The flood socket always uses the
	// system's.
	From netip.Prefix
	// Logger receives progress lines at debug level; nil: slog.Default().
	Logger *slog.Logger
}

// source returns the local address of device i (nil: the system's).
func (c Config) source(i int) *net.UDPAddr {
	if !c.From.IsValid() {
		return nil
	}
	bits := c.From.Addr().BitLen() - c.From.Bits()
	size := uint64(1) << min(bits, 32)
	a := c.From.Masked().Addr()
	for range (uint64(i) % max(size-1, 1)) + 1 {
		a = a.Next()
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}

const defaultIMEIBase = 35693803000000

// floodIMEIBase numbers the flood's endpoints apart from the devices'.
const floodIMEIBase = 99000000000000

// objectLinks is the Register payload of every device: twelve object
// instances, as a small sensor device announces them.
const objectLinks = `</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</10/0>,` +
	`</3303/0>,</3304/0>,</3323/0>,</3336/0>,</3347/0>`

// Report is the outcome of Run.
type Report struct {
	Server     string `json:"server"`
	Devices    int    `json:"devices"`
	Register   Phase  `json:"register"`
	Send       *Phase `json:"send,omitempty"`
	Deregister *Phase `json:"deregister,omitempty"`
	Flood      *Flood `json:"flood,omitempty"`
	// ServerRequests counts what the server asked the devices.
	ServerRequests ServerRequests `json:"server_requests"`
}

// ServerRequests counts the server's requests to the devices by answer.
type ServerRequests struct {
	Observe    int64 `json:"observe"`    // Observe answered with a value
	Read       int64 `json:"read"`       // other requests answered with a value
	Attributes int64 `json:"attributes"` // Write-Attributes answered 2.04
	NotFound   int64 `json:"not_found"`  // answered 4.04
	// Deferred counts the devices' own requests the server answered 5.03
	// (busy) that they sent again after its Max-Age.
	Deferred int64 `json:"deferred"`
}

// Flood is what the flooding socket sent and got back.
type Flood struct {
	Rate    int            `json:"rate_per_s"`
	For     time.Duration  `json:"-"`
	Sent    int            `json:"sent"`
	Answers map[string]int `json:"answers"` // by response code
}

// Run runs the load described by cfg (see the package documentation) and
// returns its report. When ctx ends, Run stops, closes its sockets and
// returns the report so far with ctx's error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("loadgen: no devices")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 3600
	}
	if cfg.IMEIBase == 0 {
		cfg.IMEIBase = defaultIMEIBase
	}
	if cfg.FloodFor <= 0 {
		cfg.FloodFor = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("loadgen: server %q: %w", cfg.Server, err)
	}
	if err := ensureFiles(uint64(cfg.Devices) + 64); err != nil {
		return nil, err
	}
	served := &serverStats{}
	devs := make([]*device, 0, cfg.Devices)
	defer func() {
		for _, d := range devs {
			_ = d.conn.Close()
		}
	}()
	for i := range cfg.Devices {
		c, err := net.DialUDP("udp", cfg.source(i), raddr)
		if err != nil {
			return nil, fmt.Errorf("loadgen: socket of device %d: %w", i, err)
		}
		d := newDevice(imeiName(cfg.IMEIBase+uint64(i)), c, uint64(i)*7919, served)
		devs = append(devs, d)
		go d.readLoop()
	}
	log.Debug("loadgen: sockets open", "devices", len(devs))

	rep := &Report{Server: cfg.Server, Devices: cfg.Devices}
	defer func() {
		rep.ServerRequests = ServerRequests{served.observe.Load(), served.read.Load(), served.attrs.Load(), served.notFound.Load(), served.deferred.Load()}
	}()
	var fl *flooder
	if cfg.FloodRate > 0 {
		if fl, err = startFlood(ctx, raddr, cfg.FloodRate, cfg.FloodFor, cfg.Lifetime); err != nil {
			return nil, err
		}
		// The devices arrive when the flood has run for half its time,
		// so that they meet whatever backlog it built up.
		select {
		case <-time.After(cfg.FloodFor / 2):
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	rep.Register = runPhase(ctx, devs, time.Time{}, func(d *device) (time.Duration, string) {
		return d.register(ctx, cfg.Lifetime)
	})
	if fl != nil {
		rep.Flood = fl.wait()
	}
	log.Debug("loadgen: registered", "ok", rep.Register.OK)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	var registered []*device
	for _, d := range devs {
		if d.location != nil {
			registered = append(registered, d)
		}
	}
	if cfg.Send > 0 {
		until := time.Now().Add(cfg.Send)
		p := runPhase(ctx, registered, until, func(d *device) (time.Duration, string) { return d.send(ctx) })
		rep.Send = &p
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if cfg.Deregister {
		p := runPhase(ctx, registered, time.Time{}, func(d *device) (time.Duration, string) { return d.deregister(ctx) })
		rep.Deregister = &p
	}
	return rep, ctx.Err()
}

// runPhase runs fn for every device at once: once each when until is zero,
// else back to back until until. fn returns the latency of a success, or
// the failure ("4.03", "timeout", ...).
func runPhase(ctx context.Context, devs []*device, until time.Time, fn func(*device) (time.Duration, string)) Phase {
	type result struct {
		lat   []time.Duration
		fails map[string]int
	}
	results := make([]result, len(devs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			for ctx.Err() == nil {
				lat, fail := fn(d)
				if fail == "" {
					r.lat = append(r.lat, lat)
				} else if ctx.Err() == nil {
					if r.fails == nil {
						r.fails = map[string]int{}
					}
					r.fails[fail]++
				}
				if until.IsZero() || !time.Now().Before(until) {
					return
				}
			}
		}()
	}
	wg.Wait()
	var lat []time.Duration
	fails := map[string]int{}
	for _, r := range results {
		lat = append(lat, r.lat...)
		for k, n := range r.fails {
			fails[k] += n
		}
	}
	return newPhase(lat, fails, time.Since(start))
}

// codeString formats a CoAP code as "4.03".
func codeString(c codes.Code) string { return fmt.Sprintf("%d.%02d", c>>5, c&0x1f) }

// failure names the outcome of a request that did not succeed.
func failure(err error) string {
	switch {
	case errors.Is(err, errTimeout):
		return "timeout"
	case errors.Is(err, errReset):
		return "reset"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "error"
}

func (d *device) register(ctx context.Context, lifetime uint32) (time.Duration, string) {
	m := message.Message{Code: codes.POST, Payload: []byte(objectLinks)}
	m.Options = m.Options.
		Add(message.Option{ID: message.URIPath, Value: []byte("rd")}).
		Add(uintOption(message.ContentFormat, uint32(message.AppLinkFormat))).
		Add(message.Option{ID: message.URIQuery, Value: []byte("ep=" + d.ep)}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("lt=" + strconv.FormatUint(uint64(lifetime), 10))}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("lwm2m=1.1")}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("b=U")})
	start := time.Now()
	r, err := d.request(ctx, m)
	switch {
	case err != nil:
		return 0, failure(err)
	case r.code != codes.Created:
		return 0, codeString(r.code)
	case len(r.location) == 0:
		return 0, "2.01 without location"
	}
	d.location = r.location
	return time.Since(start), ""
}

func (d *device) send(ctx context.Context) (time.Duration, string) {
	now := time.Now()
	payload, err := senml.EncodeCBOR(lwm2m.Root, []lwm2m.Record{
		{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(20 + float64(now.UnixMilli()%100)/10), Time: now},
		{Path: lwm2m.NewPath(3304, 0, 5700), Value: lwm2m.Float(40 + float64(now.UnixMilli()%200)/10), Time: now},
	})
	if err != nil {
		return 0, "encode"
	}
	m := message.Message{Code: codes.POST, Payload: payload}
	m.Options = m.Options.
		Add(message.Option{ID: message.URIPath, Value: []byte("dp")}).
		Add(uintOption(message.ContentFormat, uint32(lwm2m.FormatSenMLCBOR)))
	r, err := d.request(ctx, m)
	switch {
	case err != nil:
		return 0, failure(err)
	case r.code != codes.Changed:
		return 0, codeString(r.code)
	}
	return time.Since(now), ""
}

func (d *device) deregister(ctx context.Context) (time.Duration, string) {
	m := message.Message{Code: codes.DELETE}
	for _, seg := range d.location {
		m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	start := time.Now()
	r, err := d.request(ctx, m)
	switch {
	case err != nil:
		return 0, failure(err)
	case r.code != codes.Deleted:
		return 0, codeString(r.code)
	}
	return time.Since(start), ""
}

// imeiName is the endpoint name of the 14-digit IMEI body n with its Luhn
// check digit.
func imeiName(n uint64) string {
	s := fmt.Sprintf("%014d", n%1e14)
	sum := 0
	for i := range 14 {
		v := int(s[i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return "urn:imei:" + s + strconv.Itoa((10-sum%10)%10)
}

// flooder is the socket that floods the server with Registers.
type flooder struct {
	conn    *net.UDPConn
	rate    int
	dur     time.Duration
	done    chan struct{}
	sent    int            // written by the sender goroutine before done
	mu      sync.Mutex     // guards answers
	answers map[string]int // guarded by mu
}

func startFlood(ctx context.Context, raddr *net.UDPAddr, rate int, dur time.Duration, lifetime uint32) (*flooder, error) {
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: flood socket: %w", err)
	}
	f := &flooder{conn: c, rate: rate, dur: dur, done: make(chan struct{}), answers: map[string]int{}}
	go f.read()
	go f.run(ctx, lifetime)
	return f, nil
}

func (f *flooder) read() {
	buf := make([]byte, 1500)
	opts := make(message.Options, 0, 32) // Decode fills, never grows, it
	for {
		n, err := f.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		m := message.Message{Options: opts[:0]}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			continue
		}
		if m.Code < codes.Created {
			continue // a request of the server (auto-observe): an attacker does not answer
		}
		f.mu.Lock()
		f.answers[codeString(m.Code)]++
		f.mu.Unlock()
	}
}

// run sends rate non-confirmable Registers a second, spread over 10 ms
// ticks, each with a new endpoint name, for f.dur.
func (f *flooder) run(ctx context.Context, lifetime uint32) {
	defer close(f.done)
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var mid uint16
	for ctx.Err() == nil {
		due := int(time.Since(start).Seconds() * float64(f.rate))
		if s := time.Since(start); s >= f.dur {
			return
		}
		for ; f.sent < due; f.sent++ {
			mid++
			m := message.Message{Code: codes.POST, Type: message.NonConfirmable, MessageID: int32(mid),
				Token:   []byte{byte(f.sent >> 24), byte(f.sent >> 16), byte(f.sent >> 8), byte(f.sent)},
				Payload: []byte(objectLinks)}
			m.Options = m.Options.
				Add(message.Option{ID: message.URIPath, Value: []byte("rd")}).
				Add(uintOption(message.ContentFormat, uint32(message.AppLinkFormat))).
				Add(message.Option{ID: message.URIQuery, Value: []byte("ep=" + imeiName(floodIMEIBase+uint64(f.sent)))}).
				Add(message.Option{ID: message.URIQuery, Value: []byte("lt=" + strconv.FormatUint(uint64(lifetime), 10))}).
				Add(message.Option{ID: message.URIQuery, Value: []byte("lwm2m=1.1")})
			if pkt, err := encode(m); err == nil {
				_, _ = f.conn.Write(pkt)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// wait waits until the flood is over, then a second for late answers,
// closes the socket and returns what was sent and answered.
func (f *flooder) wait() *Flood {
	<-f.done
	time.Sleep(time.Second)
	_ = f.conn.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &Flood{Rate: f.rate, For: f.dur, Sent: f.sent, Answers: map[string]int{}}
	for k, v := range f.answers {
		out.Answers[k] = v
	}
	return out
}
