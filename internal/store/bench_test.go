package store

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/flownexus/flownexus/internal/store/storetest"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Ingest shape: a fleet of 1,000 endpoints with 20 resources each; one
// batch holds 1,000 values, 20 of each of 50 endpoints, as a server
// collects notifications for a short while and commits them together.
const (
	benchEndpoints = 1000
	benchPaths     = 20
	benchBatch     = 1000
)

func benchStore(b *testing.B, url string) (*Store, []int64) {
	s := openTestStore(b, url, true)
	ids := make([]int64, benchEndpoints)
	for i := range ids {
		ids[i] = mustEndpoint(b, s, fmt.Sprintf("urn:imei:%015d", i)).ID
	}
	return s, ids
}

// benchBatches returns a function producing the n-th batch.
func benchBatches(ids []int64) func(n int) []ResourceValue {
	vals := make([]ResourceValue, benchBatch)
	perBatch := benchBatch / benchPaths
	return func(n int) []ResourceValue {
		recv := t0.Add(time.Duration(n) * time.Second)
		for i := range vals {
			ep := ids[(n*perBatch+i/benchPaths)%len(ids)]
			vals[i] = ResourceValue{
				EndpointID: ep, Path: lwm2m.NewPath(3303, uint16(i%benchPaths), 5700),
				Value: lwm2m.Float(float64(n) + float64(i)/1000), DeviceTime: recv.Add(-time.Second), ReceivedAt: recv,
			}
		}
		return vals
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkInsertResources measures InsertResources: history rows with
// their index plus the resource_latest upsert, 1,000 values per
// transaction, on a real SQLite file (and on PostgreSQL when
// FLOWNEXUS_TEST_POSTGRES_URL is set).
func BenchmarkInsertResources(b *testing.B) {
	ctx := context.Background()
	engines := map[string]func(testing.TB) string{"sqlite": sqliteTestURL, "postgres": storetest.PostgresURL}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, ids := benchStore(b, engines[name](b))
			batch := benchBatches(ids)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := s.InsertResources(ctx, batch(i)); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

// BenchmarkInsertHistoryOnly is InsertResources without the
// resource_latest upsert: the price of keeping latest values is the
// difference to BenchmarkInsertResources/sqlite.
func BenchmarkInsertHistoryOnly(b *testing.B) {
	ctx := context.Background()
	s, ids := benchStore(b, sqliteTestURL(b))
	batch := benchBatches(ids)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rows, err := s.encodeResourceRows(batch(i))
		if err != nil {
			b.Fatal(err)
		}
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			args := make([]any, 0, insertChunk*resourceNCols)
			for chunk := range chunks(s, rows) {
				args = args[:0]
				for _, r := range chunk {
					args = append(args, r.args[:]...)
				}
				if _, err := s.execBulk(ctx, tx, bulkResource, len(chunk), args); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		s.prepareMissing(ctx)
	}
	reportRate(b)
}

// BenchmarkLatestResources compares the dashboard query, the latest
// values of one endpoint, read from resource_latest and computed from the
// history, with 50 values per path stored (a million rows).
func BenchmarkLatestResources(b *testing.B) {
	ctx := context.Background()
	s, ids := benchStore(b, sqliteTestURL(b))
	batch := benchBatches(ids)
	for i := range benchEndpoints / (benchBatch / benchPaths) * 50 {
		if err := s.InsertResources(ctx, batch(i)); err != nil {
			b.Fatal(err)
		}
	}
	ep := ids[len(ids)/2]
	b.Run("resource_latest", func(b *testing.B) {
		for b.Loop() {
			vs, err := s.LatestResources(ctx, ep, lwm2m.Root)
			if err != nil || len(vs) != benchPaths {
				b.Fatal(len(vs), err)
			}
		}
	})
	b.Run("from_history", func(b *testing.B) {
		// The best plain-SQL form on the history index: the newest row of
		// each path of the endpoint (SQLite's bare-column max).
		q := "SELECT path, max(received_at), value_float FROM resource WHERE endpoint_id = $1 GROUP BY path"
		for b.Loop() {
			rows, err := s.DB().QueryContext(ctx, q, ep)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n != benchPaths {
				b.Fatal(n)
			}
		}
	})
}

// BenchmarkIngestBatch measures IngestBatch with the items of a fleet
// registering and sending at once, 1,000 items per transaction: 200
// Registers (with their history value), 200 observations made on them,
// and 600 Sends of two values each, on SQLite and PostgreSQL.
func BenchmarkIngestBatch(b *testing.B) {
	ctx := context.Background()
	engines := map[string]func(testing.TB) string{"sqlite": sqliteTestURL, "postgres": storetest.PostgresURL}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, ids := benchStore(b, engines[name](b))
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				recv := t0.Add(time.Duration(n) * time.Second)
				items := make([]IngestItem, 0, 1000)
				regs := make([]Endpoint, 200)
				for i := range 200 {
					name := fmt.Sprintf("urn:imei:%015d", (n*200+i)%benchEndpoints)
					items = append(items, IngestItem{
						NoCredential: name,
						Register: &EndpointRegistration{Name: name, RegistrationID: fmt.Sprintf("r%d-%d", n, i),
							Address: "192.0.2.1:5683", Lifetime: time.Hour, Binding: "U", LwM2MVersion: "1.1", Time: recv},
						Registered: &regs[i],
						Values:     []ResourceValue{{Path: lwm2m.NewPath(10240, 0, 0), Value: lwm2m.Time(recv), ReceivedAt: recv}},
					})
				}
				for i := range 200 {
					ep := ids[(n*200+i)%benchEndpoints]
					items = append(items, IngestItem{Observe: &Observation{Token: fmt.Appendf(nil, "%04x%04x", n, i), EndpointID: ep,
						RegistrationID: fmt.Sprintf("o%d-%d", n, i), Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0, 5700)}}})
				}
				for i := range 600 {
					ep := ids[(n*600+i)%benchEndpoints]
					items = append(items, IngestItem{
						NoCredential: fmt.Sprintf("urn:imei:%015d", (n*600+i)%benchEndpoints),
						Event:        Event{EndpointID: ep, Kind: "send", ReceivedAt: recv},
						Values: []ResourceValue{
							{EndpointID: ep, Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(float64(i)), DeviceTime: recv},
							{EndpointID: ep, Path: lwm2m.NewPath(3304, 0, 5700), Value: lwm2m.Float(float64(-i)), DeviceTime: recv},
						},
					})
				}
				if err := s.IngestBatch(ctx, items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
