package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/store"
)

// shutdownGrace bounds how long in-flight work may take after a stop
// signal: below the 10 s a container runtime (podman, docker) waits
// before it kills, so the DTLS sessions are saved in time (see App.Stop).
const shutdownGrace = 8 * time.Second

func runServe(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "serve", args, nil)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, pos)
	}
	log := newLogger(cfg, iox.Stderr)
	return serve(ctx, cfg, log)
}

// serve runs the server until ctx ends or a listener fails.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.UsesDevSecret() {
		log.Warn("using the public development secret key; set FLOWNEXUS_SECRET_KEY before exposing this server")
	}
	a, err := app.New(ctx, cfg, log, app.Tuning{})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace)
	case err := <-a.Done():
		runErr = fmt.Errorf("HTTP server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	a.Stop(sctx)
	return runErr
}

// openStore opens the database for the administration commands.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (*store.Store, error) {
	return app.OpenStore(ctx, cfg, log, migrate)
}

func runMigrate(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "migrate", args, nil)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: migrate takes no arguments", errUsage)
	}
	log := newLogger(cfg, iox.Stderr)
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer st.Close()
	cur, _, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "database is at schema version %d\n", cur)
	return nil
}
