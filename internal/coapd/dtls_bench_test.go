package coapd_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// handshakeOnce dials addr from a new socket, completes a handshake with
// the given client options and closes the session (close_notify).
func handshakeOnce(addr *net.UDPAddr, opts ...piondtls.ClientOption) error {
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return err
	}
	dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), addr, opts...)
	if err != nil {
		_ = c.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = dc.HandshakeContext(ctx)
	_ = dc.Close()
	return err
}

// BenchmarkDTLSHandshake measures full handshakes per second (cookie
// exchange included, no resumption) with PSK (TLS_PSK_WITH_AES_128_CCM_8,
// the key looked up in the credential store) and with ECDSA P-256
// certificates (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, mutual
// authentication). Clients run in the same process: the figure is a lower
// bound of what the server alone does on this machine.
func BenchmarkDTLSHandshake(b *testing.B) {
	run := func(b *testing.B, addr string, opts func() []piondtls.ClientOption) {
		raddr, _ := net.ResolveUDPAddr("udp", addr)
		var failed atomic.Int64
		var firstErr atomic.Value
		b.SetParallelism(4)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := handshakeOnce(raddr, opts()...); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d handshakes failed; first: %v", n, b.N, firstErr.Load())
		}
	}
	b.Run("psk", func(b *testing.B) {
		s := newSecureStackWith(b, true)
		s.addPSK(b, "urn:imei:1", "dev-1", pskKey)
		run(b, s.dtls, func() []piondtls.ClientOption { return pskClient("dev-1", pskKey) })
	})
	b.Run("psk-resumed", func(b *testing.B) {
		// Abbreviated handshakes: each client resumes the session its
		// first handshake left in the server's cache.
		s := newSecureStackWith(b, true)
		s.addPSK(b, "urn:imei:1", "dev-1", pskKey)
		run(b, s.dtls, func() []piondtls.ClientOption {
			return append(pskClient("dev-1", pskKey), piondtls.WithServerName("flownexus"), piondtls.WithSessionStore(benchSessions))
		})
		if n := s.resumed.Load(); n < int64(b.N)/2 {
			b.Fatalf("%d of %d handshakes resumed", n, b.N)
		}
	})
	b.Run("ecdsa-p256", func(b *testing.B) {
		ca := newTestCA(b, "device CA")
		s := newCertStack(b, ca)
		dev := ca.issue(b, "urn:imei:7", false)
		if _, err := s.creds.Add(context.Background(), store.Actor{}, credential.AddRequest{Endpoint: "urn:imei:7", CertCN: "urn:imei:7"}); err != nil {
			b.Fatal(err)
		}
		run(b, s.dtls, func() []piondtls.ClientOption {
			return []piondtls.ClientOption{
				piondtls.WithCertificates(dev), piondtls.WithRootCAs(ca.pool), piondtls.WithServerName("127.0.0.1"),
				piondtls.WithCipherSuites(piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8),
			}
		})
	})
}

// benchSessions is the session cache the resuming clients share.
var benchSessions = &clientSessions{m: make(map[string]piondtls.Session)}

// Environment of the client process of BenchmarkDTLSSessionMemory.
const (
	clientsAddrEnv = "COAPD_BENCH_DTLS_ADDR"
	clientsNEnv    = "COAPD_BENCH_DTLS_SESSIONS"
)

func benchIdentity(i int) (endpoint, identity string, key []byte) {
	return fmt.Sprintf("urn:bench:%d", i), fmt.Sprintf("bench-%d", i), []byte(fmt.Sprintf("bench-key-%06d", i))
}

// TestDTLSSessionClients is the client process of
// BenchmarkDTLSSessionMemory: it opens the sessions, registers each, says
// READY and holds them until stdin closes. Run on its own it is skipped.
func TestDTLSSessionClients(t *testing.T) {
	addr := os.Getenv(clientsAddrEnv)
	if addr == "" {
		t.Skip("client process of BenchmarkDTLSSessionMemory")
	}
	n, err := strconv.Atoi(os.Getenv(clientsNEnv))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ep, id, key := benchIdentity(i)
		cc, err := dialPSK(t, addr, id, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		register(t, cc, ep, "lt=3600")
	}
	fmt.Println("READY")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// BenchmarkDTLSSessionMemory opens -devices DTLS-PSK sessions from a
// separate client process, one after another, each registered (so the
// server keeps it while the registration lives), and reports the server's
// heap and stack bytes and goroutines per session, registration included:
//
//   - live: sessions idle for less than the idle timeout, each with its
//     association, goroutines and buffers;
//   - parked: a sleeping fleet, each device idle past the idle timeout
//     (1 s here) soon after it registered, so the server keeps it as its
//     exported state. Few sessions are live at once, so the goroutine
//     structures the Go runtime keeps after a goroutine ends (it never
//     frees them) stay out of the figure.
//
// b.N is ignored: one round is the measurement.
func BenchmarkDTLSSessionMemory(b *testing.B) {
	n := *benchDevices
	run := func(b *testing.B, idle time.Duration, parked bool) {
		s := newSecureStackWith(b, true, func(c *coapd.Config) { c.IdleTimeout = idle })
		for i := range n {
			ep, id, key := benchIdentity(i)
			s.addPSK(b, ep, id, key)
		}
		time.Sleep(time.Second)
		heapInUse()
		base, baseG := heapInUse(), runtime.NumGoroutine()
		cmd := exec.Command(os.Args[0], "-test.run=^TestDTLSSessionClients$")
		cmd.Env = append(os.Environ(), clientsAddrEnv+"="+s.dtls, clientsNEnv+"="+strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			_ = stdin.Close()
			_ = cmd.Wait()
		}()
		start := time.Now()
		sc := bufio.NewScanner(stdout)
		ready := false
		for !ready && sc.Scan() {
			ready = sc.Text() == "READY"
		}
		if !ready {
			b.Fatal("client process ended before its sessions were ready")
		}
		took := time.Since(start)
		if got := s.reg.Len(); got != n {
			b.Fatalf("%d registrations, want %d", got, n)
		}
		if parked {
			deadline := time.Now().Add(idle + 30*time.Second)
			for s.srv.DTLSStats().Parked < n {
				if time.Now().After(deadline) {
					b.Fatalf("sessions %+v, want %d parked", s.srv.DTLSStats(), n)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		time.Sleep(time.Second) // no handshake or exchange in flight
		st := s.srv.DTLSStats()
		if !parked && st.Parked > 0 {
			b.Fatalf("%d of %d sessions parked before the measurement; raise the idle timeout", st.Parked, n)
		}
		mem := heapInUse()
		b.ReportMetric(float64(int64(mem)-int64(base))/float64(n), "B/session")
		b.ReportMetric(float64(runtime.NumGoroutine()-baseG)/float64(n), "goroutines/session")
		if parked {
			b.ReportMetric(float64(st.ParkedStateBytes)/float64(st.Parked), "state-B/session")
		}
		b.ReportMetric(float64(n)/took.Seconds(), "sessions/s")
	}
	b.Run(fmt.Sprintf("live/sessions=%d", n), func(b *testing.B) { run(b, time.Hour, false) })
	b.Run(fmt.Sprintf("parked/sessions=%d", n), func(b *testing.B) { run(b, time.Second, true) })
}

// BenchmarkNotifyDTLS measures confirmable notifications per second from
// -devices devices over DTLS-PSK (CCM_8) and, in the same run, over plain
// CoAP: each value is committed to SQLite before its ACK, each device
// waits for its ACK before the next. Device and server share the machine.
func BenchmarkNotifyDTLS(b *testing.B) {
	n := *benchDevices
	run := func(b *testing.B, s *secureStack, devs []*rawDevice) {
		tokens := make([][]byte, n)
		index := make(map[*rawDevice]int, n)
		for i, d := range devs {
			index[d] = i
		}
		runEach(b, devs, func(d *rawDevice, i int) error {
			ep, _, _ := benchIdentity(i)
			loc, err := d.register(ep)
			if err != nil {
				return err
			}
			tokens[i] = []byte(fmt.Sprintf("t%07d", i))
			return s.reg.AddObservation(context.Background(), registry.Observation{
				Token: string(tokens[i]), RegistrationID: strings.TrimPrefix(loc, "/rd/"),
				Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0, 5700)}, Format: lwm2m.FormatText,
			})
		})
		b.ResetTimer()
		t95 := runParallel(b, devs, b.N, func(d *rawDevice, i int) error {
			return d.notify(tokens[index[d]], uint32(i), fmt.Sprintf("%d.5", i%40))
		})
		b.StopTimer()
		b.ReportMetric(rate(b.N, t95), "notifications/s")
	}
	b.Run(fmt.Sprintf("plain/devices=%d", n), func(b *testing.B) {
		s := newSecureStackWith(b, true)
		run(b, s, openDevices(b, s.udp, n))
	})
	b.Run(fmt.Sprintf("dtls/devices=%d", n), func(b *testing.B) {
		s := newSecureStackWith(b, true)
		raddr, _ := net.ResolveUDPAddr("udp", s.dtls)
		devs := make([]*rawDevice, n)
		for i := range devs {
			ep, id, key := benchIdentity(i)
			s.addPSK(b, ep, id, key)
			c, err := net.DialUDP("udp", nil, raddr)
			if err != nil {
				b.Fatal(err)
			}
			dc, err := piondtls.ClientWithOptions(dtlsnet.PacketConnFromConn(c), raddr,
				piondtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
				piondtls.WithPSKIdentityHint([]byte(id)),
				piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8),
				piondtls.WithConnectionIDGenerator(piondtls.OnlySendCIDGenerator()))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = dc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			devs[i] = &rawDevice{conn: dc, mid: uint16(i * 7919), buf: make([]byte, 2048), in: make([]byte, 1500)}
		}
		b.Cleanup(func() {
			for _, d := range devs {
				_ = d.conn.Close()
			}
		})
		run(b, s, devs)
	})
}
