package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/flownexus/flownexus/internal/loadgen"
)

const loadUsage = `load: measure a CoAP/UDP LwM2M server under a fleet arriving at once
  load echo --listen HOST:PORT      a bare go-coap server that answers Register, Update,
                                    De-register and Send at once (the same-run baseline)
  load run --server HOST:PORT --devices N [--send 15s] [--deregister] [--lifetime S]
           [--flood-rate R --flood-for D] [--from 127.1.0.0/16] [--json]`

// runLoad runs "flownexus load echo|run".
func runLoad(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, loadUsage)
	}
	switch args[0] {
	case "echo":
		return runLoadEcho(ctx, iox, args[1:])
	case "run":
		return runLoadRun(ctx, iox, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(iox.Stdout, loadUsage)
		return nil
	}
	return fmt.Errorf("%w: unknown load command %q\n%s", errUsage, args[0], loadUsage)
}

func parseLoadFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: %s takes no arguments", errUsage, fs.Name())
	}
	return nil
}

func runLoadEcho(ctx context.Context, iox IO, args []string) error {
	fs := flagSet(iox, "load echo")
	listen := fs.String("listen", "127.0.0.1:5699", "UDP address to serve on")
	if err := parseLoadFlags(fs, args); err != nil {
		return err
	}
	e, err := loadgen.ListenEcho(*listen, slog.New(slog.NewTextHandler(iox.Stderr, nil)))
	if err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "echo server on %s (Ctrl-C stops it)\n", e.Addr())
	<-ctx.Done()
	return e.Close()
}

func runLoadRun(ctx context.Context, iox IO, args []string) error {
	fs := flagSet(iox, "load run")
	var cfg loadgen.Config
	var lifetime uint
	var asJSON bool
	fs.StringVar(&cfg.Server, "server", "", "CoAP/UDP server to load: HOST:PORT (required)")
	fs.IntVar(&cfg.Devices, "devices", 1000, "number of devices, each on its own UDP socket")
	fs.DurationVar(&cfg.Send, "send", 0, "after registering, send confirmable Sends back to back for this long; 0 skips")
	fs.BoolVar(&cfg.Deregister, "deregister", false, "de-register every device at the end")
	fs.UintVar(&lifetime, "lifetime", 3600, "registration lifetime in seconds (lt=)")
	fs.IntVar(&cfg.FloodRate, "flood-rate", 0, "during registration, also send this many Registers a second with new endpoint names from one extra socket")
	fs.DurationVar(&cfg.FloodFor, "flood-for", 10*time.Second, "how long the flood lasts")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.Func("from", "spread the devices over the addresses of this prefix, e.g. 127.1.0.0/16 on loopback, as devices behind many NATs (default: the system's source address)", func(v string) error {
		p, err := netip.ParsePrefix(v)
		cfg.From = p
		return err
	})
	if err := parseLoadFlags(fs, args); err != nil {
		return err
	}
	switch {
	case cfg.Server == "":
		return fmt.Errorf("%w: load run needs --server HOST:PORT", errUsage)
	case cfg.Devices <= 0:
		return fmt.Errorf("%w: --devices %d: want at least 1", errUsage, cfg.Devices)
	case lifetime == 0 || lifetime > 1<<32-1:
		return fmt.Errorf("%w: --lifetime %d: want 1 to 4294967295 seconds", errUsage, lifetime)
	case cfg.Send < 0:
		return fmt.Errorf("%w: --send %v is negative", errUsage, cfg.Send)
	case cfg.FloodRate < 0:
		return fmt.Errorf("%w: --flood-rate %d is negative", errUsage, cfg.FloodRate)
	case cfg.FloodFor <= 0:
		return fmt.Errorf("%w: --flood-for %v: want a positive duration", errUsage, cfg.FloodFor)
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return fmt.Errorf("%w: --server %q: want HOST:PORT", errUsage, cfg.Server)
	}
	cfg.Lifetime = uint32(lifetime)
	rep, err := loadgen.Run(ctx, cfg)
	if rep != nil {
		if asJSON {
			enc := json.NewEncoder(iox.Stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(rep); werr != nil {
				return errors.Join(err, werr)
			}
		} else if werr := rep.WriteText(iox.Stdout); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}
