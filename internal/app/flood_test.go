package app

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/config"
)

var floodFor = flag.Duration("flood.for", 10*time.Second, "TestRegisterFlood: how long one address floods")

// TestRegisterFlood: one UDP address sends 1,000 Registers a second, each
// for a new endpoint, and never answers the server; meanwhile devices at
// other addresses register one after another. Theirs must be answered
// with p99 under 1 s.
func TestRegisterFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s flood")
	}
	cfg := testConfig(t, t.TempDir())
	cfg.RegisterRate = config.Default().RegisterRate
	s := startServer(t, cfg, Tuning{})
	server := net.UDPAddrFromAddrPort(s.CoAPAddr())

	flooder, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	answers := map[codes.Code]int{}
	var amu sync.Mutex
	go func() { // reads what the server sends the flooder, answers nothing
		buf := make([]byte, 2048)
		for {
			n, err := flooder.Read(buf)
			if err != nil {
				return
			}
			m := pool.NewMessage(context.Background())
			if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err == nil {
				amu.Lock()
				answers[m.Code()]++
				amu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), *floodFor)
	defer cancel()
	var wg sync.WaitGroup
	sent := 0
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		for i := 0; ctx.Err() == nil; {
			<-tick.C
			for due := int(time.Since(start).Milliseconds()); i < due; i++ { // 1,000 a second
				b := registerDatagram(fmt.Sprintf("urn:flood:%d", i), uint16(i), message.NonConfirmable)
				if _, err := flooder.WriteToUDP(b, server); err == nil {
					sent++
				}
			}
		}
	})

	var lat []time.Duration
	var failed int
	for i := 0; ctx.Err() == nil; i++ {
		// Each device from an address of its own (all of 127/8 is
		// loopback), as devices behind different NATs.
		from := netip.AddrFrom4([4]byte{127, 0, 1 + byte(i>>8), byte(i)})
		d, err := registerOnce(fmt.Sprintf("urn:dev:%d", i), from, server, 10*time.Second)
		if err != nil {
			failed++
			t.Logf("device %d: %v", i, err)
			continue
		}
		lat = append(lat, d)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) < 20 {
		t.Fatalf("only %d devices registered during the flood (%d failed)", len(lat), failed)
	}
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	amu.Lock()
	t.Logf("flood: %d Registers sent from one address, answers to it %v; devices: %d registered, %d failed, p50 %v, p99 %v, max %v",
		sent, answers, len(lat), failed, p50, p99, lat[len(lat)-1])
	amu.Unlock()
	// The bound is the issue's, 1 s (BENCHMARKS.md measures 112-122 ms from
	// a separate load process); under the race detector, with every test
	// package running at once on two cores, 3 s. Without admission the
	// devices waited 27-30 s.
	bound := time.Second
	if raceDetector {
		bound = 3 * time.Second
	}
	if failed > 0 || p99 >= bound {
		t.Fatalf("devices at other addresses: p99 %v (want < %v), %d failed", p99, bound, failed)
	}
}

// registerDatagram encodes a LwM2M 1.1 Register of ep.
func registerDatagram(ep string, mid uint16, typ message.Type) []byte {
	m := pool.NewMessage(context.Background())
	m.SetCode(codes.POST)
	m.SetType(typ)
	m.SetMessageID(int32(mid))
	m.SetToken([]byte{byte(mid >> 8), byte(mid), 0xf1})
	m.SetPath("/rd")
	m.AddQuery("ep=" + ep)
	m.AddQuery("lwm2m=1.1")
	m.AddQuery("lt=300")
	m.SetContentFormat(message.AppLinkFormat)
	m.SetBody(bytes.NewReader([]byte(`</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>,</3304/0>`)))
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		panic(err) // a fixed message always encodes
	}
	return b
}

// registerOnce registers ep from a new socket on address from, as a device does:
// confirmable, retransmitted after 2, 4 and 8 s (RFC 7252), and returns
// how long the 2.01 took.
func registerOnce(ep string, from netip.Addr, server *net.UDPAddr, timeout time.Duration) (time.Duration, error) {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), server)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	b := registerDatagram(ep, 0x4242, message.Confirmable)
	start := time.Now()
	deadline := start.Add(timeout)
	buf := make([]byte, 2048)
	for wait := 2 * time.Second; time.Now().Before(deadline); wait *= 2 {
		if _, err := c.Write(b); err != nil {
			return 0, err
		}
		next := time.Now().Add(wait)
		if next.After(deadline) {
			next = deadline
		}
		_ = c.SetReadDeadline(next)
		for {
			n, err := c.Read(buf)
			if err != nil {
				break // retransmit
			}
			m := pool.NewMessage(context.Background())
			if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err != nil || m.MessageID() != 0x4242 {
				continue // a request of the server's (auto-observe): not answered here
			}
			if m.Code() != codes.Created {
				return 0, fmt.Errorf("register answered %v", m.Code())
			}
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("no answer in %v", timeout)
}
