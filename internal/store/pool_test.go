package store

import (
	"context"
	"sync"
	"testing"

	"github.com/flownexus/flownexus/internal/store/storetest"
)

// A burst of concurrent queries on PostgreSQL opens up to pgPoolSize
// connections and keeps them: returning a connection must not close it,
// or the next burst pays a new connection (TLS and SCRAM) per query.
func TestPostgresPoolKeepsConnections(t *testing.T) {
	s := openTestStore(t, storetest.PostgresURL(t), false)
	ctx := context.Background()
	burst := func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range pgPoolSize {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := s.DB().ExecContext(ctx, "SELECT pg_sleep(0.05)"); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	burst()
	opened := s.DB().Stats().OpenConnections
	if opened < pgPoolSize/2 {
		t.Fatalf("a burst of %d queries opened %d connections", pgPoolSize, opened)
	}
	burst()
	st := s.DB().Stats()
	if st.MaxIdleClosed != 0 || st.OpenConnections != opened {
		t.Errorf("after two bursts: %d connections closed as idle, %d open (first burst %d)",
			st.MaxIdleClosed, st.OpenConnections, opened)
	}
}
