package registry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

var (
	temp     = lwm2m.NewPath(3303, 0, 5700)
	battery  = lwm2m.NewPath(3, 0, 9)
	position = lwm2m.NewPath(6)
)

// observe adds an observation of paths (composite when more than one) on
// reg and returns it.
func observe(t *testing.T, r *registry.Registry, reg registry.Registration, token string, paths ...lwm2m.Path) registry.Observation {
	t.Helper()
	return observeAs(t, r, reg, registry.Origin{}, "", token, paths...)
}

// observeAs is observe with an origin and the attributes written.
func observeAs(t *testing.T, r *registry.Registry, reg registry.Registration, origin registry.Origin, attrs, token string, paths ...lwm2m.Path) registry.Observation {
	t.Helper()
	o := registry.Observation{Token: token, RegistrationID: reg.ID, Paths: paths, Composite: len(paths) > 1,
		Format: lwm2m.FormatSenMLCBOR, Origin: origin, Attributes: attrs}
	if err := r.AddObservation(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got, _, ok := r.Observation([]byte(token))
	if !ok {
		t.Fatalf("observation %q not in memory after AddObservation", token)
	}
	return got
}

// stored returns the tokens of the observations of registration id in the
// store.
func stored(t *testing.T, st *store.Store, id string) []string {
	t.Helper()
	rows, err := st.ListObservations(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, row := range rows {
		out = append(out, string(row.Token))
	}
	return out
}

// A restart keeps the observations: the first notification of one of them
// brings back the registration with all its observations, over the
// transport its device last used.
func TestObservationsSurviveRestart(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	rq := req("a", 1000)
	rq.Transport = registry.TransportDTLS
	reg, err := r.Register(ctx, rq)
	if err != nil {
		t.Fatal(err)
	}
	single := observeAs(t, r, reg, registry.Origin{Kind: registry.OriginAutoObserve}, "pmin=60", "tok-1", temp)
	c.Advance(time.Second)
	composite := observeAs(t, r, reg, registry.Origin{Kind: registry.OriginQueue, UserID: 3, Operation: 41}, "", "tok-2", battery, position)
	other, _ := r.Register(ctx, req("b", 1001))
	observe(t, r, other, "tok-b", temp)

	// A second registry on the same store: what a restart sees.
	r2 := registry.New(st, registry.Config{Clock: c})
	if _, _, ok := r2.Observation([]byte("tok-1")); ok {
		t.Fatal("fresh registry knows the token before LookupObservation")
	}
	got, greg, err := r2.LookupObservation(ctx, []byte("tok-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, single) {
		t.Errorf("restored %+v, want %+v", got, single)
	}
	if greg.ID != reg.ID || greg.Endpoint != "a" || greg.Transport != registry.TransportDTLS || greg.EndpointID != reg.EndpointID {
		t.Errorf("restored registration %+v", greg)
	}
	// The registration came back with its other observation, in memory.
	if got, greg, ok := r2.Observation([]byte("tok-2")); !ok || !reflect.DeepEqual(got, composite) || greg.ID != reg.ID {
		t.Errorf("second observation: %+v %v, want %+v", got, ok, composite)
	}
	if obs := r2.Observations(reg.ID); len(obs) != 2 || obs[0].Token != "tok-1" || obs[1].Token != "tok-2" {
		t.Errorf("Observations = %+v", obs)
	}
	if _, ok := r2.FindObservation(reg.ID, true, []lwm2m.Path{battery, position}); !ok {
		t.Error("FindObservation missed the restored composite observation")
	}
	// Only the registration of the token came back.
	if _, ok := r2.Get(other.ID); ok {
		t.Error("another registration restored")
	}
	if _, _, err := r2.LookupObservation(ctx, []byte("unknown")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	for _, tok := range [][]byte{nil, []byte("123456789")} {
		if _, _, err := r2.LookupObservation(ctx, tok); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("token %q: %v", tok, err)
		}
	}

	// A registration restored by endpoint name (a DTLS session that
	// outlived the restart) or by ID (an Update) also comes with them.
	r3 := registry.New(st, registry.Config{Clock: c})
	if _, err := r3.LookupEndpoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r3.Observation([]byte("tok-2")); !ok {
		t.Error("LookupEndpoint did not restore the observations")
	}
	r4 := registry.New(st, registry.Config{Clock: c})
	if _, err := r4.Update(ctx, other.ID, registry.UpdateRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r4.Observation([]byte("tok-b")); !ok {
		t.Error("Update did not restore the observations")
	}
}

// An observation removed stays removed after a restart, whether it was
// removed before the restart or after its registration came back.
func TestRemovedObservationStaysRemoved(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	reg, _ := r.Register(ctx, req("a", 1000))
	observe(t, r, reg, "tok-1", temp)
	observe(t, r, reg, "tok-2", battery)
	observe(t, r, reg, "tok-3", position)
	if !r.RemoveObservation("tok-1") {
		t.Fatal("RemoveObservation")
	}

	r2 := registry.New(st, registry.Config{Clock: c})
	if _, _, err := r2.LookupObservation(ctx, []byte("tok-1")); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("removed observation after restart: %v", err)
	}
	if _, _, err := r2.LookupObservation(ctx, []byte("tok-2")); err != nil {
		t.Fatal(err)
	}
	if !r2.RemoveObservation("tok-2") {
		t.Fatal("RemoveObservation of a restored observation")
	}

	r3 := registry.New(st, registry.Config{Clock: c})
	if _, err := r3.Lookup(ctx, reg.ID); err != nil {
		t.Fatal(err)
	}
	if obs := r3.Observations(reg.ID); len(obs) != 1 || obs[0].Token != "tok-3" {
		t.Errorf("after two restarts: %+v", obs)
	}
	if got := stored(t, st, reg.ID); !reflect.DeepEqual(got, []string{"tok-3"}) {
		t.Errorf("stored: %v", got)
	}
}

// De-register, expiry (of a registration in memory or only in the store)
// and a new Register of the endpoint delete the observations of the
// registration that ended.
func TestObservationsEndWithRegistration(t *testing.T) {
	ctx := context.Background()
	gone := func(t *testing.T, st *store.Store, c *clock, reg registry.Registration, tokens ...string) {
		t.Helper()
		if got := stored(t, st, reg.ID); len(got) != 0 {
			t.Errorf("stored after the registration ended: %v", got)
		}
		r2 := registry.New(st, registry.Config{Clock: c})
		for _, tok := range tokens {
			if _, _, err := r2.LookupObservation(ctx, []byte(tok)); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("%s after restart: %v", tok, err)
			}
		}
	}

	t.Run("deregister", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		observe(t, r, reg, "tok-1", temp)
		observe(t, r, reg, "tok-2", battery)
		if _, err := r.Deregister(ctx, reg.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := r.Observation([]byte("tok-1")); ok {
			t.Error("observation in memory after De-register")
		}
		gone(t, st, c, reg, "tok-1", "tok-2")
	})

	t.Run("deregister after restart", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		observe(t, r, reg, "tok-1", temp)
		r2 := registry.New(st, registry.Config{Clock: c})
		if _, err := r2.Deregister(ctx, reg.ID); err != nil {
			t.Fatal(err)
		}
		gone(t, st, c, reg, "tok-1")
	})

	t.Run("expiry", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		keep, _ := r.Register(ctx, req("b", 1001))
		observe(t, r, reg, "tok-1", temp)
		c.Advance(30 * time.Second)
		if _, err := r.Update(ctx, keep.ID, registry.UpdateRequest{}); err != nil {
			t.Fatal(err)
		}
		observe(t, r, keep, "tok-b", temp)
		c.Advance(31 * time.Second)
		if n := r.Sweep(ctx); n != 1 {
			t.Fatalf("swept %d", n)
		}
		gone(t, st, c, reg, "tok-1")
		if got := stored(t, st, keep.ID); !reflect.DeepEqual(got, []string{"tok-b"}) {
			t.Errorf("live registration's observations: %v", got)
		}
	})

	t.Run("expiry after restart", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		observe(t, r, reg, "tok-1", temp)
		r2 := registry.New(st, registry.Config{Clock: c})
		c.Advance(61 * time.Second)
		r2.Sweep(ctx) // the registration is only in the store
		gone(t, st, c, reg, "tok-1")
	})

	t.Run("re-register", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		observe(t, r, reg, "tok-1", temp)
		reg2, err := r.Register(ctx, req("a", 1001))
		if err != nil {
			t.Fatal(err)
		}
		observe(t, r, reg2, "tok-2", temp)
		gone(t, st, c, reg, "tok-1")
		if got := stored(t, st, reg2.ID); !reflect.DeepEqual(got, []string{"tok-2"}) {
			t.Errorf("new registration's observations: %v", got)
		}
	})

	t.Run("re-register after restart", func(t *testing.T) {
		r, st, c, _ := setup(t, 0)
		reg, _ := r.Register(ctx, req("a", 1000))
		observe(t, r, reg, "tok-1", temp)
		// The device registers anew before any of its old tokens is seen.
		r2 := registry.New(st, registry.Config{Clock: c})
		if _, err := r2.Register(ctx, req("a", 1001)); err != nil {
			t.Fatal(err)
		}
		gone(t, st, c, reg, "tok-1")
	})
}

// A stored observation whose registration is no longer live (its row left
// over by a store failure) is not found, and its row is deleted.
func TestLookupObservationDeletesStale(t *testing.T) {
	r, st, _, _ := setup(t, 0)
	ctx := context.Background()
	reg, _ := r.Register(ctx, req("a", 1000))
	for _, row := range []store.Observation{
		{Token: []byte("old-reg"), RegistrationID: "ended", Paths: []lwm2m.Path{temp}},
		{Token: []byte("removed"), RegistrationID: reg.ID, Paths: []lwm2m.Path{temp}},
	} {
		row.EndpointID = reg.EndpointID
		if err := st.InsertObservation(ctx, row); err != nil {
			t.Fatal(err)
		}
	}
	// "removed" is on a live registration that does not hold it: as when
	// RemoveObservation's delete failed.
	for _, tok := range []string{"old-reg", "removed"} {
		if _, _, err := r.LookupObservation(ctx, []byte(tok)); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("%s: %v", tok, err)
		}
		if _, err := st.GetObservation(ctx, []byte(tok)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still stored: %v", tok, err)
		}
	}
	if _, ok := r.Get(reg.ID); !ok || r.Len() != 1 {
		t.Error("the live registration was disturbed")
	}
}

// A token is unique across the store, also against observations of
// registrations not restored yet, and must be 1 to 8 bytes.
func TestAddObservationChecks(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	a, _ := r.Register(ctx, req("a", 1000))
	observe(t, r, a, "tok-1", temp)

	r2 := registry.New(st, registry.Config{Clock: c})
	b, _ := r2.Register(ctx, req("b", 1001))
	if err := r2.AddObservation(ctx, registry.Observation{Token: "tok-1", RegistrationID: b.ID, Paths: []lwm2m.Path{temp}}); err == nil {
		t.Error("token of an unrestored observation accepted again")
	}
	if _, _, ok := r2.Observation([]byte("tok-1")); ok {
		t.Error("refused observation is in memory")
	}
	for _, tok := range []string{"", "123456789"} {
		err := r2.AddObservation(ctx, registry.Observation{Token: tok, RegistrationID: b.ID, Paths: []lwm2m.Path{temp}})
		if err == nil || errors.Is(err, registry.ErrNotFound) {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	// An observation on a registration that is only in the store is
	// refused until the registration is looked up.
	if err := r2.AddObservation(ctx, registry.Observation{Token: "tok-3", RegistrationID: a.ID, Paths: []lwm2m.Path{temp}}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("observation on an unrestored registration: %v", err)
	}
}

// Many notifications of one registration arriving at once after a restart
// restore it once, and all find their observations.
func TestLookupObservationConcurrent(t *testing.T) {
	r, st, c, _ := setup(t, 0)
	ctx := context.Background()
	reg, _ := r.Register(ctx, req("a", 1000))
	tokens := []string{"t0", "t1", "t2", "t3"}
	for i, tok := range tokens {
		observe(t, r, reg, tok, lwm2m.NewPath(3303, uint16(i), 5700))
	}
	r2 := registry.New(st, registry.Config{Clock: c})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			tok := tokens[i%len(tokens)]
			o, greg, err := r2.LookupObservation(ctx, []byte(tok))
			if err != nil || o.Token != tok || greg.ID != reg.ID {
				t.Errorf("%s: %+v %+v %v", tok, o, greg, err)
			}
		})
	}
	wg.Wait()
	if r2.Len() != 1 || len(r2.Observations(reg.ID)) != len(tokens) {
		t.Errorf("%d registrations, %d observations", r2.Len(), len(r2.Observations(reg.ID)))
	}
}

func TestObservationDoesNotAllocate(t *testing.T) {
	r, _, _, _ := setup(t, 0)
	reg, _ := r.Register(context.Background(), req("a", 1000))
	observe(t, r, reg, "tok-1", temp)
	tok := []byte("tok-1")
	if n := testing.AllocsPerRun(100, func() {
		if _, _, ok := r.Observation(tok); !ok {
			t.Fatal("missed")
		}
	}); n != 0 {
		t.Errorf("Observation allocates %v times", n)
	}
}

// BenchmarkLookupObservation measures the notification lookup of a token
// in memory and of an unknown token, which costs a query of the store
// (SQLite file, 1,000 stored observations).
func BenchmarkLookupObservation(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "db.sqlite"), store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	r := registry.New(st, registry.Config{})
	for i := range 1000 {
		reg, err := r.Register(ctx, req(fmt.Sprintf("ep-%d", i), uint16(1000+i)))
		if err != nil {
			b.Fatal(err)
		}
		o := registry.Observation{Token: fmt.Sprintf("t%07d", i), RegistrationID: reg.ID, Paths: []lwm2m.Path{temp}}
		if err := r.AddObservation(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("memory", func(b *testing.B) {
		tok := []byte("t0000500")
		for b.Loop() {
			if _, _, err := r.LookupObservation(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unknown", func(b *testing.B) {
		tok := []byte("unknown!")
		for b.Loop() {
			if _, _, err := r.LookupObservation(ctx, tok); !errors.Is(err, registry.ErrNotFound) {
				b.Fatal(err)
			}
		}
	})
}
