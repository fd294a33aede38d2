package ingest_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

// recorder is a hook that keeps what it gets.
type recorder struct {
	mu      sync.Mutex
	commits []ingest.Commit
}

func (r *recorder) hook(c ingest.Commit) {
	r.mu.Lock()
	r.commits = append(r.commits, c)
	r.mu.Unlock()
}

func (r *recorder) got() []ingest.Commit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.commits)
}

// hookHistory are the values of commits, in order, as the history rows
// they were stored as.
func hookHistory(cs []ingest.Commit) []storetest.HistoryRow {
	var out []storetest.HistoryRow
	for _, c := range cs {
		for v := range c.Values() {
			out = append(out, historyRow(v))
		}
	}
	return out
}

func historyRow(v store.ResourceValue) storetest.HistoryRow {
	r := storetest.HistoryRow{EndpointID: v.EndpointID, Path: v.Path.String(), ReceivedAt: v.ReceivedAt.UnixMilli()}
	if v.Value.Type() == lwm2m.TypeFloat {
		r.Float = sql.NullFloat64{Float64: v.Value.FloatValue(), Valid: true}
	}
	return r
}

// Every hook gets every commit once, numbered without gaps, in commit
// order, whatever the batching: a slow hook holds the writer back instead
// of missing commits, refused and failed items are left out, and a
// Register's values carry the endpoint it made.
func TestHooksGetEveryCommitOnceInOrder(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if _, err := st.CreateCredential(ctx, store.Credential{EndpointName: "secure", Kind: store.CredentialX509, CertCN: "secure"}); err != nil {
		t.Fatal(err)
	}
	secure := endpoint(t, st, "secure")
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = endpoint(t, st, fmt.Sprintf("ep%d", i))
	}
	w := ingest.New(st, ingest.Config{Logger: quiet, MaxDelay: 2 * time.Millisecond, HookQueue: 2, HookWait: time.Minute})
	var fast, slow recorder
	w.OnCommit("fast", fast.hook)
	w.OnCommit("slow", func(c ingest.Commit) {
		time.Sleep(time.Millisecond)
		slow.hook(c)
	})
	w.Start()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			for k := range 25 {
				recs := []lwm2m.Record{{Path: temp, Value: lwm2m.Float(float64(i*1000 + k))}}
				if k%5 == 0 { // now and then a report of several values
					recs = append(recs, lwm2m.Record{Path: lwm2m.NewPath(3304, 0, 5700), Value: lwm2m.Float(float64(-i*1000 - k))})
				}
				if err := w.Write(ctx, ingest.Report(id, ingest.KindNotify, recs, time.Now())); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() { // refused: the endpoint has credentials
		it := ingest.Report(secure, ingest.KindSend, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(0.5)}, {Path: temp, Value: lwm2m.Float(0.25)}}, time.Now())
		it.NoCredential = "secure"
		if err := w.Write(ctx, it); err == nil {
			t.Error("refused item stored")
		}
	})
	wg.Go(func() { // fails its batch, which is then committed item by item
		if err := w.Write(ctx, ingest.Report(9999, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(0.75)}}, time.Now())); err == nil {
			t.Error("value of no endpoint stored")
		}
	})
	var registered store.Endpoint
	wg.Go(func() { // values with EndpointID 0: the registered endpoint's
		at := time.Now()
		var err error
		registered, err = w.Register(ctx, store.EndpointRegistration{Name: "new", RegistrationID: "r-new", Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1"},
			[]store.ResourceValue{{Path: lwm2m.NewPath(10240, 0, 0), Value: lwm2m.Time(at), DeviceTime: at, ReceivedAt: at}})
		if err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	w.Close()

	stored := storetest.History(t, st.DB())
	if want := 20*25 + 20*5 + 1; len(stored) != want {
		t.Fatalf("%d values stored, want %d", len(stored), want)
	}
	stats := w.Stats()
	for name, r := range map[string]*recorder{"fast": &fast, "slow": &slow} {
		cs := r.got()
		if int64(len(cs)) != stats.Batches {
			t.Errorf("%s hook: %d commits, the writer made %d", name, len(cs), stats.Batches)
		}
		for i, c := range cs {
			if c.Seq != uint64(i+1) || c.Missed != 0 {
				t.Fatalf("%s hook: commit %d has Seq %d, Missed %d", name, i, c.Seq, c.Missed)
			}
			for _, it := range c.Items {
				if it.Refused || it.NoCredential != "" {
					t.Fatalf("%s hook got a refused item: %+v", name, it)
				}
				if it.Register != nil && (it.Registered == nil || it.Registered.ID != registered.ID || it.Values[0].EndpointID != registered.ID) {
					t.Fatalf("%s hook: Register item without its endpoint %d: %+v", name, registered.ID, it)
				}
			}
		}
		if got := hookHistory(cs); !slices.Equal(got, stored) {
			t.Errorf("%s hook: %d values, not the %d stored in their order\nhook:   %.5v\nstored: %.5v", name, len(got), len(stored), got, stored)
		}
	}
	if stats.HookMissed != 0 || stats.Failed != 1 || stats.Refused != 1 {
		t.Errorf("stats %+v", stats)
	}
}

// A hook that stops taking commits holds ingest up once, for HookWait;
// then it falls behind, and when it takes commits again it is told how
// many it missed. A stuck hook does not hold Close up longer than
// HookWait either.
func TestStuckHookHoldsIngestUpOnce(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "a")
	const wait = 300 * time.Millisecond
	w := ingest.New(st, ingest.Config{Logger: quiet, HookQueue: 1, HookWait: wait})
	entered := make(chan uint64, 100)
	release := make(chan struct{})
	var rec recorder
	w.OnCommit("stuck", func(c ingest.Commit) {
		entered <- c.Seq
		if c.Seq == 1 {
			<-release
		}
		rec.hook(c)
	})
	var other recorder
	w.OnCommit("other", other.hook)
	w.Start()
	ctx := context.Background()
	write := func(k int) time.Duration {
		t.Helper()
		start := time.Now()
		if err := w.Write(ctx, ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(float64(k))}}, time.Now())); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	write(1)
	if seq := <-entered; seq != 1 {
		t.Fatalf("hook entered with commit %d", seq)
	}
	write(2) // fills the hook's queue
	if d := write(3); d < wait {
		t.Fatalf("a write with the hook's queue full took %v: the writer did not wait for room (HookWait %v)", d, wait)
	}
	start := time.Now()
	for k := 4; k <= 10; k++ {
		write(k)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("7 writes behind a stuck hook took %v", d)
	}
	if s := w.Stats(); s.HookMissed != 8 {
		t.Fatalf("HookMissed %d, want 8 (commits 3 to 10)", s.HookMissed)
	}
	close(release)
	if seq := <-entered; seq != 2 {
		t.Fatalf("after release the hook got commit %d, want 2", seq)
	}
	write(11)
	if seq := <-entered; seq != 11 {
		t.Fatalf("the hook got commit %d after catching up, want 11", seq)
	}
	got := rec.got()
	if len(got) != 3 || got[2].Seq != 11 || got[2].Missed != 8 || got[1].Missed != 0 {
		t.Fatalf("stuck hook got %+v", got)
	}
	w.Close() // waits for the hooks
	// The other hook kept up throughout.
	if cs := other.got(); len(cs) != 11 || cs[10].Seq != 11 || cs[10].Missed != 0 {
		t.Fatalf("other hook got %d commits", len(cs))
	}

	// Stuck again, with commits waiting: Close gives up after HookWait.
	hold := make(chan struct{})
	defer close(hold)
	w2 := ingest.New(st, ingest.Config{Logger: quiet, HookQueue: 4, HookWait: wait})
	w2.OnCommit("stuck", func(ingest.Commit) { <-hold })
	w2.Start()
	for range 3 {
		if err := w2.Write(ctx, ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(0)}}, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	w2.Close()
	if d := time.Since(start); d < wait || d > 5*time.Second {
		t.Fatalf("Close with a stuck hook took %v, want HookWait (%v)", d, wait)
	}
}

// Close lets the hooks finish the commits they hold; a hook registered
// after Close gets nothing.
func TestCloseWaitsForHooks(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "a")
	w := ingest.New(st, ingest.Config{Logger: quiet, HookWait: time.Minute})
	var rec recorder
	w.OnCommit("slow", func(c ingest.Commit) {
		time.Sleep(20 * time.Millisecond)
		rec.hook(c)
	})
	w.Start()
	for k := range 5 {
		if err := w.Write(context.Background(), ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(float64(k))}}, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if n := len(rec.got()); n != 5 {
		t.Fatalf("after Close the hook had %d commits, want 5", n)
	}
	w.OnCommit("late", func(ingest.Commit) { t.Error("hook registered after Close called") })
}
