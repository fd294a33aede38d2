package store

import (
	"context"
	"testing"

	"github.com/flownexus/flownexus/internal/store/storetest"
)

// BenchmarkInsertWithoutValueCount is BenchmarkInsertResources with the
// value_count trigger dropped: the price of the overview's rollup is the
// difference between the two.
func BenchmarkInsertWithoutValueCount(b *testing.B) {
	ctx := context.Background()
	engines := map[string]func(testing.TB) string{"sqlite": sqliteTestURL, "postgres": storetest.PostgresURL}
	drop := map[string]string{"sqlite": "DROP TRIGGER resource_value_count",
		"postgres": "DROP TRIGGER resource_value_count ON resource"}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s, ids := benchStore(b, engines[name](b))
			if _, err := s.WriteDB().ExecContext(ctx, drop[name]); err != nil {
				b.Fatal(err)
			}
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
