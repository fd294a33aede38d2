package coapd_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
)

// goroutinesPerHandshake is what one handshake in progress holds on the
// server: go-coap's session goroutine waiting for the handshake, and
// pion's handshake state machine, record reader and read-context watcher.
const goroutinesPerHandshake = 4

// goroutinesPerEndingHandshake is what a handshake that timed out may
// still hold for a moment after it gave its gate slot back: the session
// goroutine closing it and pion's read-context watcher.
const goroutinesPerEndingHandshake = 2

// floodAddr is the i-th source address of a test flood, 127.1.x.y. Linux
// routes all of 127.0.0.0/8 to the loopback interface, so each is a source
// IP of its own to the server, as spoofed or botnet sources are.
func floodAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(1 + i/250), byte(1 + i%250)})
}

// bindFlood binds a UDP socket on addr, skipping the test where the
// loopback network has only 127.0.0.1 (macOS, some containers).
func bindFlood(tb testing.TB, addr netip.Addr) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		tb.Skipf("no loopback address %s: the flood needs 127.0.0.0/8 on lo (Linux)", addr)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// clientHello is a DTLS 1.2 ClientHello offering
// TLS_PSK_WITH_AES_128_CCM_8, always with the same random. Without a
// cookie it is the first flight of a handshake, which the server answers
// with a HelloVerifyRequest; with the cookie of that answer it is the
// second, which the server answers with a ServerHello.
func clientHello(cookie []byte) ([]byte, error) {
	ch := &handshake.MessageClientHello{
		Version:            protocol.Version1_2,
		Cookie:             cookie,
		CipherSuiteIDs:     []uint16{uint16(piondtls.TLS_PSK_WITH_AES_128_CCM_8)},
		CompressionMethods: []*protocol.CompressionMethod{{}},
	}
	for i := range ch.Random.RandomBytes {
		ch.Random.RandomBytes[i] = byte(i * 7)
	}
	var seq uint16
	if cookie != nil {
		seq = 1
	}
	r := &recordlayer.RecordLayer{
		Header:  recordlayer.Header{Version: protocol.Version1_2, SequenceNumber: uint64(seq)},
		Content: &handshake.Handshake{Header: handshake.Header{MessageSequence: seq}, Message: ch},
	}
	return r.Marshal()
}

func cookielessHello(tb testing.TB) []byte {
	tb.Helper()
	b, err := clientHello(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// handshakeMessage returns the handshake message that starts the datagram
// b, nil when there is none.
func handshakeMessage(b []byte) handshake.Message {
	recs, err := recordlayer.UnpackDatagram(b)
	if err != nil || len(recs) == 0 || len(recs[0]) <= recordlayer.FixedHeaderSize ||
		protocol.ContentType(recs[0][0]) != protocol.ContentTypeHandshake {
		return nil
	}
	var h handshake.Handshake
	if h.Unmarshal(recs[0][recordlayer.FixedHeaderSize:]) != nil {
		return nil
	}
	return h.Message
}

// junk returns a datagram no handshake can come of: random bytes, a
// handshake record with a random body, a truncated ClientHello, or an
// alert or application-data record of no session.
func junk(rnd *rand.Rand) []byte {
	var b []byte
	switch rnd.IntN(4) {
	case 0:
	case 1:
		b = []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0}
	case 2:
		b = []byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0}
	case 3:
		b = []byte{0x15 + byte(rnd.IntN(3)), 0xfe, 0xfd, 0, byte(rnd.IntN(2)), 0, 0, 0, 0, 0, 1}
	}
	for range 1 + rnd.IntN(64) {
		b = append(b, byte(rnd.Uint32()))
	}
	return b
}

// floodSocket is one source address and port of a test flood. It answers
// every HelloVerifyRequest with a ClientHello carrying its cookie, as a
// client that can receive at its address does, and then abandons the
// handshake; it counts the ServerHellos the server sends it.
type floodSocket struct {
	conn         *net.UDPConn
	serverHellos atomic.Int64
}

// openFloodSockets binds n sockets on addr, each read by a goroutine of
// its own until the test ends.
func openFloodSockets(tb testing.TB, addr netip.Addr, n int) []*floodSocket {
	tb.Helper()
	out := make([]*floodSocket, n)
	for i := range out {
		fs := &floodSocket{conn: bindFlood(tb, addr)}
		out[i] = fs
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := fs.conn.ReadFromUDPAddrPort(buf)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				switch m := handshakeMessage(buf[:n]).(type) {
				case *handshake.MessageHelloVerifyRequest:
					if b, err := clientHello(m.Cookie); err == nil {
						_, _ = fs.conn.WriteToUDPAddrPort(b, from)
					}
				case *handshake.MessageServerHello:
					fs.serverHellos.Add(1)
				}
			}
		}()
		tb.Cleanup(func() { _ = fs.conn.Close() })
	}
	return out
}

// answered is how many of socks got a ServerHello: how many handshakes
// of theirs the server admitted.
func answered(socks []*floodSocket) int {
	n := 0
	for _, s := range socks {
		if s.serverHellos.Load() > 0 {
			n++
		}
	}
	return n
}

// waitAnswered waits until want of socks were answered or until deadline,
// then a little longer for answers beyond want, and returns the count.
func waitAnswered(socks []*floodSocket, want int, deadline time.Time) int {
	for answered(socks) < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	return answered(socks)
}

func sendAll(tb testing.TB, socks []*floodSocket, to *net.UDPAddr, b []byte) {
	tb.Helper()
	for _, s := range socks {
		if _, err := s.conn.WriteToUDP(b, to); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestDTLSHandshakeFlood floods the DTLS port with ClientHellos and junk
// from 200 sockets (50 ports of one address, 150 addresses of one port)
// that answer the cookie exchange and then abandon the handshake, while
// three devices hold sessions. The handshake gate admits
// MaxHandshakesPerSource handshakes from the one address and
// MaxHandshakes in all; the goroutines in the flood stay within what those
// handshakes hold; the devices' requests go through during the flood; the
// abandoned handshakes end with the handshake timeout, giving back their
// goroutines and gate slots, so a new device handshakes and the next
// flood is admitted MaxHandshakes again.
func TestDTLSHandshakeFlood(t *testing.T) {
	const (
		timeout       = 2 * time.Second
		maxHS         = 48
		perSource     = 8
		maxUnverified = 64
	)
	s := newSecureStackWith(t, false, func(c *coapd.Config) {
		c.DTLS.HandshakeTimeout = timeout
		c.DTLS.MaxHandshakes = maxHS
		c.DTLS.MaxHandshakesPerSource = perSource
		c.DTLS.MaxUnverified = maxUnverified
		c.DTLS.CookieTimeout = time.Second
	})
	type device struct {
		cc  *udpclient.Conn
		loc string
	}
	devs := make([]device, 3)
	for i := range devs {
		ep, id, key := benchIdentity(i)
		s.addPSK(t, ep, id, key)
		cc, err := dialPSK(t, s.dtls, id, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = device{cc, register(t, cc, ep)}
	}
	newEP, newID, newKey := benchIdentity(len(devs))
	s.addPSK(t, newEP, newID, newKey)
	// useSessions makes each device update its registration and send a
	// value over its session.
	useSessions := func(v int) {
		t.Helper()
		for _, d := range devs {
			if r := post(t, d.cc, d.loc, message.TextPlain, nil, "lt=600"); r.code != codes.Changed {
				t.Fatalf("update: %v %q", r.code, r.body)
			}
			senml := fmt.Appendf(nil, `[{"bn":"/3303/0/","n":"5700","v":%d}]`, v)
			if r := post(t, d.cc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
				t.Fatalf("send: %v %q", r.code, r.body)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	base := goroutines()

	raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s.dtls))
	shared := openFloodSockets(t, netip.MustParseAddr("127.0.0.1"), 50)
	var distinct []*floodSocket
	for i := range 150 {
		distinct = append(distinct, openFloodSockets(t, floodAddr(i), 1)...)
	}
	all := append(slices.Clip(shared), distinct...)
	readers := len(all)
	hello := cookielessHello(t)

	// A handshake from each port of the shared address: the gate admits
	// MaxHandshakesPerSource of them. Then one from each of more other
	// addresses than the gate has room for, but no more than MaxUnverified
	// (beyond it the oldest waiting for their cookie are displaced): it
	// admits up to MaxHandshakes in all.
	burst := distinct[:maxUnverified-8]
	start := time.Now()
	sendAll(t, shared, raddr, hello)
	if n := waitAnswered(shared, perSource, start.Add(timeout/2)); n != perSource {
		t.Fatalf("%d of %d ports of one address got a ServerHello, want MaxHandshakesPerSource = %d",
			n, len(shared), perSource)
	}
	sendAll(t, burst, raddr, hello)
	if n := waitAnswered(all, maxHS, start.Add(timeout*3/4)); n != maxHS {
		t.Fatalf("%d of %d sources got a ServerHello, want MaxHandshakes = %d", n, len(all), maxHS)
	}
	if d := time.Since(start); d >= timeout {
		t.Fatalf("admission counts took %v, longer than the handshake timeout: slots may have turned over", d)
	}

	// The flood: every socket repeats its first ClientHello (a new
	// handshake once its last one timed out) and sends junk, for longer
	// than the handshake timeout, so that slots turn over under it.
	var sent atomic.Int64
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(part), 1))
			for round := 0; ; round++ {
				for i := part; i < len(all); i += 2 {
					if _, err := all[i].conn.WriteToUDP(hello, raddr); err == nil {
						sent.Add(1)
					}
					if (i+round)%2 == 0 {
						if _, err := all[i].conn.WriteToUDP(junk(rnd), raddr); err == nil {
							sent.Add(1)
						}
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	wg.Go(func() {
		for {
			if n := int64(goroutines()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	floodStart := time.Now()
	for v := 0; time.Since(floodStart) < timeout*5/4; v++ {
		useSessions(v)
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	flooded := time.Since(floodStart)

	// The server keeps at most MaxHandshakes + 2 MaxUnverified handshakes
	// (admitted, waiting for their cookie, displaced and unwinding), each
	// followed by a moment of ending; the flood's own 3.
	held := goroutinesPerHandshake * maxHS
	limit := base + readers + 3 + (goroutinesPerHandshake+goroutinesPerEndingHandshake)*(maxHS+2*maxUnverified)
	p := int(peak.Load())
	t.Logf("flood: %d datagrams in %v; goroutines: %d before, peak %d, limit %d", sent.Load(), flooded.Round(time.Millisecond), base+readers, p, limit)
	if sent.Load() < 3000 {
		t.Fatalf("only %d flood datagrams sent", sent.Load())
	}
	if p > limit {
		t.Fatalf("%d goroutines in the flood, more than MaxHandshakes = %d and MaxUnverified = %d account for (limit %d)", p, maxHS, maxUnverified, limit)
	}
	if p < base+readers+held/2 {
		t.Fatalf("peak of %d goroutines: the flood never filled the gate (base %d + readers %d + %d held)", p, base, readers, held)
	}

	// The abandoned handshakes end with the handshake timeout.
	deadline := time.Now().Add(timeout + 3*time.Second)
	for goroutines() > base+readers+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := goroutines(); n > base+readers+2 {
		t.Fatalf("%d goroutines %v after the flood, %d before it", n, timeout+3*time.Second, base+readers)
	}
	// The gate gave every slot back: a new device handshakes at once and a
	// second burst is admitted MaxHandshakes again.
	hsStart := time.Now()
	cc, err := dialPSK(t, s.dtls, newID, newKey, nil)
	if err != nil {
		t.Fatalf("new device after the flood: %v", err)
	}
	if d := time.Since(hsStart); d > time.Second {
		t.Fatalf("new device's handshake after the flood took %v", d)
	}
	register(t, cc, newEP)
	useSessions(-1)
	for _, fs := range burst {
		fs.serverHellos.Store(0)
	}
	start = time.Now()
	sendAll(t, burst, raddr, hello)
	if n := waitAnswered(burst, maxHS, start.Add(timeout/2)); n != maxHS {
		t.Fatalf("second burst: %d of %d sources got a ServerHello, want MaxHandshakes = %d", n, len(burst), maxHS)
	}
	if n := s.handshakes.Load(); n != int64(len(devs)+1) {
		t.Fatalf("%d handshakes completed, want %d", n, len(devs)+1)
	}
	if strings.Contains(s.logs.String(), "panic") {
		t.Fatalf("panic:\n%s", s.logs.String())
	}
}

var floodWindow = flag.Duration("floodwindow", 10*time.Second, "how long BenchmarkDTLSHandshakeUnderFlood measures each case")

// BenchmarkDTLSHandshakeUnderFlood measures legitimate DTLS-PSK handshakes
// (cookie exchange included, no resumption) of devices arriving at 20 a
// second during -floodwindow, each with one handshake from a new port of
// 127.0.0.1 that it gives up after 10 s (pion's client retransmits its
// ClientHello after 1, 2 and 4 s), while a flood runs: cookie-less
// ClientHellos (or junk handshake records) at a set rate, each from a new
// port, as from a spoofing flooder, from 64 source addresses or from one;
// beside the same run without a flood. The server has the default
// handshake caps and timeouts (MaxHandshakes 1024, 64 per source,
// MaxUnverified 2048, CookieTimeout 5 s, HandshakeTimeout 15 s); the flood starts
// before the window, long enough to fill the gate if its rate can. It
// reports the handshakes completed per second, their p50 and p99 latency,
// the handshakes tried and the share given up, the flood rate reached, and
// the heap and goroutines the flood holds on the server when the window
// starts. Flood, devices and server share the machine. b.N is ignored: one
// window is the measurement.
func BenchmarkDTLSHandshakeUnderFlood(b *testing.B) {
	for _, c := range []floodCase{
		{}, {rate: 50, sources: 64}, {rate: 100, sources: 64}, {rate: 1000, sources: 64}, {rate: 10000, sources: 64},
		{rate: 1000, sources: 64, junk: true}, {rate: 1000, sources: 1}, {rate: 10000, sources: 1},
	} {
		b.Run(c.String(), func(b *testing.B) { benchUnderFlood(b, c) })
	}
}

// floodCase is a flood of BenchmarkDTLSHandshakeUnderFlood.
type floodCase struct {
	rate    int  // datagrams per second; 0: no flood
	sources int  // source addresses
	junk    bool // handshake records that are no ClientHello
}

func (c floodCase) String() string {
	switch {
	case c.rate == 0:
		return "flood=none"
	case c.junk:
		return fmt.Sprintf("flood=junk-%dps-sources=%d", c.rate, c.sources)
	}
	return fmt.Sprintf("flood=hello-%dps-sources=%d", c.rate, c.sources)
}

func benchUnderFlood(b *testing.B, c floodCase) {
	const (
		devicesPerSecond = 20
		maxHS            = 1024             // the default MaxHandshakes
		hsExpiry         = 15 * time.Second // the default HandshakeTimeout
	)
	s := newSecureStackWith(b, true)
	_, id, key := benchIdentity(0)
	s.addPSK(b, "urn:bench:0", id, key)
	raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s.dtls))
	opts := func() []piondtls.ClientOption {
		return []piondtls.ClientOption{
			piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			piondtls.WithPSKIdentityHint([]byte(id)),
			piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
		}
	}
	for i := range c.sources {
		_ = bindFlood(b, floodAddr(i)).Close()
	}
	time.Sleep(100 * time.Millisecond)
	base, baseHeap := goroutines(), heapInUse()

	datagram := cookielessHello(b)
	if c.junk {
		datagram = append([]byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20}, make([]byte, 20)...)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	var floodHeap int64
	var floodGoroutines int
	if c.rate > 0 {
		// Every datagram comes from a new port, as from a spoofing
		// flooder: each is a new association to the server.
		wg.Go(func() {
			const tick = 10 * time.Millisecond
			t := time.NewTicker(tick)
			defer t.Stop()
			start := time.Now()
			for i := 0; ; {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				for due := int(time.Since(start) * time.Duration(c.rate) / time.Second); i < due; i++ {
					conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(floodAddr(i%c.sources), 0)))
					if err != nil {
						continue
					}
					if _, err := conn.WriteToUDP(datagram, raddr); err == nil {
						sent.Add(1)
					}
					_ = conn.Close()
				}
			}
		})
		time.Sleep(min(time.Duration(maxHS)*time.Second/time.Duration(c.rate)+time.Second, hsExpiry))
		floodHeap, floodGoroutines = int64(heapInUse())-int64(baseHeap), goroutines()-base-1
	}

	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	sentBefore := sent.Load()
	start := time.Now()
	end := start.Add(*floodWindow)
	var work sync.WaitGroup
	tick := time.NewTicker(time.Second / devicesPerSecond)
	for attempts := 0; time.Now().Before(end); attempts++ {
		work.Go(func() {
			t0 := time.Now()
			if err := handshakeOnce(raddr, opts()...); err != nil {
				failed.Add(1)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		})
		<-tick.C
	}
	tick.Stop()
	floodRate := float64(sent.Load()-sentBefore) / time.Since(start).Seconds()
	work.Wait()
	took := time.Since(start)

	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	total := len(lat) + int(failed.Load())
	b.ReportMetric(float64(len(lat))/took.Seconds(), "handshakes/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(total), "attempts")
	b.ReportMetric(100*float64(failed.Load())/float64(max(total, 1)), "failed-%")
	b.ReportMetric(floodRate, "flood-datagrams/s")
	b.ReportMetric(float64(floodHeap)/(1<<20), "flood-heap-MiB")
	b.ReportMetric(float64(floodGoroutines), "flood-goroutines")
}
