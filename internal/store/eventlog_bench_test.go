package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/flownexus/flownexus/internal/store/storetest"
)

// BenchmarkAppendEvents appends events to the event log in batches of
// 1,000, as the recorder does under load; ns/op is per event and
// events/s the append rate.
func BenchmarkAppendEvents(b *testing.B) {
	data := json.RawMessage(`{"kind":"notify","values":[{"path":"/3303/0/5700","type":"float","value":21.5}]}`)
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			url := sqliteTestURL(b)
			if engine == "postgres" {
				url = storetest.PostgresURL(b)
			}
			s := openTestStore(b, url, true)
			ctx := context.Background()
			batch := make([]LoggedEvent, 1000)
			b.ResetTimer()
			for done := 0; done < b.N; done += len(batch) {
				n := min(len(batch), b.N-done)
				for i := range n {
					batch[i] = LoggedEvent{Topic: "values", Endpoint: "urn:imei:356938035643809", SiteID: 0, Data: data}
				}
				if err := s.AppendEvents(ctx, batch[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
