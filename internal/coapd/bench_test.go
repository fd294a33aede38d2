package coapd_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
)

var benchDevices = flag.Int("devices", 1000, "devices in the notification and memory benchmarks")

// rawDevice is a benchmark device: one UDP socket (or DTLS session over
// one) speaking CoAP through go-coap's message coder, one exchange at a
// time.
type rawDevice struct {
	conn net.Conn
	mid  uint16
	buf  []byte
	in   []byte
}

func newRawDevice(tb testing.TB, addr string) *rawDevice {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		tb.Fatal(err)
	}
	return &rawDevice{conn: c, mid: uint16(time.Now().UnixNano()), buf: make([]byte, 2048), in: make([]byte, 1500)}
}

// exchange sends m as a confirmable message and waits for the answer with
// its message ID, retransmitting as RFC 7252 does (2 s, doubling, four
// retransmissions).
func (d *rawDevice) exchange(m message.Message) (message.Message, error) {
	d.mid++
	m.MessageID = int32(d.mid)
	m.Type = message.Confirmable
	n, err := coder.DefaultCoder.Encode(m, d.buf)
	if err != nil {
		return message.Message{}, err
	}
	timeout := 2 * time.Second
	for try := 0; try < 5; try++ {
		if _, err := d.conn.Write(d.buf[:n]); err != nil {
			return message.Message{}, err
		}
		_ = d.conn.SetReadDeadline(time.Now().Add(timeout))
		timeout *= 2
		for {
			k, err := d.conn.Read(d.in)
			if err != nil {
				break // retransmit
			}
			out := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(d.in[:k], &out); err != nil {
				return message.Message{}, err
			}
			if out.MessageID == m.MessageID {
				return out, nil
			}
		}
	}
	return message.Message{}, fmt.Errorf("no answer to message %d", m.MessageID)
}

func (d *rawDevice) register(ep string) (string, error) {
	opts := message.Options{}.
		Add(message.Option{ID: message.URIPath, Value: []byte("rd")}).
		Add(message.Option{ID: message.ContentFormat, Value: []byte{byte(message.AppLinkFormat)}})
	for _, q := range []string{"ep=" + ep, "lt=86400", "lwm2m=1.1", "b=U"} {
		opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	out, err := d.exchange(message.Message{Code: codes.POST, Token: message.Token{1, 2, 3, 4}, Options: opts,
		Payload: []byte(`</1/0>,</3/0>,</3303/0>,</5/0>`)})
	if err != nil {
		return "", err
	}
	if out.Code != codes.Created {
		return "", fmt.Errorf("register %s: %v", ep, out.Code)
	}
	loc, err := out.Options.LocationPath()
	return loc, err
}

func (d *rawDevice) notify(token []byte, seq uint32, value string) error {
	var obs [4]byte
	binary.BigEndian.PutUint32(obs[:], seq&0xffffff)
	opts := message.Options{}.
		Add(message.Option{ID: message.Observe, Value: obs[1:]}).
		Add(message.Option{ID: message.ContentFormat, Value: nil})
	out, err := d.exchange(message.Message{Code: codes.Content, Token: token, Options: opts, Payload: []byte(value)})
	if err != nil {
		return err
	}
	if out.Type != message.Acknowledgement {
		return fmt.Errorf("notification answered with %v", out.String())
	}
	return nil
}

// bareServer is a go-coap server answering every request with 2.01 and
// every notification with an ACK, doing nothing else: the ceiling.
func bareServer(tb testing.TB, idle time.Duration) (string, func()) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	l := coapnet.NewUDPConn("udp", c)
	srv := udp.NewServer(
		options.WithHandlerFunc(func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
			if r.Code() >= codes.Created {
				return
			}
			_ = w.SetResponse(codes.Created, message.TextPlain, nil)
			w.Message().AddOptionString(message.LocationPath, "rd")
			w.Message().AddOptionString(message.LocationPath, "x")
		}),
		options.WithErrors(func(error) {}),
		options.WithInactivityMonitor(idle, func(cc *udpclient.Conn) { _ = cc.Close() }),
		options.WithPeriodicRunner(func(f func(time.Time) bool) {
			go func() {
				for f(time.Now()) {
					time.Sleep(idle / 4)
				}
			}()
		}),
	)
	go func() { _ = srv.Serve(l) }()
	return l.LocalAddr().String(), srv.Stop
}

// runParallel runs n operations spread over the devices, each device doing
// its share one after the other, all devices at once. It returns the time
// at which 95% of the operations had completed: a device whose datagram the
// kernel dropped waits seconds for its retransmission, and such stragglers
// would otherwise make the end of the run, not the server, the measure.
func runParallel(tb testing.TB, devs []*rawDevice, n int, op func(d *rawDevice, i int) error) time.Duration {
	var wg sync.WaitGroup
	var next, done atomic.Int64
	var failed atomic.Value
	start := time.Now()
	var t95 atomic.Int64
	mark := int64(n) * 95 / 100
	for _, d := range devs {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(d, i); err != nil {
					failed.Store(err)
					return
				}
				if done.Add(1) == mark {
					t95.Store(int64(time.Since(start)))
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	if t95.Load() == 0 {
		return time.Since(start)
	}
	return time.Duration(t95.Load())
}

// rate is operations per second over the first 95% of n operations.
func rate(n int, t95 time.Duration) float64 {
	return float64(n) * 0.95 / t95.Seconds()
}

// runEach runs op once on every device, all devices at once.
func runEach(tb testing.TB, devs []*rawDevice, op func(d *rawDevice, i int) error) {
	var wg sync.WaitGroup
	errs := make([]error, len(devs))
	for i, d := range devs {
		wg.Go(func() { errs[i] = op(d, i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func openDevices(tb testing.TB, addr string, n int) []*rawDevice {
	devs := make([]*rawDevice, n)
	for i := range devs {
		devs[i] = newRawDevice(tb, addr)
	}
	tb.Cleanup(func() {
		for _, d := range devs {
			_ = d.conn.Close()
		}
	})
	return devs
}

// BenchmarkRegister measures Registers per second, each a new endpoint
// stored in SQLite with its history value, from 200 devices at once.
// "bare" is a go-coap server answering 2.01 without doing anything.
func BenchmarkRegister(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		addr, stop := bareServer(b, 30*time.Second)
		defer stop()
		devs := openDevices(b, addr, 200)
		b.ResetTimer()
		t95 := runParallel(b, devs, b.N, func(d *rawDevice, i int) error {
			_, err := d.register(fmt.Sprintf("bare-%d", i))
			return err
		})
		b.ReportMetric(rate(b.N, t95), "registrations/s")
	})
	b.Run("flownexus", func(b *testing.B) {
		s := newStack(b, filepath.Join(b.TempDir(), "db.sqlite"), newClock())
		devs := openDevices(b, s.addr, 200)
		b.ResetTimer()
		t95 := runParallel(b, devs, b.N, func(d *rawDevice, i int) error {
			_, err := d.register(fmt.Sprintf("urn:dev:%d", i))
			return err
		})
		b.ReportMetric(rate(b.N, t95), "registrations/s")
	})
}

// BenchmarkNotify measures confirmable notifications per second, each
// value committed to SQLite before its ACK, from -devices devices (default
// 1,000) notifying at once, each waiting for its ACK before the next.
func BenchmarkNotify(b *testing.B) {
	n := *benchDevices
	b.Run(fmt.Sprintf("bare/devices=%d", n), func(b *testing.B) {
		addr, stop := bareServer(b, 30*time.Second)
		defer stop()
		devs := openDevices(b, addr, n)
		b.ResetTimer()
		t95 := runParallel(b, devs, b.N, func(d *rawDevice, i int) error {
			return d.notify([]byte{1, 2, 3, 4}, uint32(i), "21.5")
		})
		b.ReportMetric(rate(b.N, t95), "notifications/s")
	})
	b.Run(fmt.Sprintf("flownexus/devices=%d", n), func(b *testing.B) {
		s := newStack(b, filepath.Join(b.TempDir(), "db.sqlite"), newClock())
		devs := openDevices(b, s.addr, n)
		tokens := make(map[*rawDevice][]byte, n)
		var mu sync.Mutex
		runEach(b, devs, func(d *rawDevice, i int) error {
			loc, err := d.register(fmt.Sprintf("urn:dev:%d", i))
			if err != nil {
				return err
			}
			tok := []byte(fmt.Sprintf("t%07d", i))
			mu.Lock()
			tokens[d] = tok
			mu.Unlock()
			return s.reg.AddObservation(context.Background(), registry.Observation{
				Token: string(tok), RegistrationID: strings.TrimPrefix(loc, "/rd/"),
				Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0, 5700)}, Format: lwm2m.FormatText,
			})
		})
		before := s.w.Stats()
		b.ResetTimer()
		t95 := runParallel(b, devs, b.N, func(d *rawDevice, i int) error {
			return d.notify(tokens[d], uint32(i), fmt.Sprintf("%d.5", i%40))
		})
		b.StopTimer()
		after := s.w.Stats()
		if got := after.Values - before.Values; got != int64(b.N) {
			b.Fatalf("%d values committed for %d notifications", got, b.N)
		}
		b.ReportMetric(rate(b.N, t95), "notifications/s")
		if batches := after.Batches - before.Batches; batches > 0 {
			b.ReportMetric(float64(b.N)/float64(batches), "values/batch")
		}
	})
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkMemoryPerDevice registers -devices devices and reports the heap
// and stack bytes per device while their go-coap connections are live
// ("live-B/device") and after the idle timeout reaped them
// ("idle-B/device"), beside the same figures for a bare go-coap server.
// b.N is ignored: one round is the measurement.
func BenchmarkMemoryPerDevice(b *testing.B) {
	n := *benchDevices
	const idle = 10 * time.Second
	measure := func(b *testing.B, addr string, register func(d *rawDevice, i int) error) {
		devs := openDevices(b, addr, n)
		// Let what earlier benchmarks stopped finish before the baseline.
		time.Sleep(time.Second)
		heapInUse()
		base := heapInUse()
		start := time.Now()
		runEach(b, devs, register)
		took := time.Since(start)
		live := heapInUse()
		time.Sleep(idle * 3 / 2)
		reaped := heapInUse()
		b.ReportMetric(float64(int64(live)-int64(base))/float64(n), "live-B/device")
		b.ReportMetric(float64(int64(reaped)-int64(base))/float64(n), "idle-B/device")
		b.ReportMetric(float64(n)/took.Seconds(), "registrations/s")
	}
	b.Run(fmt.Sprintf("bare/devices=%d", n), func(b *testing.B) {
		addr, stop := bareServer(b, idle)
		defer stop()
		measure(b, addr, func(d *rawDevice, i int) error {
			_, err := d.register(fmt.Sprintf("bare-%d", i))
			return err
		})
	})
	b.Run(fmt.Sprintf("flownexus/devices=%d", n), func(b *testing.B) {
		s := newStackIdle(b, filepath.Join(b.TempDir(), "db.sqlite"), idle)
		measure(b, s.addr, func(d *rawDevice, i int) error {
			_, err := d.register(fmt.Sprintf("urn:imei:35%013d", i))
			return err
		})
		if s.reg.Len() != n {
			b.Fatalf("%d registrations, want %d", s.reg.Len(), n)
		}
	})
}
