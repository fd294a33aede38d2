package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/httpd"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/version"
)

// shutdownGrace bounds how long in-flight work may take after a stop signal.
const shutdownGrace = 15 * time.Second

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

// serve runs the server until ctx ends. Start order: database, HTTP.
// Stop order is the reverse, the database closing last.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.UsesDevSecret() {
		log.Warn("using the public development secret key; set FLOWNEXUS_SECRET_KEY before exposing this server")
	}
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer func() {
		st.Close()
		log.Info("database closed")
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	web := httpd.New(httpd.Options{
		AllowedHosts: cfg.AllowedHosts,
		Version:      version.Version,
		Commit:       version.Revision(),
		Ping:         st.DB().PingContext,
		Registry:     reg,
		Logger:       log,
	})
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	log.Info("HTTP listening", "addr", ln.Addr().String(), "version", version.Version)
	errc := make(chan error, 1)
	go func() { errc <- web.Serve(ln) }()

	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace)
	case err := <-errc:
		return fmt.Errorf("HTTP server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := web.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown incomplete", "err", err)
	}
	<-errc
	log.Info("HTTP stopped")
	return nil
}

// openStore prepares the data directory (SQLite), opens the database and
// checks its schema. With migrate it applies pending migrations; without,
// a database that needs them is an error. A database written by a newer
// flownexus is always refused.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (*store.Store, error) {
	if !cfg.IsPostgres() {
		if err := prepareDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(ctx, cfg.Database(), store.Options{})
	if err != nil {
		return nil, err
	}
	err = st.CheckSchema(ctx)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrSchemaOutdated) && migrate:
		from, to, verr := st.SchemaVersion(ctx)
		if verr == nil {
			log.Info("migrating database", "from", from, "to", to)
		}
		if _, err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	default:
		st.Close()
		return nil, err
	}
	return st, nil
}

// prepareDir creates the data directory and checks it is writable, so a
// bad directory fails at start with one clear line.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
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
