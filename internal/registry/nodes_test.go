package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// node is one server node: a registry with its own connections to the
// shared database and its own ingest writer.
type node struct {
	reg *registry.Registry
	st  *store.Store

	mu     sync.Mutex
	events []registry.Change // guarded by mu
}

func (n *node) eventsCopy() []registry.Change {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]registry.Change(nil), n.events...)
}

// twoNodes runs fn against two nodes on one SQLite file and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, on one PostgreSQL database; both
// nodes read the clock c.
func twoNodes(t *testing.T, fn func(t *testing.T, a, b *node, c *clock)) {
	t.Run("sqlite", func(t *testing.T) {
		url := filepath.Join(t.TempDir(), "db.sqlite")
		c := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
		fn(t, openNode(t, url, c), openNode(t, url, c), c)
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.PostgresURL(t)
		c := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
		fn(t, openNode(t, url, c), openNode(t, url, c), c)
	})
}

func openNode(t *testing.T, url string, c *clock) *node {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := ingest.New(st, ingest.Config{})
	w.Start()
	t.Cleanup(func() {
		w.Close()
		_ = st.Close()
	})
	n := &node{st: st, reg: registry.New(st, registry.Config{Clock: c, Ingest: w})}
	n.reg.Subscribe(func(ev registry.Change) {
		n.mu.Lock()
		n.events = append(n.events, ev)
		n.mu.Unlock()
	})
	return n
}

// registerMany registers n devices named dev-0, dev-1, ... on r.
func registerMany(t *testing.T, r *registry.Registry, n int) []registry.Registration {
	t.Helper()
	regs := make([]registry.Registration, n)
	for i := range regs {
		var err error
		if regs[i], err = r.Register(context.Background(), req(fmt.Sprintf("dev-%d", i), uint16(1000+i))); err != nil {
			t.Fatal(err)
		}
	}
	return regs
}

// A device registers on A and updates on B: A's sweep, past the lifetime
// A saw last, does not expire it, and A's copy takes the renewal.
func TestNodesUpdateElsewhereKeepsRegistration(t *testing.T) {
	twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
		ctx := context.Background()
		reg, err := a.reg.Register(ctx, req("dev", 1000))
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(50 * time.Second)
		upd, err := b.reg.Update(ctx, reg.ID, registry.UpdateRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(20 * time.Second) // past A's copy, inside B's Update
		if n := a.reg.Sweep(ctx); n != 0 {
			t.Fatalf("A expired %d", n)
		}
		if ep, _ := a.st.GetEndpoint(ctx, "dev"); !ep.Online || ep.RegistrationID != reg.ID {
			t.Fatalf("stored after A's sweep: online %v, registration %q", ep.Online, ep.RegistrationID)
		}
		got, ok := a.reg.Get(reg.ID)
		if !ok || !got.UpdatedAt.Equal(upd.UpdatedAt) {
			t.Errorf("A's copy after its sweep: %+v, %v; want updated at %v", got, ok, upd.UpdatedAt)
		}
		if evs := append(a.eventsCopy(), b.eventsCopy()...); len(evs) != 2 {
			t.Errorf("events %+v, want registered and updated", evs)
		}
		// Past B's Update too: expired once, by whichever sweeps first.
		c.Advance(45 * time.Second)
		if n := a.reg.Sweep(ctx) + b.reg.Sweep(ctx); n != 1 {
			t.Errorf("expired %d times", n)
		}
		if a.reg.Len()+b.reg.Len() != 0 {
			t.Errorf("copies left: A %d, B %d", a.reg.Len(), b.reg.Len())
		}
	})
}

// A device moves and updates on B: A's copy is stale until A asks the
// record (Current), which every request the server starts does.
func TestNodesCurrentFollowsRecord(t *testing.T) {
	twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
		ctx := context.Background()
		reg, err := a.reg.Register(ctx, req("dev", 1000))
		if err != nil {
			t.Fatal(err)
		}
		moved := netip.MustParseAddrPort("198.51.100.2:2000")
		c.Advance(time.Second)
		if _, err := b.reg.Update(ctx, reg.ID, registry.UpdateRequest{Addr: moved, Lifetime: 300}); err != nil {
			t.Fatal(err)
		}
		got, err := a.reg.Current(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != reg.ID || got.Addr != moved || got.Lifetime != 300 {
			t.Errorf("A's current registration %+v, want at %v with lifetime 300", got, moved)
		}
		if _, ok := a.reg.ByAddr(reg.Addr); ok {
			t.Error("A still attributes the old address to the device")
		}
		if mem, ok := a.reg.ByAddr(moved); !ok || mem.ID != reg.ID {
			t.Error("A does not attribute the new address to the device")
		}
		// De-registered on B: gone for A too, and A's copy is dropped.
		if _, err := b.reg.Deregister(ctx, reg.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.reg.Current(ctx, "dev"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("Current after De-register on B: %v", err)
		}
		if _, ok := a.reg.Get(reg.ID); ok {
			t.Error("A keeps a copy of the ended registration")
		}
	})
}

// A node whose copy is stale never overwrites or ends a newer
// registration: its Update, De-register and address move of a registration
// that was replaced or ended on another node change nothing and report
// ErrNotFound (the device then registers anew), and its copy is dropped.
func TestNodesStaleCopyChangesNothing(t *testing.T) {
	moved := netip.MustParseAddrPort("198.51.100.3:3000")
	for name, stale := range map[string]func(ctx context.Context, r *registry.Registry, id string) error{
		"update": func(ctx context.Context, r *registry.Registry, id string) error {
			_, err := r.Update(ctx, id, registry.UpdateRequest{Lifetime: 30, Binding: "U", Addr: moved})
			return err
		},
		"deregister": func(ctx context.Context, r *registry.Registry, id string) error {
			_, err := r.Deregister(ctx, id)
			return err
		},
		"setaddr": func(ctx context.Context, r *registry.Registry, id string) error {
			return r.SetAddr(ctx, id, moved, registry.TransportDTLS)
		},
	} {
		t.Run(name, func(t *testing.T) {
			twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
				ctx := context.Background()
				old, err := a.reg.Register(ctx, req("dev", 1000))
				if err != nil {
					t.Fatal(err)
				}
				c.Advance(time.Second)
				rq := req("dev", 1001)
				rq.Binding, rq.Lifetime = "UQ", 600
				cur, err := b.reg.Register(ctx, rq) // the device registered anew on B
				if err != nil {
					t.Fatal(err)
				}
				c.Advance(time.Second)
				if err := stale(ctx, a.reg, old.ID); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("A's %s of the replaced registration: %v", name, err)
				}
				if _, ok := a.reg.Get(old.ID); ok {
					t.Error("A keeps the replaced registration")
				}
				ep, _ := a.st.GetEndpoint(ctx, "dev")
				if !ep.Online || ep.RegistrationID != cur.ID || ep.Binding != "UQ" || ep.Lifetime != 600*time.Second ||
					ep.Address != rq.Addr.String() || ep.Transport != store.TransportUDP {
					t.Errorf("B's registration after A's %s: %+v", name, ep)
				}

				// Ended on B: A's stale copy does not bring it back.
				old, err = a.reg.Register(ctx, req("other", 1002))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.reg.Lookup(ctx, old.ID); err != nil {
					t.Fatal(err)
				}
				if _, err := b.reg.Deregister(ctx, old.ID); err != nil {
					t.Fatal(err)
				}
				if err := stale(ctx, a.reg, old.ID); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("A's %s of a registration de-registered on B: %v", name, err)
				}
				if ep, _ := a.st.GetEndpoint(ctx, "other"); ep.Online || ep.RegistrationID != "" {
					t.Errorf("after A's %s of a registration de-registered on B: %+v", name, ep)
				}
				evs := append(a.eventsCopy(), b.eventsCopy()...)
				if len(evs) != 4 {
					t.Errorf("events %+v, want 3 registered and 1 deregistered", evs)
				}
			})
		})
	}
}

// A node that holds an older registration of a device finds the device's
// newer one, made on another node, when the device names it (its Update
// arrives at this node).
func TestNodesLookupReplacesOlderCopy(t *testing.T) {
	twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
		ctx := context.Background()
		old, err := a.reg.Register(ctx, req("dev", 1000))
		if err != nil {
			t.Fatal(err)
		}
		observe(t, a.reg, old, "tok-old", battery)
		c.Advance(time.Second)
		cur, err := b.reg.Register(ctx, req("dev", 1001))
		if err != nil {
			t.Fatal(err)
		}
		observe(t, b.reg, cur, "tok-new", battery)
		got, err := a.reg.Lookup(ctx, cur.ID)
		if err != nil || got.ID != cur.ID || got.Addr != cur.Addr {
			t.Fatalf("A's Lookup of the registration made on B: %+v, %v", got, err)
		}
		if _, err := a.reg.Update(ctx, cur.ID, registry.UpdateRequest{}); err != nil {
			t.Errorf("A's Update of it: %v", err)
		}
		if _, ok := a.reg.Get(old.ID); ok {
			t.Error("A keeps the older registration")
		}
		if _, _, ok := a.reg.Observation([]byte("tok-old")); ok {
			t.Error("A routes the older registration's observation")
		}
		if _, reg, ok := a.reg.Observation([]byte("tok-new")); !ok || reg.ID != cur.ID {
			t.Error("A does not route the newer registration's observation")
		}
	})
}

// Devices that went silent, held by both nodes, are expired exactly once
// by their sweeps, run at the same time: one Expired event and one
// /10240/0/1 value each, and neither node keeps a copy.
func TestNodesExpireOnce(t *testing.T) {
	twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
		ctx := context.Background()
		const n = 20
		regs := registerMany(t, a.reg, n)
		for _, reg := range regs {
			if _, err := b.reg.Lookup(ctx, reg.ID); err != nil {
				t.Fatal(err)
			}
		}
		c.Advance(61 * time.Second)
		var wg sync.WaitGroup
		var swept [2]int
		for i, nd := range []*node{a, b} {
			wg.Go(func() { swept[i] = nd.reg.Sweep(ctx) })
		}
		wg.Wait()
		if swept[0]+swept[1] != n {
			t.Errorf("swept %d and %d, want %d in all", swept[0], swept[1], n)
		}
		expired := map[string]int{}
		for _, ev := range append(a.eventsCopy(), b.eventsCopy()...) {
			if ev.Kind == registry.Expired {
				expired[ev.Registration.ID]++
			}
		}
		for _, reg := range regs {
			if expired[reg.ID] != 1 {
				t.Errorf("%s: %d expired events", reg.Endpoint, expired[reg.ID])
			}
			vs, err := a.st.ResourceHistory(ctx, reg.EndpointID, registry.PathDeregistered, time.Time{}, c.Now().Add(time.Hour), 10)
			if err != nil || len(vs) != 1 {
				t.Errorf("%s: /10240/0/1 recorded %d times (%v)", reg.Endpoint, len(vs), err)
			}
		}
		// A node whose sweep found the records being expired by the other
		// (PostgreSQL leaves rows locked by another expiry to it) drops its
		// copies by its next sweep at the latest.
		if a.reg.Sweep(ctx)+b.reg.Sweep(ctx) != 0 {
			t.Error("expired again")
		}
		if a.reg.Len()+b.reg.Len() != 0 {
			t.Errorf("copies left: A %d, B %d", a.reg.Len(), b.reg.Len())
		}
	})
}

// What a node hears from a device (Seen) reaches the device's record with
// the node's next WriteSeen, one write for every device heard since the
// last, and another node sees it there.
func TestNodesSeeLiveness(t *testing.T) {
	twoNodes(t, func(t *testing.T, a, b *node, c *clock) {
		ctx := context.Background()
		const n = 50
		regs := registerMany(t, a.reg, n)
		for range 10 {
			c.Advance(time.Second)
			for _, reg := range regs {
				a.reg.Seen(reg.ID)
			}
		}
		heard := c.Now()
		if got, err := b.reg.Current(ctx, "dev-0"); err != nil || !got.LastSeen.Equal(regs[0].LastSeen) {
			t.Fatalf("B before A's WriteSeen: %v, %v; want last seen at the Register", got.LastSeen, err)
		}
		if k, err := a.reg.WriteSeen(ctx); err != nil || k != n {
			t.Fatalf("WriteSeen wrote %d, %v; want %d", k, err, n)
		}
		if k, err := a.reg.WriteSeen(ctx); err != nil || k != 0 {
			t.Errorf("WriteSeen with nothing heard since: %d, %v", k, err)
		}
		for _, reg := range regs {
			got, err := b.reg.Current(ctx, reg.Endpoint)
			if err != nil || !got.LastSeen.Equal(heard) {
				t.Errorf("B's %s: last seen %v, %v; want %v", reg.Endpoint, got.LastSeen, err, heard)
			}
			// Traffic is not an Update: the lifetime still runs from the
			// Register.
			if !got.UpdatedAt.Equal(reg.UpdatedAt) {
				t.Errorf("B's %s: updated at %v, want %v", reg.Endpoint, got.UpdatedAt, reg.UpdatedAt)
			}
		}
	})
}

// BenchmarkCurrent measures what a request the server starts pays to go
// by the registration's record (Current: one query by endpoint name) next
// to this node's copy in memory (LookupEndpoint), on a SQLite file and,
// when FLOWNEXUS_TEST_POSTGRES_URL is set, PostgreSQL; 1,000 registered
// endpoints with typical object links.
func BenchmarkCurrent(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			ctx := context.Background()
			url := filepath.Join(b.TempDir(), "db.sqlite")
			if engine == "postgres" {
				url = storetest.PostgresURL(b)
			}
			st, err := store.Open(ctx, url, store.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			r := registry.New(st, registry.Config{})
			const links = `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</4/0>,</5/0>,</6/0>,</3303/0>,</3304/0>,</3311/0>,</3311/1>`
			objs, err := linkformat.ParseRegistration([]byte(links))
			if err != nil {
				b.Fatal(err)
			}
			for i := range 1000 {
				rq := req(fmt.Sprintf("urn:imei:%015d", i), uint16(1000+i))
				rq.Objects, rq.ObjectLinks = objs, links
				if _, err := r.Register(ctx, rq); err != nil {
					b.Fatal(err)
				}
			}
			name := fmt.Sprintf("urn:imei:%015d", 500)
			b.Run("memory", func(b *testing.B) {
				for b.Loop() {
					if _, err := r.LookupEndpoint(ctx, name); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("record", func(b *testing.B) {
				for b.Loop() {
					if _, err := r.Current(ctx, name); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
