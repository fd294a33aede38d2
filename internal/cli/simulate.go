package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
)

// fleetFlags are the simulator settings shared by simulate and demo.
type fleetFlags struct {
	devices  int
	lifetime time.Duration
	queue    bool
	window   time.Duration
	send     time.Duration
	values   time.Duration
	version  string
	seed     uint64
	imei     string
	drop     float64
	errRate  float64
	delay    time.Duration
}

func (ff *fleetFlags) register(fs *flag.FlagSet, devices int) {
	fs.IntVar(&ff.devices, "devices", devices, "number of simulated devices")
	fs.DurationVar(&ff.lifetime, "lifetime", 5*time.Minute, "registration lifetime")
	fs.BoolVar(&ff.queue, "queue", false, "queue mode (binding UQ): devices sleep between wakes")
	fs.DurationVar(&ff.window, "receive-window", 93*time.Second, "how long a queue-mode device stays reachable after it talked")
	fs.DurationVar(&ff.send, "send", 30*time.Second, "interval of LwM2M Send (POST /dp); 0 disables")
	fs.DurationVar(&ff.values, "value-interval", 5*time.Second, "interval of sensor value changes")
	fs.StringVar(&ff.version, "lwm2m", "1.1", "LwM2M version the devices register with (1.0, 1.1, 1.2)")
	fs.Uint64Var(&ff.seed, "seed", 1, "seed for values and faults")
	fs.StringVar(&ff.imei, "imei", simulator.DefaultBaseIMEI, "first 14 IMEI digits of device 0")
	fs.Float64Var(&ff.drop, "drop", 0, "share of server requests dropped (fault injection)")
	fs.Float64Var(&ff.errRate, "error-rate", 0, "share of server requests answered 5.00 (fault injection)")
	fs.DurationVar(&ff.delay, "delay", 0, "delay before answering server requests (fault injection)")
}

func (ff *fleetFlags) config(server string, log *slog.Logger) (simulator.Config, error) {
	v, err := lwm2m.ParseVersion(ff.version)
	if err != nil {
		return simulator.Config{}, fmt.Errorf("%w: --lwm2m: %v", errUsage, err)
	}
	binding := "U"
	if ff.queue {
		binding = "UQ"
	}
	return simulator.Config{
		Server: server, Devices: ff.devices, BaseIMEI: ff.imei, Lifetime: ff.lifetime, Binding: binding,
		Version: v, ValueInterval: ff.values, SendInterval: ff.send, ReceiveWindow: ff.window, Seed: ff.seed,
		Logger: log, Faults: simulator.Faults{DropRate: ff.drop, ErrorRate: ff.errRate, Delay: ff.delay},
	}, nil
}

// progressLine prints the fleet's state on one line.
func progressLine(w io.Writer) func(simulator.Stats) {
	return func(s simulator.Stats) {
		fmt.Fprintf(w, "registered %d/%d, updates %d, notifications %d, sends %d/%d acked, requests %d, errors %d\n",
			s.Registered, s.Devices, s.Updates, s.Notifications, s.SendsAcked, s.Sends, s.Requests, s.Errors)
	}
}

func runSimulate(ctx context.Context, iox IO, args []string) error {
	fs := flagSet(iox, "simulate")
	var ff fleetFlags
	ff.register(fs, 10)
	server := fs.String("server", "127.0.0.1:5683", "LwM2M server CoAP address host:port")
	duration := fs.Duration("duration", 0, "stop after this long; 0 runs until interrupted")
	every := fs.Duration("progress", 5*time.Second, "interval of the progress line; 0 disables")
	logLevel := fs.String("log-level", "warn", "device log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: simulate takes no arguments", errUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	cfg, err := ff.config(*server, slog.New(slog.NewTextHandler(iox.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		return err
	}
	if *every > 0 {
		cfg.Progress, cfg.ProgressInterval = progressLine(iox.Stdout), *every
	}
	fleet, err := simulator.NewFleet(cfg)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	fmt.Fprintf(iox.Stdout, "simulating %d LwM2M %s devices against %s (Ctrl-C stops and deregisters them)\n", ff.devices, ff.version, *server)
	return fleet.Run(ctx, 15*time.Second)
}
