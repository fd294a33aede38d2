package app

import (
	"context"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
	"github.com/flownexus/flownexus/internal/webhook"
)

// BenchmarkWebhookThroughput publishes b.N operation events on the
// server's bus, as the job queue does, with one webhook to one local
// receiver, and reports in the same run: the bus's publish rate
// (publish/s), the rate at which the event log recorded them (logged/s),
// the rate at which the receiver got them, signed (delivered/s, from the
// first publish to the last delivery), and the events the bus dropped
// before the log recorded them (dropped).
func BenchmarkWebhookThroughput(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchWebhooks(b, "") })
	b.Run("postgres", func(b *testing.B) { benchWebhooks(b, storetest.PostgresURL(b)) })
}

func benchWebhooks(b *testing.B, url string) {
	s := webhookServerOn(b, url, WebhookTuning{})
	ctx := context.Background()
	r := newReceiver(b, nil)
	admin, err := s.Store.GetUserByName(ctx, "admin")
	if err != nil {
		b.Fatal(err)
	}
	subj, err := s.Store.Subject(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := s.Webhooks.Create(ctx, subj, store.Actor{Name: "bench"}, webhook.Request{URL: r.srv.URL,
		Topics: []string{events.TopicOperation}, Secret: hookSecret}); err != nil {
		b.Fatal(err)
	}
	before := s.Webhooks.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: "urn:bench:1",
			Data: events.OperationEvent{ID: int64(i), Kind: "read", Status: "CONFIRMED", Attempts: 1}})
	}
	published := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	var st webhook.Stats
	for {
		st = s.Webhooks.Stats()
		if st.Logged-before.Logged+st.Dropped-before.Dropped >= uint64(b.N) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	logged := time.Since(start)
	want := int(st.Logged - before.Logged)
	for r.okCount() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	delivered := time.Since(start)
	b.StopTimer()
	if n := r.badRequests(); n != 0 {
		b.Fatalf("%d bad signatures", n)
	}
	b.ReportMetric(float64(b.N)/published.Seconds(), "publish/s")
	b.ReportMetric(float64(want)/logged.Seconds(), "logged/s")
	b.ReportMetric(float64(r.okCount())/delivered.Seconds(), "delivered/s")
	b.ReportMetric(float64(st.Dropped-before.Dropped), "dropped")
}
