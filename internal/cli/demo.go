package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/simulator"
)

// runDemo is the one-command tour: a fresh database in its own data
// directory, an admin user and API token, the server, and a simulated
// fleet registering against it, until interrupted.
func runDemo(ctx context.Context, iox IO, args []string) error {
	var ff fleetFlags
	var keep bool
	cfg, pos, err := loadConfig(iox, "demo", args, func(fs *flag.FlagSet) {
		ff.register(fs, 25)
		fs.BoolVar(&keep, "keep", false, "keep the demo database of an earlier run instead of starting fresh")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: demo takes no arguments", errUsage)
	}
	// The demo owns a directory of its own inside the data directory, so a
	// fresh start never touches a real database.
	cfg.DataDir = filepath.Join(cfg.DataDir, "demo")
	if cfg.IsPostgres() {
		return fmt.Errorf("%w: demo runs on its own SQLite database; drop --database-url", errUsage)
	}
	if !keep {
		if err := os.RemoveAll(cfg.DataDir); err != nil {
			return fmt.Errorf("clearing the demo directory: %w", err)
		}
	}
	log := newLogger(cfg, iox.Stderr)
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	password, token, err := demoAdmin(ctx, a)
	if err != nil {
		a.Stop(ctx)
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		a.Stop(sctx)
	}()

	simCfg, err := ff.config(a.CoAPAddr().String(), newLogger(cfg, iox.Stderr).With("component", "simulator"))
	if err != nil {
		return err
	}
	simCfg.Progress, simCfg.ProgressInterval = progressLine(iox.Stdout), 10*time.Second
	fleet, err := simulator.NewFleet(simCfg)
	if err != nil {
		return err
	}
	base := "http://localhost:" + portOf(a.HTTPAddr())
	first := fleet.Device(0).Endpoint()
	fmt.Fprintf(iox.Stdout, `
flownexus demo: %d simulated LwM2M devices register with the server on CoAP %s.

  data directory  %s
  admin user      admin / %s
  API token       %s

Try:
  curl -s %s/healthz
  curl -s -H "Authorization: Bearer %s" %s/api/v1/endpoints
  curl -s -H "Authorization: Bearer %s" %s/api/v1/endpoints/%s
  curl -s -H "Authorization: Bearer %s" -H 'Content-Type: application/json' -d '{"path":"/3/0"}' %s/api/v1/endpoints/%s/read
  curl -s -H "Authorization: Bearer %s" -H 'Content-Type: application/json' -d '{"path":"/1/0/1","value":600}' %s/api/v1/endpoints/%s/write
  curl -s -H "Authorization: Bearer %s" '%s/api/v1/endpoints/%s/history?path=/3303/0/5700'
  curl -s %s/api/v1/openapi.json   (the API's description)
  curl -s %s/metrics

Ctrl-C stops the fleet (devices deregister) and the server.

`, ff.devices, a.CoAPAddr(), cfg.DataDir, password, token,
		base, token, base, token, base, first, token, base, first, token, base, first, token, base, first, base, base)
	return fleet.Run(ctx, 15*time.Second)
}

// demoAdmin creates the demo's admin user with a random password and an
// API token for it.
func demoAdmin(ctx context.Context, a *app.App) (password, token string, err error) {
	password = auth.NewSecretKey()[:16]
	hash, err := auth.HashPassword(password, auth.DefaultParams)
	if err != nil {
		return "", "", err
	}
	u, err := a.Store.GetUserByName(ctx, "admin")
	if err != nil {
		if u, err = a.Store.CreateUser(ctx, "admin", hash, true); err != nil {
			return "", "", err
		}
	} else if err := a.Store.SetPassword(ctx, u.ID, hash); err != nil {
		return "", "", err
	}
	token, tokenHash, prefix := auth.NewToken()
	if _, err := a.Store.CreateAPIToken(ctx, u.ID, "demo", tokenHash, prefix, time.Time{}); err != nil {
		return "", "", err
	}
	return password, token, nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
