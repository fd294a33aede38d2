package jobs

import (
	"context"
	"errors"
	"testing"

	"github.com/flownexus/flownexus/internal/store"
)

// TestMigrateRefusesNewerSchema: a job queue schema migrated by a newer
// flownexus (a River migration this one does not know) is refused, as a
// newer database schema is.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	forEachEngine(t, envOptions{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.st.WriteDB().ExecContext(ctx,
			"INSERT INTO river_migration (line, version) VALUES ('main', 999)"); err != nil {
			t.Fatal(err)
		}
		err := Migrate(ctx, e.st, testLogger())
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Migrate over a newer job queue schema: %v, want ErrSchemaTooNew", err)
		}
	})
}
