package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
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

const fwCampaignUsage = "fw campaign create --version V [--endpoints EP,EP… | --from-version V] [--name N] [--method M] [--protocol P] " +
	"[--concurrency N] [--rate N] [--retries N] [--retry-delay D] | fw campaign list | fw campaign show ID [--devices] | " +
	"fw campaign pause|resume|cancel ID"

// fwCampaign is `fw campaign …`: create, list, show, pause, resume and
// cancel firmware campaigns, which the running server carries out.
func fwCampaign(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, fwCampaignUsage)
	}
	var r fwupdate.CampaignRequest
	var endpoints, method, protocol string
	var retries int
	var devices bool
	extra := func(fs *flag.FlagSet) {
		switch args[0] {
		case "create":
			fs.StringVar(&r.Version, "version", "", "version of an uploaded image (required)")
			fs.StringVar(&r.Name, "name", "", "a name for the campaign")
			fs.StringVar(&endpoints, "endpoints", "", "comma-separated endpoint names; without them every endpoint with object 5 not on the version")
			fs.StringVar(&r.Filter.FirmwareVersion, "from-version", "", "only endpoints that last reported this firmware version (/3/0/3)")
			fs.StringVar(&method, "method", "auto", "pull, push or auto")
			fs.StringVar(&protocol, "protocol", "auto", "coap, coaps, http, https or auto")
			fs.IntVar(&r.Concurrency, "concurrency", fwupdate.DefaultConcurrency, "updates running at once at most")
			fs.IntVar(&r.RatePerMinute, "rate", fwupdate.DefaultRatePerMinute, "updates started a minute at most")
			fs.IntVar(&retries, "retries", fwupdate.DefaultMaxRetries, "further updates of a device whose update failed")
			fs.DurationVar(&r.RetryDelay, "retry-delay", fwupdate.DefaultRetryDelay, "wait before a retry")
		case "show":
			fs.BoolVar(&devices, "devices", false, "list every device with its status")
		}
	}
	cfg, pos, err := loadConfig(iox, "fw campaign "+args[0], args[1:], extra)
	if err != nil {
		return err
	}
	want, known := map[string]int{"create": 0, "list": 0, "show": 1, "pause": 1, "resume": 1, "cancel": 1}[args[0]]
	if !known {
		return fmt.Errorf("%w: unknown fw campaign command %q: %s", errUsage, args[0], fwCampaignUsage)
	}
	if len(pos) != want || (args[0] == "create" && r.Version == "") {
		return fmt.Errorf("%w: %s", errUsage, fwCampaignUsage)
	}
	var id int64
	if want == 1 {
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil {
			return fmt.Errorf("%w: campaign id %q is not a number", errUsage, pos[0])
		}
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
	switch args[0] {
	case "create":
		if endpoints != "" {
			r.Endpoints = strings.Split(endpoints, ",")
		}
		r.Method, r.Protocol = strings.TrimPrefix(method, "auto"), strings.TrimPrefix(protocol, "auto")
		r.MaxRetries = retries
		if retries == 0 {
			r.MaxRetries = -1 // none
		}
		c, err := u.CreateCampaign(ctx, r)
		if err != nil {
			return err
		}
		if err := audit(ctx, st, "firmware.campaign.create", strconv.FormatInt(c.ID, 10), map[string]any{"version": c.Version}); err != nil {
			return err
		}
		_, sum, err := u.GetCampaign(ctx, c.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(iox.Stderr, "firmware campaign %d to %s started for %d devices; the running server carries it out\n",
			c.ID, c.Version, sum[fwupdate.DeviceWaiting])
		fmt.Fprintln(iox.Stdout, c.ID)
		return nil
	case "list":
		cs, err := st.ListFirmwareCampaigns(ctx, "", 1000, 0)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tVERSION\tSTATE\tWAITING\tRUNNING\tSUCCEEDED\tFAILED\tCANCELLED")
		for _, c := range cs {
			sum, err := st.CampaignSummary(ctx, c.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", c.ID, dash(c.Name), c.Version, c.State, sum[fwupdate.DeviceWaiting],
				sum[fwupdate.DeviceRunning], sum[fwupdate.DeviceSucceeded], sum[fwupdate.DeviceFailed], sum[fwupdate.DeviceCancelled])
		}
		return tw.Flush()
	case "show":
		c, sum, err := u.GetCampaign(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "campaign %d %s: %s to %s, concurrency %d, %d a minute, %d retries after %s\n",
			c.ID, dash(c.Name), c.State, c.Version, c.Concurrency, c.RatePerMinute, c.MaxRetries, c.RetryDelay)
		for _, s := range fwupdate.DeviceStates {
			fmt.Fprintf(iox.Stdout, "  %-10s %d\n", s, sum[s])
		}
		if !devices {
			return nil
		}
		ds, err := st.CampaignDevices(ctx, id, store.CampaignDeviceFilter{Limit: 1 << 30})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tSTATE\tATTEMPTS\tUPDATE\tERROR")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", d.Endpoint, d.State, d.Attempts, d.UpdateID, dash(d.Error))
		}
		return tw.Flush()
	}
	move := map[string]func(context.Context, int64) (store.FirmwareCampaign, error){
		"pause": u.PauseCampaign, "resume": u.ResumeCampaign, "cancel": u.CancelCampaign,
	}[args[0]]
	c, err := move(ctx, id)
	if err != nil {
		return err
	}
	if err := audit(ctx, st, "firmware.campaign."+args[0], strconv.FormatInt(id, 10), nil); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "firmware campaign %d %s\n", id, c.State)
	return nil
}
