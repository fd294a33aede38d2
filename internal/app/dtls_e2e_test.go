package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// startSecureFleet starts a server with DTLS on, gives n devices PSK
// credentials and starts them over DTLS.
func startSecureFleet(t *testing.T, n int) (*server, *simulator.Fleet) {
	t.Helper()
	return startSecureFleetWith(t, n, Tuning{}, nil)
}

// startSecureFleetWith is startSecureFleet with server options and a
// change to the fleet's configuration.
func startSecureFleetWith(t *testing.T, n int, opts Tuning, mod func(*simulator.Config)) (*server, *simulator.Fleet) {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	s := startServer(t, cfg, opts)
	psk := func(i int) simulator.PSK {
		return simulator.PSK{Identity: fmt.Sprintf("sim-%d", i), Key: []byte(fmt.Sprintf("key-of-device-%04d", i))}
	}
	for i := range n {
		ep, err := (simulator.Config{}).EndpointName(i)
		if err != nil {
			t.Fatal(err)
		}
		k := psk(i)
		if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"},
			credential.AddRequest{Endpoint: ep, PSKIdentity: k.Identity, PSKKey: k.Key}); err != nil {
			t.Fatal(err)
		}
	}
	f := startFleet(t, s, n, func(c *simulator.Config) {
		c.Server = s.CoAPSAddr().String()
		c.PSK = psk
		if mod != nil {
			mod(c)
		}
	})
	return s, f
}

// TestDTLSFleetEndToEnd runs simulated devices over DTLS-PSK: they
// register, send and answer the server's reads over their sessions.
func TestDTLSFleetEndToEnd(t *testing.T) {
	s, f := startSecureFleet(t, 3)
	for _, d := range f.Devices() {
		reg, ok := s.Registry.ByEndpoint(d.Endpoint())
		if !ok || reg.Transport != registry.TransportDTLS {
			t.Fatalf("%s: registration %+v %v, want one over DTLS", d.Endpoint(), reg, ok)
		}
		var res opResult
		if code := s.call(t, "POST", "/api/v1/endpoints/"+d.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 || len(res.Values) != 1 {
			t.Fatalf("read over DTLS: %d %+v", code, res)
		}
		before := d.Stats().SendsAcked
		d.TriggerSend()
		eventually(t, 10*time.Second, "send acknowledged", func() bool { return d.Stats().SendsAcked > before })
		if n := d.Stats().Handshakes; n != 1 {
			t.Fatalf("%s: %d handshakes, want 1", d.Endpoint(), n)
		}
	}
}

// TestDTLSConnectionIDSurvivesRebind moves a device to a new source port
// mid-session: with the Connection ID the server gave it, its next Send is
// accepted on the same session (no handshake), the endpoint's address
// follows, and the server's requests reach it at the new port.
func TestDTLSConnectionIDSurvivesRebind(t *testing.T) {
	s, f := startSecureFleet(t, 1)
	d := f.Device(0)
	oldAddr := d.LocalAddr()
	if err := d.Rebind(); err != nil {
		t.Fatal(err)
	}
	newAddr := d.LocalAddr()
	if newAddr == oldAddr {
		t.Fatalf("Rebind kept the port %s", oldAddr)
	}
	before := d.Stats().SendsAcked
	d.TriggerSend()
	eventually(t, 10*time.Second, "send after rebind acknowledged", func() bool { return d.Stats().SendsAcked > before })
	newPort := netip.MustParseAddrPort(newAddr).Port()
	reg, _ := s.Registry.ByEndpoint(d.Endpoint())
	if reg.Addr.Port() != newPort {
		t.Fatalf("registration address %s, want port %d", reg.Addr, newPort)
	}
	e, err := s.Store.GetEndpoint(context.Background(), d.Endpoint())
	if err != nil || netip.MustParseAddrPort(e.Address).Port() != newPort {
		t.Fatalf("stored address %q %v, want port %d", e.Address, err, newPort)
	}
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+d.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
		t.Fatalf("read after rebind: %d", code)
	}
	if st := d.Stats(); st.Handshakes != 1 || st.Registrations != 1 {
		t.Fatalf("after rebind: %d handshakes, %d registrations; want 1 and 1", st.Handshakes, st.Registrations)
	}
}

// TestDTLSParkedSession lets two devices' sessions idle until the server
// parks them (no goroutines, only their exported state). The server's read
// resumes one, a Send from a new source port (Connection ID) the other;
// neither device handshakes again and the rebound one's address follows.
func TestDTLSParkedSession(t *testing.T) {
	s, f := startSecureFleetWith(t, 2, Tuning{IdleTimeout: 300 * time.Millisecond}, func(c *simulator.Config) {
		c.ValueInterval = time.Hour // no notifications: the sessions idle
	})
	eventually(t, 10*time.Second, "both sessions parked", func() bool {
		st := s.CoAP.DTLSStats()
		return st.Parked == 2 && st.Live == 0
	})
	metrics := s.metrics(t)
	for _, want := range []string{
		`flownexus_dtls_sessions{state="parked"} 2`, `flownexus_dtls_sessions{state="live"} 0`,
		`flownexus_dtls_handshakes_total{kind="psk",mode="full"} 2`, "flownexus_registrations 2",
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	d0, d1 := f.Device(0), f.Device(1)
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+d0.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 || len(res.Values) != 1 {
		t.Fatalf("read on a parked session: %d %+v", code, res)
	}

	if err := d1.Rebind(); err != nil {
		t.Fatal(err)
	}
	before := d1.Stats().SendsAcked
	d1.TriggerSend()
	eventually(t, 10*time.Second, "send from a new port acknowledged", func() bool { return d1.Stats().SendsAcked > before })
	newPort := netip.MustParseAddrPort(d1.LocalAddr()).Port()
	if reg, _ := s.Registry.ByEndpoint(d1.Endpoint()); reg.Addr.Port() != newPort {
		t.Fatalf("registration address %s, want port %d", reg.Addr, newPort)
	}
	if code := s.call(t, "POST", "/api/v1/endpoints/"+d1.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
		t.Fatalf("read after the resumed session moved: %d", code)
	}
	for _, d := range f.Devices() {
		if st := d.Stats(); st.Handshakes != 1 || st.Registrations != 1 {
			t.Fatalf("%s: %d handshakes, %d registrations; want 1 and 1", d.Endpoint(), st.Handshakes, st.Registrations)
		}
	}
	// Idle again, both park again.
	eventually(t, 10*time.Second, "sessions parked again", func() bool { return s.CoAP.DTLSStats().Parked == 2 })
}

// metrics returns the server's /metrics page.
func (s *server) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestDTLSRestartKeepsSessions restarts the server on the same ports: the
// devices' DTLS sessions are saved on stop and resumed on start, so they
// go on without a handshake or a new registration. The server reaches
// the first device before it talks again: its registration is restored
// as a DTLS one and its session resumed for the request.
func TestDTLSRestartKeepsSessions(t *testing.T) {
	s, f := startSecureFleet(t, 2)
	cfg := s.cfg
	cfg.CoAPListen = s.CoAPAddr().String()
	cfg.CoAPSListen = s.CoAPSAddr().String()
	s.stop()
	s2 := startServer(t, cfg, Tuning{})
	// Stop the devices while the server still answers their De-register.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Stop(ctx)
	})
	var res opResult
	if code := s2.call(t, "POST", "/api/v1/endpoints/"+f.Device(0).Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
		t.Fatalf("read after restart before the device talked: %d %+v", code, res)
	}
	for _, d := range f.Devices() {
		before := d.Stats()
		d.TriggerSend()
		eventually(t, 10*time.Second, "send after restart acknowledged", func() bool { return d.Stats().SendsAcked > before.SendsAcked })
		if st := d.Stats(); st.Handshakes != 1 || st.Registrations != 1 {
			t.Fatalf("%s after restart: %d handshakes, %d registrations; want 1 and 1", d.Endpoint(), st.Handshakes, st.Registrations)
		}
		reg, ok := s2.Registry.ByEndpoint(d.Endpoint())
		if !ok || reg.Transport != registry.TransportDTLS {
			t.Fatalf("%s: registration after restart %+v %v", d.Endpoint(), reg, ok)
		}
		if code := s2.call(t, "POST", "/api/v1/endpoints/"+d.Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
			t.Fatalf("read after restart: %d", code)
		}
	}
}
