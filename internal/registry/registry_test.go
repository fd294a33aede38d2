package registry_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T, grace time.Duration) (*registry.Registry, *store.Store, *clock, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	st, err := store.Open(ctx, path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	return registry.New(st, registry.Config{Clock: c, Grace: grace}), st, c, path
}

func objectsOf(t *testing.T, s string) linkformat.Registration {
	t.Helper()
	r, err := linkformat.ParseRegistration([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func req(name string, port uint16) registry.RegisterRequest {
	return registry.RegisterRequest{
		Endpoint: name, Lifetime: 60, Version: lwm2m.V1_1,
		Addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port),
	}
}

func TestObservationTable(t *testing.T) {
	r, _, _, _ := setup(t, 0)
	ctx := context.Background()
	reg, err := r.Register(ctx, req("a", 1000))
	if err != nil {
		t.Fatal(err)
	}
	temp := lwm2m.NewPath(3303, 0, 5700)
	o := registry.Observation{Token: "tok-1", RegistrationID: reg.ID, Paths: []lwm2m.Path{temp}, Format: lwm2m.FormatTLV}
	if err := r.AddObservation(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := r.AddObservation(ctx, o); err == nil {
		t.Fatal("token accepted twice")
	}
	if err := r.AddObservation(ctx, registry.Observation{Token: "tok-x", RegistrationID: "nope"}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("observation on unknown registration: %v", err)
	}
	got, greg, ok := r.Observation([]byte("tok-1"))
	if !ok || got.Path() != temp || greg.ID != reg.ID {
		t.Fatalf("lookup: %+v %+v %v", got, greg, ok)
	}
	if _, ok := r.FindObservation(reg.ID, false, []lwm2m.Path{temp}); !ok {
		t.Fatal("FindObservation missed")
	}
	if _, ok := r.FindObservation(reg.ID, true, []lwm2m.Path{temp}); ok {
		t.Fatal("single observation found as composite")
	}
	if !r.RemoveObservation("tok-1") || r.RemoveObservation("tok-1") {
		t.Fatal("remove")
	}
	if _, _, ok := r.Observation([]byte("tok-1")); ok {
		t.Fatal("removed token still routes")
	}

	// Re-registering drops the observations of the old registration.
	if err := r.AddObservation(ctx, registry.Observation{Token: "tok-2", RegistrationID: reg.ID, Paths: []lwm2m.Path{temp}}); err != nil {
		t.Fatal(err)
	}
	reg2, err := r.Register(ctx, req("a", 1001))
	if err != nil {
		t.Fatal(err)
	}
	if reg2.ID == reg.ID {
		t.Fatal("re-register kept the registration ID")
	}
	if _, _, ok := r.Observation([]byte("tok-2")); ok {
		t.Fatal("observation survived re-register")
	}
	if _, ok := r.Get(reg.ID); ok {
		t.Fatal("old registration still live")
	}
	if r.Len() != 1 {
		t.Fatalf("%d registrations", r.Len())
	}
}

func TestAddressIndex(t *testing.T) {
	r, _, _, _ := setup(t, 0)
	ctx := context.Background()
	reg, _ := r.Register(ctx, req("a", 1000))
	if got, ok := r.ByAddr(reg.Addr); !ok || got.ID != reg.ID {
		t.Fatal("ByAddr after Register")
	}
	moved := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 2000)
	if _, err := r.Update(ctx, reg.ID, registry.UpdateRequest{Addr: moved}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.ByAddr(reg.Addr); ok {
		t.Fatal("old address still indexed")
	}
	if got, ok := r.ByAddr(moved); !ok || got.ID != reg.ID || got.Addr != moved {
		t.Fatal("new address not indexed")
	}
	if _, err := r.Deregister(ctx, reg.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.ByAddr(moved); ok {
		t.Fatal("address indexed after De-register")
	}
}

// TestLookupAddrAfterRestart: a registry with nothing in memory (after a
// restart) finds a plain-CoAP device by the address in its stored
// registration, and then holds it in memory; DTLS registrations and ended
// ones are not found by address.
func TestLookupAddrAfterRestart(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	reg, err := r.Register(ctx, req("a", 1000))
	if err != nil {
		t.Fatal(err)
	}
	d := req("d", 1001)
	d.Transport = registry.TransportDTLS
	if _, err := r.Register(ctx, d); err != nil {
		t.Fatal(err)
	}
	gone, err := r.Register(ctx, req("gone", 1002))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Deregister(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}

	r2 := registry.New(st, registry.Config{Clock: c})
	got, err := r2.LookupAddr(ctx, reg.Addr)
	if err != nil || got.ID != reg.ID || got.Endpoint != "a" {
		t.Fatalf("LookupAddr after restart: %+v, %v", got, err)
	}
	if mem, ok := r2.ByAddr(reg.Addr); !ok || mem.ID != reg.ID {
		t.Fatal("restored registration not indexed by address")
	}
	for _, addr := range []netip.AddrPort{d.Addr, gone.Addr, netip.MustParseAddrPort("192.0.2.1:9")} {
		if _, err := r2.LookupAddr(ctx, addr); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("LookupAddr(%s): %v, want ErrNotFound", addr, err)
		}
	}
}

// TestRemoveStale: an endpoint that registered once and went away is
// removed once the retention has passed; one that reported values stays.
func TestRemoveStale(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	for _, name := range []string{"once", "useful"} {
		reg, err := r.Register(ctx, req(name, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if name == "useful" {
			if err := st.InsertResources(ctx, []store.ResourceValue{{EndpointID: reg.EndpointID,
				Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(21.5), ReceivedAt: c.Now()}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Deregister(ctx, reg.ID); err != nil {
			t.Fatal(err)
		}
	}
	keep := registry.New(st, registry.Config{Clock: c, Retention: 24 * time.Hour})
	if n := keep.RemoveStale(ctx); n != 0 {
		t.Fatalf("removed %d inside the retention", n)
	}
	c.Advance(25 * time.Hour)
	if n := keep.RemoveStale(ctx); n != 1 {
		t.Fatalf("removed %d, want 1", n)
	}
	if _, err := st.GetEndpoint(ctx, "once"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("once: %v, want removed", err)
	}
	if _, err := st.GetEndpoint(ctx, "useful"); err != nil {
		t.Errorf("useful: %v, want kept", err)
	}
}

// TestExpiryAfterRestartLogsRegistration: a registration made before a
// restart that expires afterwards is logged with its ID.
func TestExpiryAfterRestartLogsRegistration(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	reg, err := r.Register(ctx, req("a", 1000))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r2 := registry.New(st, registry.Config{Clock: c, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.Advance(2 * time.Minute)
	r2.Sweep(ctx)
	if !strings.Contains(logs.String(), "registration="+reg.ID) {
		t.Fatalf("expiry log without the registration ID %s:\n%s", reg.ID, logs.String())
	}
}

func TestSweepWithGrace(t *testing.T) {
	r, st, c, _ := setup(t, 10*time.Second)
	ctx := context.Background()
	reg, _ := r.Register(ctx, req("a", 1000))
	c.Advance(65 * time.Second) // past the lifetime, inside the grace
	if n := r.Sweep(ctx); n != 0 {
		t.Fatalf("expired inside the grace period")
	}
	c.Advance(5 * time.Second)
	if n := r.Sweep(ctx); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if _, err := r.Lookup(ctx, reg.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("lookup after expiry: %v", err)
	}
	ep, _ := st.GetEndpoint(ctx, "a")
	vs, err := st.ResourceHistory(ctx, ep.ID, registry.PathDeregistered, time.Time{}, time.Now().Add(time.Hour), 10)
	if err != nil || len(vs) != 1 {
		t.Fatalf("expiry not recorded: %+v %v", vs, err)
	}
}

func TestRestoreFromStore(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	rq := req("a", 1000)
	rq.Objects = objectsOf(t, `</>;rt="oma.lwm2m";ct=110,</3/0>,</3303/0>`)
	rq.ObjectLinks = `</>;rt="oma.lwm2m";ct=110,</3/0>,</3303/0>`
	rq.Queue = true
	reg, err := r.Register(ctx, rq)
	if err != nil {
		t.Fatal(err)
	}
	// A second registry on the same store: what a restart sees.
	r2 := registry.New(st, registry.Config{Clock: c})
	if _, ok := r2.Get(reg.ID); ok {
		t.Fatal("fresh registry knows the registration before Lookup")
	}
	got, err := r2.Lookup(ctx, reg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "a" || got.Addr != rq.Addr || !got.Queue || !got.HasInstance(3303, 0) ||
		len(got.Objects.ContentFormats) != 1 || got.EndpointID != reg.EndpointID {
		t.Fatalf("restored %+v", got)
	}
	// Past its lifetime a stored registration is not restored.
	r3 := registry.New(st, registry.Config{Clock: c})
	c.Advance(2 * time.Minute)
	if _, err := r3.Lookup(ctx, reg.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("expired registration restored: %v", err)
	}
}

// A registration restored after a restart has the transport its device
// last talked over, whether a Register, an Update or SetAddr set it, and
// whether the Register went through the ingest writer or straight to the
// store.
func TestRestoreTransport(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	w := ingest.New(st, ingest.Config{})
	w.Start()
	t.Cleanup(w.Close)
	batched := registry.New(st, registry.Config{Clock: c, Ingest: w})
	dtls := func(rq registry.RegisterRequest) registry.RegisterRequest {
		rq.Transport = registry.TransportDTLS
		return rq
	}
	register := func(r *registry.Registry, rq registry.RegisterRequest) registry.Registration {
		t.Helper()
		reg, err := r.Register(ctx, rq)
		if err != nil {
			t.Fatal(err)
		}
		return reg
	}
	regs := map[string]registry.Registration{
		"udp":          register(r, req("udp", 1000)),
		"dtls":         register(r, dtls(req("dtls", 1001))),
		"udp-batched":  register(batched, req("udp-batched", 1002)),
		"dtls-batched": register(batched, dtls(req("dtls-batched", 1003))),
		"update-dtls":  register(r, req("update-dtls", 1004)),
		"update-udp":   register(r, dtls(req("update-udp", 1005))),
		"setaddr-dtls": register(r, req("setaddr-dtls", 1006)),
		"setaddr-udp":  register(r, dtls(req("setaddr-udp", 1007))),
		"update-keeps": register(r, dtls(req("update-keeps", 1008))),
	}
	moved := func(port uint16) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), port)
	}
	if _, err := r.Update(ctx, regs["update-dtls"].ID, registry.UpdateRequest{Addr: moved(1), Transport: registry.TransportDTLS}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, regs["update-udp"].ID, registry.UpdateRequest{Addr: moved(2), Transport: registry.TransportUDP}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetAddr(ctx, regs["setaddr-dtls"].ID, moved(3), registry.TransportDTLS); err != nil {
		t.Fatal(err)
	}
	if err := r.SetAddr(ctx, regs["setaddr-udp"].ID, moved(4), registry.TransportUDP); err != nil {
		t.Fatal(err)
	}
	// An Update that names no address keeps the transport.
	if _, err := r.Update(ctx, regs["update-keeps"].ID, registry.UpdateRequest{Lifetime: 90}); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		tr   registry.Transport
		addr netip.AddrPort
	}{
		"udp":          {registry.TransportUDP, regs["udp"].Addr},
		"dtls":         {registry.TransportDTLS, regs["dtls"].Addr},
		"udp-batched":  {registry.TransportUDP, regs["udp-batched"].Addr},
		"dtls-batched": {registry.TransportDTLS, regs["dtls-batched"].Addr},
		"update-dtls":  {registry.TransportDTLS, moved(1)},
		"update-udp":   {registry.TransportUDP, moved(2)},
		"setaddr-dtls": {registry.TransportDTLS, moved(3)},
		"setaddr-udp":  {registry.TransportUDP, moved(4)},
		"update-keeps": {registry.TransportDTLS, regs["update-keeps"].Addr},
	}

	// A second registry on the same store: what a restart sees.
	r2 := registry.New(st, registry.Config{Clock: c})
	for name, reg := range regs {
		got, err := r2.Lookup(ctx, reg.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Transport != want[name].tr || got.Addr != want[name].addr {
			t.Errorf("%s restored over %v from %v, want %v from %v", name, got.Transport, got.Addr, want[name].tr, want[name].addr)
		}
		// Only plain CoAP devices are found by address.
		_, byAddr := r2.ByAddr(got.Addr)
		if byAddr != (want[name].tr == registry.TransportUDP) {
			t.Errorf("%s (%v) found by address: %v", name, got.Transport, byAddr)
		}
	}
	// LookupEndpoint, which a DTLS session that outlived the restart uses,
	// restores the same.
	r3 := registry.New(st, registry.Config{Clock: c})
	for _, name := range []string{"dtls", "udp"} {
		got, err := r3.LookupEndpoint(ctx, name)
		if err != nil || got.Transport != want[name].tr {
			t.Errorf("LookupEndpoint(%q) = %v, %v; want %v", name, got.Transport, err, want[name].tr)
		}
	}
}

func TestConcurrentRegisters(t *testing.T) {
	r, _, _, _ := setup(t, 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := r.Register(ctx, req("same", uint16(3000+i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if r.Len() != 1 {
		t.Fatalf("%d live registrations of one endpoint", r.Len())
	}
}
