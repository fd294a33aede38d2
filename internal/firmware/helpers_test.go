package firmware_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// openStore opens a migrated store: a SQLite file in a temporary
// directory, or PostgreSQL with postgres set (skipped without the
// variable).
func openStore(t testing.TB, postgres bool) *store.Store {
	t.Helper()
	url := filepath.Join(t.TempDir(), "db.sqlite")
	if postgres {
		url = storetest.PostgresURL(t)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// forEachEngine runs fn on SQLite and, when configured, PostgreSQL.
func forEachEngine(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openStore(t, false)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openStore(t, true)) })
}

func newImages(t testing.TB, st *store.Store, max int64) *firmware.Images {
	t.Helper()
	im, err := firmware.New(firmware.Config{Store: st, Dir: filepath.Join(t.TempDir(), "firmware"), MaxSize: max})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// pattern is n bytes that show a byte out of place.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

var tester = store.Actor{Name: "test"}

func upload(t testing.TB, im *firmware.Images, version string, data []byte) store.Firmware {
	t.Helper()
	f, err := im.Upload(context.Background(), tester, version, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("upload %s: %v", version, err)
	}
	return f
}

// dirFiles lists the firmware directory, hidden files included.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func join(s []string) string { return strings.Join(s, ",") }
