package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/store"
)

// The firmware update subcommands of `fw` (whose dispatch is in fw.go):
// they write to the database like the other administration commands, and
// the running server's job engine carries the updates out (on SQLite it
// finds an update started here within its poll interval, 5 s by default;
// on PostgreSQL at once).

const (
	fwUpdateUsage  = "fw update ENDPOINT --version V [--method auto|pull|push] [--protocol auto|coap|coaps|http|https]"
	fwUpdatesUsage = "fw updates [--endpoint EP] [--active] [--limit N]"
	fwCancelUsage  = "fw cancel ID|ENDPOINT"
)

// fwUpdate starts updating an endpoint to an image: `fw update ENDPOINT
// --version V`. It prints the update's id alone on stdout.
func fwUpdate(ctx context.Context, iox IO, args []string) error {
	var version, method, protocol string
	cfg, pos, err := loadConfig(iox, "fw update", args, func(fs *flag.FlagSet) {
		fs.StringVar(&version, "version", "", "version of an uploaded image (required)")
		fs.StringVar(&method, "method", "auto", "pull (the device downloads), push (Block1 write to /5/0/0) or auto (from the device's /5/0/9)")
		fs.StringVar(&protocol, "protocol", "auto", "download protocol of a pull: coap, coaps, http, https or auto (from the device's /5/0/8)")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 || version == "" {
		return fmt.Errorf("%w: %s", errUsage, fwUpdateUsage)
	}
	if method == "auto" {
		method = fwupdate.MethodAuto
	}
	if protocol == "auto" {
		protocol = fwupdate.ProtocolAuto
	}
	log := newLogger(cfg, iox.Stderr)
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := app.OfflineUpdater(st, cfg, log)
	if err != nil {
		return err
	}
	up, err := u.Start(ctx, pos[0], version, fwupdate.Options{Method: method, Protocol: protocol})
	if err != nil {
		return err
	}
	if err := audit(ctx, st, "firmware.update", pos[0], map[string]any{"update_id": up.ID, "version": up.Version}); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stderr, "firmware update %d of %q to %s started (%s); the running server carries it out\n",
		up.ID, pos[0], up.Version, up.State)
	fmt.Fprintln(iox.Stdout, up.ID)
	return nil
}

// fwUpdates lists firmware updates, newest first.
func fwUpdates(ctx context.Context, iox IO, args []string) error {
	var endpoint string
	var active bool
	var limit int
	cfg, pos, err := loadConfig(iox, "fw updates", args, func(fs *flag.FlagSet) {
		fs.StringVar(&endpoint, "endpoint", "", "only the updates of this endpoint")
		fs.BoolVar(&active, "active", false, "only the updates in progress")
		fs.IntVar(&limit, "limit", 100, "at most this many")
	})
	if err != nil {
		return err
	}
	if len(pos) != 0 || limit <= 0 {
		return fmt.Errorf("%w: %s", errUsage, fwUpdatesUsage)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	f := store.FirmwareUpdateFilter{ActiveOnly: active, Limit: limit}
	if endpoint != "" {
		e, err := st.GetEndpoint(ctx, endpoint)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("unknown endpoint %q", endpoint)
		}
		if err != nil {
			return err
		}
		f.EndpointID = e.ID
	}
	ups, err := st.ListFirmwareUpdates(ctx, f)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tVERSION\tSTATE\tMETHOD\tRESULT\tUPDATED")
	for _, up := range ups {
		name, ok := names[up.EndpointID]
		if !ok {
			if e, err := st.GetEndpointByID(ctx, up.EndpointID); err == nil {
				name = e.Name
			}
			names[up.EndpointID] = name
		}
		result := up.Result
		if up.Error != "" && up.Error != up.Result {
			result += ": " + up.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", up.ID, dash(name), up.Version, up.State, dash(up.Method),
			dash(result), up.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// fwCancel cancels an active update, by its id or by its endpoint's name.
func fwCancel(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "fw cancel", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s", errUsage, fwCancelUsage)
	}
	log := newLogger(cfg, iox.Stderr)
	st, err := openStore(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		e, err := st.GetEndpoint(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%q is neither an update id nor a known endpoint", pos[0])
		}
		if err != nil {
			return err
		}
		up, err := st.ActiveFirmwareUpdate(ctx, e.ID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("endpoint %q has no active firmware update", pos[0])
		}
		if err != nil {
			return err
		}
		id = up.ID
	}
	u, err := app.OfflineUpdater(st, cfg, log)
	if err != nil {
		return err
	}
	up, err := u.Cancel(ctx, id, 0)
	if err != nil {
		return err
	}
	if err := audit(ctx, st, "firmware.cancel", strconv.FormatInt(id, 10), map[string]any{"update_id": up.ID}); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "firmware update %d cancelled\n", up.ID)
	return nil
}
