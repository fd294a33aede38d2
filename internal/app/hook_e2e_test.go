package app

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// TestCommitHookSeesEveryValueOnce runs a fleet against the real App with
// a hook on its ingest writer (the "values committed" feed that firmware
// updates and webhooks listen to) and a bus subscriber that never reads
// (a live view that falls behind): the bus drops, the hook gets every
// value stored, once, in the order of the history.
func TestCommitHookSeesEveryValueOnce(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	a, err := New(ctx, cfg, testLogger(t), Tuning{OpTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		seqs    []uint64
		missed  uint64
		hookVal []storetest.HistoryRow
	)
	a.Ingest.OnCommit("test", func(c ingest.Commit) {
		mu.Lock()
		defer mu.Unlock()
		seqs = append(seqs, c.Seq)
		missed += c.Missed
		for v := range c.Values() {
			r := storetest.HistoryRow{EndpointID: v.EndpointID, Path: v.Path.String(), ReceivedAt: v.ReceivedAt.UnixMilli()}
			if v.Value.Type() == lwm2m.TypeFloat {
				r.Float = sql.NullFloat64{Float64: v.Value.FloatValue(), Valid: true}
			}
			hookVal = append(hookVal, r)
		}
	})
	slow := a.Events.Subscribe(1, nil) // never read
	defer slow.Close()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := &server{App: a, cfg: cfg, base: "http://" + a.HTTPAddr()}
	t.Cleanup(s.stop)

	f := newFleet(t, s, 10, func(c *simulator.Config) {
		c.ValueInterval = 50 * time.Millisecond // notifications of the auto-observed values
		c.SendInterval = 100 * time.Millisecond
	})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.Start(fctx); err != nil {
		t.Fatal(err)
	}
	// The fleet reports until the hook has seen 1,000 values, then
	// de-registers; Stop closes the ingest writer, which waits for the
	// hook.
	eventually(t, 30*time.Second, "1,000 values", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hookVal) >= 1000
	})
	f.Stop(fctx)
	s.stop()

	if slow.Dropped() == 0 {
		t.Fatal("the bus subscriber that never reads dropped nothing: no load")
	}
	st, err := OpenStore(ctx, cfg, testLogger(t), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := storetest.History(t, st.DB())
	mu.Lock()
	defer mu.Unlock()
	if len(stored) < 1000 {
		t.Fatalf("only %d values stored", len(stored))
	}
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("commit %d has Seq %d", i, seq)
		}
	}
	if missed != 0 {
		t.Fatalf("the hook missed %d commits", missed)
	}
	if !slices.Equal(hookVal, stored) {
		t.Fatalf("the hook got %d values, not the %d stored in their order (bus dropped %d)\nhook:   %.5v\nstored: %.5v",
			len(hookVal), len(stored), slow.Dropped(), hookVal, stored)
	}
	t.Logf("%d values in %d commits; the bus subscriber dropped %d events", len(stored), len(seqs), slow.Dropped())
}
