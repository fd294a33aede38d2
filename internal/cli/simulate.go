package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/credential"
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

// fwFlags are simulate's settings of the devices' Firmware Update object.
type fwFlags struct {
	ca        string
	fail      int
	dropAt    int64
	chunk     int
	blockSize int
	protocols string
	delivery  string
	delay     time.Duration
}

func (fw *fwFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&fw.ca, "fw-ca", "", "PEM file of the CA certificates that verify https:// firmware servers (default: the system's)")
	fs.IntVar(&fw.fail, "fw-fail", 0, "make every firmware update fail with this Update Result (2 flash, 3 RAM, 4 connection lost, 5 integrity, 6 package type, 7 URI, 8 update failed, 9 protocol); 0 disables")
	fs.Int64Var(&fw.dropAt, "fw-drop-at", 0, "drop each firmware download's connection once after this many bytes (it resumes); 0 disables")
	fs.IntVar(&fw.chunk, "fw-chunk", simulator.DefaultFirmwareChunk, "bytes per HTTP Range request of a firmware download")
	fs.IntVar(&fw.blockSize, "fw-block-size", simulator.DefaultFirmwareBlock, "CoAP Block2 size of a firmware download: 16, 32, ..., 1024")
	fs.StringVar(&fw.protocols, "fw-protocols", "", "firmware download protocols the devices offer in /5/0/8: comma-separated coap, coaps, http, https or 0-3 (default coap,https, and coaps with DTLS credentials)")
	fs.StringVar(&fw.delivery, "fw-delivery", "both", "firmware delivery method in /5/0/9: pull (Package URI), push (Block1 to /5/0/0) or both (or 0, 1, 2)")
	fs.DurationVar(&fw.delay, "fw-delay", simulator.DefaultFirmwareDelay, "how long installing a firmware package takes, Execute /5/0/2 until the reboot")
}

// fwProtocolNames are /5/0/8's values by name.
var fwProtocolNames = map[string]int{"coap": 0, "coaps": 1, "http": 2, "https": 3}

// apply sets the firmware fields of cfg from the flags.
func (fw *fwFlags) apply(cfg *simulator.Config) error {
	if fw.ca != "" {
		pem, err := os.ReadFile(fw.ca)
		if err != nil {
			return fmt.Errorf("--fw-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: --fw-ca %s: no PEM certificate in it", errUsage, fw.ca)
		}
		cfg.FirmwareCA = pool
	}
	if fw.protocols != "" {
		for _, s := range strings.Split(fw.protocols, ",") {
			s = strings.ToLower(strings.TrimSpace(s))
			p, ok := fwProtocolNames[s]
			if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 3 {
				p, ok = n, true
			}
			if !ok {
				return fmt.Errorf("%w: --fw-protocols: %q is not coap, coaps, http, https or 0-3", errUsage, s)
			}
			if !slices.Contains(cfg.FirmwareProtocols, p) {
				cfg.FirmwareProtocols = append(cfg.FirmwareProtocols, p)
			}
		}
		if slices.Contains(cfg.FirmwareProtocols, 1) && cfg.PSK == nil && cfg.Certificate == nil {
			return fmt.Errorf("%w: --fw-protocols: coaps needs DTLS credentials (--psk-secret or --psk-file)", errUsage)
		}
	}
	switch d := strings.ToLower(fw.delivery); d {
	case "pull", "push", "both":
		cfg.FirmwareDelivery = d
	case "0", "1", "2":
		cfg.FirmwareDelivery = []string{"pull", "push", "both"}[d[0]-'0']
	default:
		return fmt.Errorf("%w: --fw-delivery %q: want pull, push or both", errUsage, fw.delivery)
	}
	if fw.fail != 0 && (fw.fail < 2 || fw.fail > 9) {
		return fmt.Errorf("%w: --fw-fail %d: want an Update Result in 2..9, or 0", errUsage, fw.fail)
	}
	if fw.dropAt < 0 || fw.chunk < 16 || fw.delay <= 0 {
		return fmt.Errorf("%w: --fw-drop-at must not be negative, --fw-chunk at least 16, --fw-delay positive", errUsage)
	}
	if fw.blockSize < 16 || fw.blockSize > 1024 || fw.blockSize&(fw.blockSize-1) != 0 {
		return fmt.Errorf("%w: --fw-block-size %d: want a power of two in 16..1024", errUsage, fw.blockSize)
	}
	cfg.FirmwareFail, cfg.FirmwareDropAt, cfg.FirmwareChunk, cfg.FirmwareBlockSize = fw.fail, fw.dropAt, fw.chunk, fw.blockSize
	cfg.FirmwareDelay = fw.delay
	return nil
}

// simFlags are the settings of simulate beyond the fleet's.
type simFlags struct {
	server    string
	duration  time.Duration
	every     time.Duration
	logLevel  string
	pskSecret string
	pskFile   string
	writePSK  string
	rebind    time.Duration
}

func runSimulate(ctx context.Context, iox IO, args []string) error {
	fs := flagSet(iox, "simulate")
	var ff fleetFlags
	var sf simFlags
	var fw fwFlags
	ff.register(fs, 10)
	fw.register(fs)
	fs.StringVar(&sf.server, "server", "", "LwM2M server: HOST:PORT, coap://HOST[:PORT] or coaps://HOST[:PORT] (default 127.0.0.1:5683, or 127.0.0.1:5684 with DTLS credentials)")
	fs.DurationVar(&sf.duration, "duration", 0, "stop after this long; 0 runs until interrupted")
	fs.DurationVar(&sf.every, "progress", 5*time.Second, "interval of the progress line; 0 disables")
	fs.StringVar(&sf.logLevel, "log-level", "warn", "device log level: debug, info, warn, error")
	fs.StringVar(&sf.pskSecret, "psk-secret", "", "talk DTLS-PSK: each device's identity is its endpoint name and its key the first 16 bytes of HMAC-SHA256(secret, endpoint name)")
	fs.StringVar(&sf.pskFile, "psk-file", "", "talk DTLS-PSK with the credentials of this CSV file (endpoint,psk-identity,psk-hex-key), one device a line; --devices defaults to its line count")
	fs.StringVar(&sf.writePSK, "write-psk-file", "", "write the fleet's PSK file (keys from --psk-secret, else random) to this new file, - for stdout, and exit: import it with 'flownexus credential import'")
	fs.DurationVar(&sf.rebind, "rebind", 0, "move every device to a new source port at this interval, as a NAT rebinding (DTLS devices keep their session by Connection ID); 0 disables")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: simulate takes no arguments", errUsage)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var level slog.Level
	if err := level.UnmarshalText([]byte(sf.logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	if sf.pskSecret != "" && sf.pskFile != "" {
		return fmt.Errorf("%w: give --psk-secret or --psk-file, not both", errUsage)
	}
	if sf.rebind < 0 {
		return fmt.Errorf("%w: --rebind %v is negative", errUsage, sf.rebind)
	}
	var entries []credential.PSKEntry
	if sf.pskFile != "" {
		if sf.writePSK != "" {
			return fmt.Errorf("%w: --write-psk-file makes a PSK file; --psk-file reads one", errUsage)
		}
		if set["imei"] {
			return fmt.Errorf("%w: --imei has no effect with --psk-file, which names the endpoints", errUsage)
		}
		var err error
		if entries, err = readPSKFile(sf.pskFile); err != nil {
			return err
		}
		switch {
		case !set["devices"]:
			ff.devices = len(entries)
		case ff.devices > len(entries):
			return fmt.Errorf("%w: --devices %d but %s lists %d", errUsage, ff.devices, sf.pskFile, len(entries))
		}
	}
	dtls := sf.pskSecret != "" || sf.pskFile != ""
	server, err := serverAddr(sf.server, dtls)
	if err != nil {
		return err
	}
	cfg, err := ff.config(server, slog.New(slog.NewTextHandler(iox.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		return err
	}
	switch {
	case entries != nil:
		cfg.Endpoint = func(i int) string { return entries[i].Endpoint }
		cfg.PSK = func(i int) simulator.PSK { return simulator.PSK{Identity: entries[i].Identity, Key: entries[i].Key} }
	case sf.pskSecret != "":
		cfg.PSK = derivedPSK(cfg, sf.pskSecret)
	}
	if sf.writePSK != "" {
		return writeFleetPSKFile(iox, cfg, ff.devices, sf.writePSK)
	}
	if err := fw.apply(&cfg); err != nil {
		return err
	}
	fleet, err := simulator.NewFleet(cfg)
	if err != nil {
		return err
	}
	if sf.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sf.duration)
		defer cancel()
	}
	transport := "CoAP"
	var dtlsFleet *simulator.Fleet
	if dtls {
		transport, dtlsFleet = "CoAP/DTLS-PSK", fleet
	}
	fmt.Fprintf(iox.Stdout, "simulating %d LwM2M %s devices against %s over %s (Ctrl-C stops and deregisters them)\n", ff.devices, ff.version, server, transport)
	run := &fleetRun{fleets: []*simulator.Fleet{fleet}, out: iox.Stdout, rebindEvery: sf.rebind}
	if sf.every > 0 {
		run.progress, run.progressEvery = progressLine(dtlsFleet), sf.every
	}
	return run.run(ctx)
}

// serverAddr turns simulate's --server into the UDP address the devices
// talk to: HOST:PORT as given, or a coap:// or coaps:// URI whose scheme
// must match whether the devices have DTLS credentials.
func serverAddr(s string, dtls bool) (string, error) {
	port := "5683"
	if dtls {
		port = "5684"
	}
	if s == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return "", fmt.Errorf("%w: --server %q: want HOST:PORT, coap://HOST[:PORT] or coaps://HOST[:PORT]", errUsage, s)
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%w: --server %q: want HOST:PORT, coap://HOST[:PORT] or coaps://HOST[:PORT]", errUsage, s)
	}
	switch {
	case u.Scheme == "coaps" && !dtls:
		return "", fmt.Errorf("%w: --server %s needs DTLS credentials: --psk-secret or --psk-file", errUsage, s)
	case u.Scheme == "coap" && dtls:
		return "", fmt.Errorf("%w: --server %s is plain CoAP but DTLS credentials are given: use coaps://", errUsage, s)
	case u.Scheme != "coap" && u.Scheme != "coaps":
		return "", fmt.Errorf("%w: --server %q: the scheme must be coap or coaps", errUsage, s)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// derivedPSK gives device i of cfg its endpoint name as PSK identity and
// the key derivePSKKey makes of it.
func derivedPSK(cfg simulator.Config, secret string) func(int) simulator.PSK {
	return func(i int) simulator.PSK {
		ep, _ := cfg.EndpointName(i) // NewFleet checked every device's name
		return simulator.PSK{Identity: ep, Key: derivePSKKey(secret, ep)}
	}
}

// readPSKFile reads the PSK file at name for simulate.
func readPSKFile(name string) ([]credential.PSKEntry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--psk-file: %w", err)
	}
	defer f.Close()
	entries, err := credential.ReadPSKFile(f)
	if err != nil {
		return nil, fmt.Errorf("--psk-file %s: %w", name, err)
	}
	return entries, nil
}

// writeFleetPSKFile writes the PSK file of the fleet cfg describes: its
// own keys when cfg has them (--psk-secret), else new random ones. A file
// is created new (mode 0600), never overwritten; "-" is stdout.
func writeFleetPSKFile(iox IO, cfg simulator.Config, devices int, name string) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	entries := make([]credential.PSKEntry, devices)
	for i := range entries {
		ep, err := cfg.EndpointName(i)
		if err != nil {
			return err
		}
		e := credential.PSKEntry{Endpoint: ep, Identity: ep}
		if cfg.PSK != nil {
			k := cfg.PSK(i)
			e.Identity, e.Key = k.Identity, k.Key
		} else {
			e.Key = randomPSKKey()
		}
		entries[i] = e
	}
	if name == "-" {
		return credential.WritePSKFile(iox.Stdout, entries)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--write-psk-file: %w", err)
	}
	if err := credential.WritePSKFile(f, entries); err != nil {
		f.Close()
		return fmt.Errorf("--write-psk-file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--write-psk-file: %w", err)
	}
	fmt.Fprintf(iox.Stdout, "wrote %d PSK credentials to %s\nadd them to the server with:  flownexus credential import %s\n", devices, name, name)
	return nil
}
