package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/flownexus/flownexus/internal/config"
)

// The child server: a test that must kill a server (such as
// TestQueuedOperationsSurviveKill) runs the test binary again as a server
// process (childEnv set to its data directory) and kills it with SIGKILL,
// which no clean shutdown code survives.
const childEnv = "FLOWNEXUS_TEST_CHILD_SERVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChildServer(dir))
	}
	os.Exit(m.Run())
}

// runChildServer serves until killed, after printing "ready <http addr>
// <coap addr>".
func runChildServer(dir string) int {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTPListen, cfg.CoAPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CoAPSListen, cfg.FWListen = "", ""
	cfg.SecretKey = config.DevSecretKey
	ctx := context.Background()
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), queueOptions())
	if err == nil {
		err = a.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child server:", err)
		return 1
	}
	fmt.Printf("ready %s %s\n", a.HTTPAddr(), a.CoAPAddr())
	select {}
}
