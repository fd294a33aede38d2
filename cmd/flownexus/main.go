// Command flownexus is the flownexus device-management server and its
// administration tool; see `flownexus help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/flownexus/flownexus/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.OS(), os.Args[1:])
	stop()
	os.Exit(code)
}
