package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// forEachEngineTwice runs fn with two Stores on one freshly migrated
// database, as two server nodes have: a SQLite file (a real one in a
// temporary directory) and, when FLOWNEXUS_TEST_POSTGRES_URL is set, a
// fresh PostgreSQL database.
func forEachEngineTwice(t *testing.T, fn func(t *testing.T, a, b *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		url := sqliteTestURL(t)
		fn(t, openTestStore(t, url, true), openTestStore(t, url, false))
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.PostgresURL(t)
		fn(t, openTestStore(t, url, true), openTestStore(t, url, false))
	})
}

// An Update or End naming a registration that is not the endpoint's live
// one stores nothing of its item and marks it Gone; one naming the live
// registration applies and returns the endpoint.
func TestIngestBatchStaleRegistration(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustEndpoint(t, s, "urn:dev:a")
		hist := func(id int64, p lwm2m.Path) []ResourceValue {
			return []ResourceValue{{EndpointID: id, Path: p, Value: lwm2m.Time(t0), ReceivedAt: t0}}
		}
		// a registers anew: its old registration ID is stale.
		if _, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:dev:a", RegistrationID: "a-new",
			Lifetime: 300 * time.Second, Binding: "UQ"}); err != nil {
			t.Fatal(err)
		}
		if err := s.IngestBatch(ctx, []IngestItem{{Observe: observation("a1", a.ID, "a-new")}}); err != nil {
			t.Fatal(err)
		}
		lt, binding := 30*time.Second, "U"
		var updated Endpoint
		items := []IngestItem{
			{Update: &RegistrationUpdate{EndpointID: a.ID, RegistrationID: a.RegistrationID,
				EndpointUpdate: EndpointUpdate{Lifetime: &lt, Binding: &binding, Address: "198.51.100.1:1"}},
				Updated: &updated, Values: hist(a.ID, lwm2m.NewPath(10240, 0, 2))},
			{End: &RegistrationEnd{EndpointID: a.ID, RegistrationID: a.RegistrationID}, Values: hist(a.ID, lwm2m.NewPath(10240, 0, 1))},
		}
		if err := s.IngestBatch(ctx, items); err != nil {
			t.Fatal(err)
		}
		if !items[0].Gone || !items[1].Gone || updated.ID != 0 {
			t.Errorf("stale Update and End: gone %v and %v, updated %+v", items[0].Gone, items[1].Gone, updated)
		}
		e, _ := s.GetEndpointByID(ctx, a.ID)
		if !e.Online || e.RegistrationID != "a-new" || e.Lifetime != 300*time.Second || e.Binding != "UQ" || e.Address != "" {
			t.Errorf("after stale Update and End: %+v", e)
		}
		if got := tokensOf(t, s, "a-new"); len(got) != 1 {
			t.Errorf("the live registration's observations: %q", got)
		}
		var n int
		if err := s.DB().QueryRow("SELECT count(*) FROM resource WHERE endpoint_id = $1", a.ID).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d history values of stale items stored (%v)", n, err)
		}

		// The live registration: updated, then ended.
		items = []IngestItem{{Update: &RegistrationUpdate{EndpointID: a.ID, RegistrationID: "a-new",
			EndpointUpdate: EndpointUpdate{Lifetime: &lt}}, Updated: &updated}}
		if err := s.IngestBatch(ctx, items); err != nil || items[0].Gone {
			t.Fatalf("Update of the live registration: %v, gone %v", err, items[0].Gone)
		}
		if updated.ID != a.ID || updated.Lifetime != lt || updated.Binding != "UQ" || updated.RegistrationID != "a-new" {
			t.Errorf("Updated %+v", updated)
		}
		items = []IngestItem{{End: &RegistrationEnd{EndpointID: a.ID, RegistrationID: "a-new"}}}
		if err := s.IngestBatch(ctx, items); err != nil || items[0].Gone {
			t.Fatalf("End of the live registration: %v, gone %v", err, items[0].Gone)
		}
		if e, _ := s.GetEndpointByID(ctx, a.ID); e.Online || e.RegistrationID != "" {
			t.Errorf("after End: %+v", e)
		}
		if got := tokensOf(t, s, "a-new"); len(got) != 0 {
			t.Errorf("observations of the ended registration: %q", got)
		}
		// Ended: an Update of it is Gone and does not bring it back.
		items = []IngestItem{{Update: &RegistrationUpdate{EndpointID: a.ID, RegistrationID: "a-new"}}}
		if err := s.IngestBatch(ctx, items); err != nil || !items[0].Gone {
			t.Fatalf("Update of an ended registration: %v, gone %v", err, items[0].Gone)
		}
		if e, _ := s.GetEndpointByID(ctx, a.ID); e.Online {
			t.Errorf("Update of an ended registration brought it online: %+v", e)
		}
	})
}

// Expiries run at once through two Stores on one database end each due
// registration exactly once: one returned endpoint, one history value,
// its observations deleted.
func TestExpireRegistrationsOnce(t *testing.T) {
	forEachEngineTwice(t, func(t *testing.T, a, b *Store) {
		ctx := context.Background()
		const n = 200
		var regs []any
		for i := range n {
			e := mustEndpoint(t, a, fmt.Sprintf("urn:dev:%d", i))
			regs = append(regs, e.RegistrationID)
			if err := a.IngestBatch(ctx, []IngestItem{{Observe: observation(fmt.Sprintf("t%d", i), e.ID, e.RegistrationID)}}); err != nil {
				t.Fatal(err)
			}
		}
		live := mustEndpoint(t, a, "urn:dev:live")
		if _, err := a.UpdateEndpointRegistration(ctx, live.ID, EndpointUpdate{Time: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		due := t0.Add(time.Hour)
		var wg sync.WaitGroup
		var mu sync.Mutex
		expired := map[string]int{}
		for _, s := range []*Store{a, b, a, b} {
			wg.Go(func() {
				eps, err := s.ExpireRegistrations(ctx, due, func(e Endpoint) []ResourceValue {
					return []ResourceValue{{EndpointID: e.ID, Path: lwm2m.NewPath(10240, 0, 1), Value: lwm2m.Time(due), ReceivedAt: due}}
				})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				for _, e := range eps {
					if !e.Online || e.RegistrationID == "" {
						t.Errorf("returned as %+v, want as before", e)
					}
					expired[e.Name]++
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(expired) != n {
			t.Errorf("%d endpoints expired, want %d", len(expired), n)
		}
		for name, k := range expired {
			if k != 1 {
				t.Errorf("%s expired %d times", name, k)
			}
		}
		var values, observations int
		if err := a.DB().QueryRow("SELECT count(*) FROM resource WHERE object_id = 10240").Scan(&values); err != nil {
			t.Fatal(err)
		}
		if err := a.DB().QueryRow("SELECT count(*) FROM observation").Scan(&observations); err != nil {
			t.Fatal(err)
		}
		if values != n || observations != 0 {
			t.Errorf("%d history values and %d observations left, want %d and 0", values, observations, n)
		}
		if e, _ := a.GetEndpointByID(ctx, live.ID); !e.Online {
			t.Error("the endpoint updated later expired too")
		}
	})
}

// SetHeard keeps the latest time per endpoint, skips endpoints that do not
// exist, and the records show it; a deleted endpoint takes its time along.
func TestSetHeard(t *testing.T) {
	forEachEngineTwice(t, func(t *testing.T, a, b *Store) {
		ctx := context.Background()
		x, y := mustEndpoint(t, a, "urn:dev:x"), mustEndpoint(t, a, "urn:dev:y")
		if r, err := b.GetRegistrationRecord(ctx, "urn:dev:x"); err != nil || !r.HeardAt.IsZero() || !r.LastHeard().Equal(r.LastSeen) {
			t.Fatalf("record before SetHeard: %+v, %v", r, err)
		}
		later := t0.Add(time.Hour)
		if err := a.SetHeard(ctx, []Heard{{x.ID, t0.Add(time.Minute)}, {x.ID, later}, {y.ID, t0.Add(time.Minute)}, {999999, later}}); err != nil {
			t.Fatal(err)
		}
		// Another node's older reading does not move it back.
		if err := b.SetHeard(ctx, []Heard{{x.ID, t0.Add(2 * time.Minute)}, {y.ID, later}}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			get  func() (RegistrationRecord, error)
			want time.Time
		}{
			{func() (RegistrationRecord, error) { return b.GetRegistrationRecord(ctx, "urn:dev:x") }, later},
			{func() (RegistrationRecord, error) { return b.GetRegistrationRecordByID(ctx, y.RegistrationID) }, later},
		} {
			r, err := c.get()
			if err != nil || !r.HeardAt.Equal(c.want) || !r.LastHeard().Equal(c.want) || r.Name == "" {
				t.Errorf("record %+v, %v; want heard at %v", r, err, c.want)
			}
		}
		if _, err := b.GetRegistrationRecordByID(ctx, "no such registration"); !errors.Is(err, ErrNotFound) {
			t.Errorf("record of an unknown registration: %v", err)
		}
		if err := a.DeleteEndpoint(ctx, x.ID); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := a.DB().QueryRow("SELECT count(*) FROM endpoint_heard").Scan(&left); err != nil || left != 1 {
			t.Errorf("%d heard times left after deleting one of two endpoints (%v)", left, err)
		}
		if err := a.SetHeard(ctx, []Heard{{x.ID, later}}); err != nil {
			t.Errorf("SetHeard of a deleted endpoint: %v", err)
		}
	})
}

// SetEndpointAddress changes the live registration only, and neither its
// lifetime's start nor the endpoint's online state.
func TestSetEndpointAddress(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:a")
		clockOf(s).Advance(time.Minute)
		if err := s.SetEndpointAddress(ctx, e.ID, e.RegistrationID, "198.51.100.1:9", TransportDTLS); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetEndpointByID(ctx, e.ID)
		if got.Address != "198.51.100.1:9" || got.Transport != TransportDTLS || !got.LastSeen.Equal(e.LastSeen) || !got.Online {
			t.Errorf("after SetEndpointAddress: %+v", got)
		}
		if err := s.SetEndpointAddress(ctx, e.ID, "stale", "198.51.100.1:10", TransportUDP); !errors.Is(err, ErrRegistrationGone) {
			t.Errorf("SetEndpointAddress of a stale registration: %v", err)
		}
		if err := s.SetEndpointOffline(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.SetEndpointAddress(ctx, e.ID, e.RegistrationID, "198.51.100.1:10", TransportUDP); !errors.Is(err, ErrRegistrationGone) {
			t.Errorf("SetEndpointAddress of an ended registration: %v", err)
		}
		if got, _ := s.GetEndpointByID(ctx, e.ID); got.Online || got.Address != "198.51.100.1:9" {
			t.Errorf("after refused SetEndpointAddress: %+v", got)
		}
		if err := s.SetEndpointAddress(ctx, e.ID, e.RegistrationID, "x", "tcp"); err == nil {
			t.Error("transport tcp accepted")
		}
	})
}

// BenchmarkSetHeard measures the liveness write a server node makes once
// a second (registry.WriteSeen): the heard times of 1,000 endpoints in one
// SetHeard, each newer than the stored one, on a SQLite file and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, PostgreSQL.
func BenchmarkSetHeard(b *testing.B) {
	ctx := context.Background()
	engines := map[string]func(testing.TB) string{"sqlite": sqliteTestURL, "postgres": storetest.PostgresURL}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, ids := benchStore(b, engines[name](b))
			hs := make([]Heard, len(ids))
			n := 0
			for b.Loop() {
				n++
				for i, id := range ids {
					hs[i] = Heard{EndpointID: id, At: t0.Add(time.Duration(n) * time.Second)}
				}
				if err := s.SetHeard(ctx, hs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "endpoints/s")
		})
	}
}

// BenchmarkIngestEnd measures the De-registers of 500 endpoints in one
// IngestBatch (each ends the endpoint's live registration, and records
// /10240/0/1), on a SQLite file and, when FLOWNEXUS_TEST_POSTGRES_URL is
// set, PostgreSQL. The Registers before each round are not timed.
func BenchmarkIngestEnd(b *testing.B) {
	ctx := context.Background()
	engines := map[string]func(testing.TB) string{"sqlite": sqliteTestURL, "postgres": storetest.PostgresURL}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := openTestStore(b, engines[name](b), true)
			const n = 500
			round := 0
			for b.Loop() {
				b.StopTimer()
				round++
				regs := make([]IngestItem, n)
				eps := make([]Endpoint, n)
				for i := range regs {
					regs[i] = IngestItem{Register: &EndpointRegistration{Name: fmt.Sprintf("urn:dev:%d", i), RegistrationID: fmt.Sprintf("r%d-%d", round, i)}, Registered: &eps[i]}
				}
				if err := s.IngestBatch(ctx, regs); err != nil {
					b.Fatal(err)
				}
				ends := make([]IngestItem, n)
				for i, e := range eps {
					ends[i] = IngestItem{End: &RegistrationEnd{EndpointID: e.ID, RegistrationID: e.RegistrationID},
						Values: []ResourceValue{{EndpointID: e.ID, Path: lwm2m.NewPath(10240, 0, 1), Value: lwm2m.Time(t0), ReceivedAt: t0}}}
				}
				b.StartTimer()
				if err := s.IngestBatch(ctx, ends); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
