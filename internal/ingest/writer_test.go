package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

func openStore(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func endpoint(t testing.TB, st *store.Store, name string) int64 {
	t.Helper()
	ep, err := st.UpsertEndpointRegistration(context.Background(), store.EndpointRegistration{
		Name: name, RegistrationID: name, Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	return ep.ID
}

var temp = lwm2m.NewPath(3303, 0, 5700)

func TestWriteReturnsAfterCommit(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "a")
	w := ingest.New(st, ingest.Config{})
	w.Start()
	defer w.Close()
	ctx := context.Background()
	for i := range 5 {
		it := ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(float64(i))}}, time.Now())
		if err := w.Write(ctx, it); err != nil {
			t.Fatal(err)
		}
		vs, err := st.LatestResources(ctx, id, temp)
		if err != nil || len(vs) != 1 || vs[0].Value.FloatValue() != float64(i) {
			t.Fatalf("after Write %d: %+v %v", i, vs, err)
		}
	}
}

func TestConcurrentWritesShareBatches(t *testing.T) {
	st := openStore(t)
	ids := make([]int64, 50)
	for i := range ids {
		ids[i] = endpoint(t, st, "ep"+string(rune('A'+i)))
	}
	w := ingest.New(st, ingest.Config{MaxDelay: 20 * time.Millisecond})
	w.Start()
	defer w.Close()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids)*10)
	for _, id := range ids {
		wg.Go(func() {
			for k := range 10 {
				it := ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(float64(k))}}, time.Now())
				errs <- w.Write(context.Background(), it)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := w.Stats()
	if s.Values != 500 || s.Items != 500 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Batches >= 250 {
		t.Fatalf("%d batches for 500 concurrent items: not batching", s.Batches)
	}
}

func TestBadItemFailsAlone(t *testing.T) {
	st := openStore(t)
	good := endpoint(t, st, "good")
	w := ingest.New(st, ingest.Config{MaxDelay: 50 * time.Millisecond})
	w.Start()
	defer w.Close()
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Go(func() {
		goodErr = w.Write(context.Background(), ingest.Report(good, ingest.KindNotify,
			[]lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, time.Now()))
	})
	wg.Go(func() {
		// No endpoint 9999: the foreign key fails the batch.
		badErr = w.Write(context.Background(), ingest.Report(9999, ingest.KindNotify,
			[]lwm2m.Record{{Path: temp, Value: lwm2m.Float(2)}}, time.Now()))
	})
	wg.Wait()
	if goodErr != nil || badErr == nil {
		t.Fatalf("good: %v, bad: %v", goodErr, badErr)
	}
	vs, _ := st.LatestResources(context.Background(), good, temp)
	if len(vs) != 1 {
		t.Fatalf("good value not stored: %+v", vs)
	}
	if s := w.Stats(); s.Failed != 1 || s.Items != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReportEvents(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "ev")
	w := ingest.New(st, ingest.Config{})
	w.Start()
	defer w.Close()
	t1 := time.Unix(1_700_000_000, 0).UTC()
	recv := time.Now().UTC().Truncate(time.Millisecond)
	it := ingest.Report(id, ingest.KindSend, []lwm2m.Record{
		{Path: temp, Value: lwm2m.Float(1), Time: t1},
		{Path: temp, Value: lwm2m.Float(2), Time: t1.Add(time.Minute)},
		{Path: lwm2m.NewPath(3, 0, 7, 1), Value: lwm2m.Int(5)},
	}, recv)
	if it.Event.Kind != ingest.KindSend || !it.Event.Time.Equal(t1.Add(time.Minute)) {
		t.Fatalf("event %+v", it.Event)
	}
	if one := ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, recv); one.Event.Kind != "" {
		t.Fatalf("one value made an event: %+v", one.Event)
	}
	// A Send is an event even of one value, timed by its device time, or
	// by its reception without one; so is a group (a composite
	// notification) of one value.
	if one := ingest.Report(id, ingest.KindSend, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1), Time: t1}}, recv); one.Event.Kind != ingest.KindSend || !one.Event.Time.Equal(t1) {
		t.Fatalf("Send of one value: event %+v", one.Event)
	}
	if one := ingest.Report(id, ingest.KindSend, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, recv); one.Event.Kind != ingest.KindSend || !one.Event.Time.Equal(recv) {
		t.Fatalf("Send of one value without time: event %+v", one.Event)
	}
	if one := ingest.ReportGroup(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, recv); one.Event.Kind != ingest.KindNotify || !one.Event.Time.Equal(recv) {
		t.Fatalf("group of one value: event %+v", one.Event)
	}
	if none := ingest.ReportGroup(id, ingest.KindNotify, nil, recv); none.Event.Kind != "" {
		t.Fatalf("empty group made an event: %+v", none.Event)
	}
	if err := w.Write(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListEvents(context.Background(), id, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %+v %v", evs, err)
	}
	vals, err := st.EventResources(context.Background(), evs[0].ID)
	if err != nil || len(vals) != 3 {
		t.Fatalf("event values %+v %v", vals, err)
	}
}

func TestClose(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "c")
	w := ingest.New(st, ingest.Config{MaxDelay: time.Second})
	w.Start()
	done := make(chan error, 1)
	go func() {
		done <- w.Write(context.Background(), ingest.Report(id, ingest.KindNotify,
			[]lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, time.Now()))
	}()
	// Close commits what was accepted, without waiting for MaxDelay.
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Close took %v", d)
	}
	err := w.Write(context.Background(), ingest.Item{Values: []store.ResourceValue{{EndpointID: id, Path: temp, Value: lwm2m.Float(2)}}})
	if !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	w.Close() // twice is fine
}

func TestWriteHonoursContext(t *testing.T) {
	st := openStore(t)
	w := ingest.New(st, ingest.Config{Queue: 1})
	// Not started: the queue fills and Write waits for ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	it := ingest.Item{Values: []store.ResourceValue{{EndpointID: 1, Path: temp, Value: lwm2m.Float(2)}}}
	err := w.Write(ctx, it)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write on a stalled writer: %v", err)
	}
}

// TestFailing: a bad item (a conflict) is not a failure of the store; a
// database that takes no more writes is, until a Write succeeds again.
func TestFailing(t *testing.T) {
	st := openStore(t)
	id := endpoint(t, st, "a")
	w := ingest.New(st, ingest.Config{})
	w.Start()
	defer w.Close()
	ctx := context.Background()
	if err := w.Write(ctx, ingest.Report(9999, ingest.KindNotify,
		[]lwm2m.Record{{Path: temp, Value: lwm2m.Float(2)}}, time.Now())); err == nil {
		t.Fatal("a value of no endpoint was stored")
	}
	if at, err := w.Failing(); !at.IsZero() || err != nil {
		t.Fatalf("a conflict counted as a store failure: %v %v", at, err)
	}
	// The database file may not grow: the next batch cannot commit.
	full(t, st)
	before := time.Now()
	big := make([]lwm2m.Record, 2000)
	for i := range big {
		big[i] = lwm2m.Record{Path: lwm2m.NewPath(3303, uint16(i), 5700), Value: lwm2m.Float(float64(i))}
	}
	if err := w.Write(ctx, ingest.Report(id, ingest.KindNotify, big, time.Now())); err == nil {
		t.Fatal("a batch was stored into a full database")
	}
	if at, err := w.Failing(); at.Before(before) || err == nil {
		t.Fatalf("Failing %v, %v after a failed commit", at, err)
	}
	if _, err := st.WriteDB().Exec("PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, ingest.Report(id, ingest.KindNotify, big, time.Now())); err != nil {
		t.Fatal(err)
	}
	if at, err := w.Failing(); err != nil {
		t.Fatalf("Failing %v, %v after a successful commit", at, err)
	}
}

// full stops the SQLite database of st from growing, as a full disk does.
func full(t *testing.T, st *store.Store) {
	t.Helper()
	var pages int
	if err := st.WriteDB().QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteDB().Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
}

// An item whose NoCredential names an endpoint with credentials is
// refused with store.ErrCredentialRequired; the items batched with it are
// committed.
func TestWriteRefusesEndpointWithCredentials(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if _, err := st.CreateCredential(ctx, store.Credential{EndpointName: "secure", Kind: store.CredentialX509, CertCN: "secure"}); err != nil {
		t.Fatal(err)
	}
	secure, plain := endpoint(t, st, "secure"), endpoint(t, st, "plain")
	w := ingest.New(st, ingest.Config{MaxDelay: 50 * time.Millisecond})
	w.Start()
	defer w.Close()
	send := func(id int64, name string) ingest.Item {
		it := ingest.Report(id, ingest.KindSend, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}, {Path: temp, Value: lwm2m.Float(2)}}, time.Now())
		it.NoCredential = name
		return it
	}
	errs := make(chan error, 2)
	go func() { errs <- w.Write(ctx, send(secure, "secure")) }()
	go func() { errs <- w.Write(ctx, send(plain, "plain")) }()
	var refused, ok int
	for range 2 {
		switch err := <-errs; {
		case errors.Is(err, store.ErrCredentialRequired):
			refused++
		case err == nil:
			ok++
		default:
			t.Fatal(err)
		}
	}
	if refused != 1 || ok != 1 {
		t.Fatalf("%d refused, %d stored; want one each", refused, ok)
	}
	if evs, _ := st.ListEvents(ctx, secure, 10); len(evs) != 0 {
		t.Errorf("refused Send stored")
	}
	if evs, _ := st.ListEvents(ctx, plain, 10); len(evs) != 1 {
		t.Errorf("Send beside a refused one: %d events", len(evs))
	}
	if s := w.Stats(); s.Refused != 1 || s.Items != 1 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// An Update of a registration that is no longer the endpoint's live one
// fails its Write with store.ErrRegistrationGone and stores nothing; the
// items batched with it are committed.
func TestWriteReportsRegistrationGone(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	id := endpoint(t, st, "a") // registration "a"
	w := ingest.New(st, ingest.Config{MaxDelay: 50 * time.Millisecond})
	w.Start()
	defer w.Close()
	lt := time.Minute
	stale := ingest.Item{Update: &store.RegistrationUpdate{EndpointID: id, RegistrationID: "replaced",
		EndpointUpdate: store.EndpointUpdate{Lifetime: &lt}}}
	errs := make(chan error, 2)
	go func() { errs <- w.Write(ctx, stale) }()
	go func() {
		errs <- w.Write(ctx, ingest.Report(id, ingest.KindNotify, []lwm2m.Record{{Path: temp, Value: lwm2m.Float(1)}}, time.Now()))
	}()
	var gone, ok int
	for range 2 {
		switch err := <-errs; {
		case errors.Is(err, store.ErrRegistrationGone):
			gone++
		case err == nil:
			ok++
		default:
			t.Fatal(err)
		}
	}
	if gone != 1 || ok != 1 {
		t.Fatalf("%d gone, %d stored; want one each", gone, ok)
	}
	if ep, _ := st.GetEndpointByID(ctx, id); ep.Lifetime != time.Hour {
		t.Errorf("the stale Update changed the lifetime to %v", ep.Lifetime)
	}
}
