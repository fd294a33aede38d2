package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// runDemo is the one-command tour: a fresh database in its own data
// directory, an admin user and API token, the server, and a simulated
// fleet registering against it, until interrupted.
func runDemo(ctx context.Context, iox IO, args []string) error {
	var ff fleetFlags
	var keep bool
	var dtlsFlag optionalInt
	var flags *flag.FlagSet
	cfg, pos, err := loadConfig(iox, "demo", args, func(fs *flag.FlagSet) {
		flags = fs
		ff.register(fs, 25)
		fs.BoolVar(&keep, "keep", false, "keep the demo database of an earlier run instead of starting fresh")
		fs.Var(&dtlsFlag, "dtls-devices", "`number` of the devices that talk CoAP over DTLS-PSK, with credentials the demo creates (default a quarter; all when --coap-listen is empty)")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: demo takes no arguments", errUsage)
	}
	if ff.devices < 1 {
		return fmt.Errorf("%w: --devices %d: want at least 1", errUsage, ff.devices)
	}
	dtlsDevices := -1
	if dtlsFlag.set {
		if dtlsFlag.n < 0 {
			return fmt.Errorf("%w: --dtls-devices %d is negative", errUsage, dtlsFlag.n)
		}
		dtlsDevices = dtlsFlag.n
	}
	if dtlsDevices, err = demoDTLSDevices(cfg, ff.devices, dtlsDevices); err != nil {
		return err
	}
	demoAttrs := demoAutoObserveAttrs(&cfg, flags, iox.Env, ff.values)
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
	a, err := app.New(ctx, cfg, log, app.Tuning{})
	if err != nil {
		return err
	}
	password, token, err := demoAdmin(ctx, a)
	if err != nil {
		a.Stop(ctx)
		return err
	}
	simLog := newLogger(cfg, iox.Stderr).With("component", "simulator")
	// Plain devices come first, then the DTLS ones, numbered on from them.
	plainCfg, err := ff.config("", simLog)
	if err != nil {
		a.Stop(ctx)
		return err
	}
	naming, plainDevices := plainCfg, ff.devices-dtlsDevices // names all demo devices
	plainCfg.Devices = plainDevices
	dtlsCfg := plainCfg
	dtlsCfg.Devices = dtlsDevices
	dtlsCfg.Endpoint = func(i int) string {
		ep, _ := naming.EndpointName(plainDevices + i) // checked by demoPSKs
		return ep
	}
	psks, err := demoPSKs(ctx, a, naming, ff.devices, plainDevices)
	if err != nil {
		a.Stop(ctx)
		return err
	}
	operatorPassword, err := demoSites(ctx, a, naming, ff.devices)
	if err != nil {
		a.Stop(ctx)
		return err
	}
	dtlsCfg.PSK = func(i int) simulator.PSK { return psks[i] }
	if err := a.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		a.Stop(sctx)
	}()

	img, err := demoFirmware(ctx, a)
	if err != nil {
		return err
	}
	// The simulated devices trust the development CA of the firmware
	// server, as real devices are given it.
	if ca, err := demoFirmwareCA(cfg); err != nil {
		return err
	} else if ca != nil {
		plainCfg.FirmwareCA, dtlsCfg.FirmwareCA = ca, ca
	}
	run := &fleetRun{out: iox.Stdout, progressEvery: 10 * time.Second}
	var first string
	var dtlsFleet *simulator.Fleet
	if plainCfg.Devices > 0 {
		plainCfg.Server = a.CoAPAddr().String()
		f, err := simulator.NewFleet(plainCfg)
		if err != nil {
			return err
		}
		run.fleets, first = append(run.fleets, f), f.Device(0).Endpoint()
	}
	if dtlsCfg.Devices > 0 {
		dtlsCfg.Server = a.CoAPSAddr().String()
		f, err := simulator.NewFleet(dtlsCfg)
		if err != nil {
			return err
		}
		run.fleets, dtlsFleet = append(run.fleets, f), f
		if first == "" {
			first = f.Device(0).Endpoint()
		}
	}
	run.progress = progressLine(dtlsFleet)
	base := "http://localhost:" + portOf(a.HTTPAddr())
	// The dashboard and its login come first: what an operator opens.
	fmt.Fprintf(iox.Stdout, "Dashboard  %s/   log in as admin / %s\n", base, password)
	fmt.Fprintf(iox.Stdout, "           or as %s / %s (a Site User of %q: its devices only)\n",
		demoOperator, operatorPassword, demoSiteNames[0])
	fmt.Fprintf(iox.Stdout, "\nflownexus demo: %d simulated LwM2M devices register with the server", ff.devices)
	switch {
	case dtlsDevices == 0:
		fmt.Fprintf(iox.Stdout, " on CoAP %s.\n", a.CoAPAddr())
	case dtlsDevices == ff.devices:
		fmt.Fprintf(iox.Stdout, " on CoAP/DTLS %s with PSKs the demo created.\n", a.CoAPSAddr())
	default:
		fmt.Fprintf(iox.Stdout, ": %d on CoAP %s,\n%d on CoAP/DTLS %s with PSKs the demo created (the endpoints' \"transport\" says which).\n",
			plainCfg.Devices, a.CoAPAddr(), dtlsDevices, a.CoAPSAddr())
	}
	if demoAttrs != "" {
		fmt.Fprintf(iox.Stdout, "Auto-observe writes %s before observing, the devices' value interval, so their values show live\n"+
			"(`serve` writes pmin=60 so sleeping devices can sleep; --auto-observe-attrs sets it).\n", demoAttrs)
	}
	fmt.Fprintf(iox.Stdout, `
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
`, cfg.DataDir, password, token,
		base, token, base, token, base, first, token, base, first, token, base, first, token, base, first)
	if dtlsFleet != nil {
		fmt.Fprintf(iox.Stdout, "  curl -s -H \"Authorization: Bearer %s\" %s/api/v1/credentials   (the DTLS devices' PSK identities, never their keys)\n", token, base)
		if ep := dtlsFleet.Device(0).Endpoint(); ep != first {
			fmt.Fprintf(iox.Stdout, "  curl -s -H \"Authorization: Bearer %s\" -H 'Content-Type: application/json' -d '{\"path\":\"/3/0\"}' %s/api/v1/endpoints/%s/read   (over DTLS)\n", token, base, ep)
		}
	}
	fmt.Fprintf(iox.Stdout, "  curl -s -H \"Authorization: Bearer %s\" %s/api/v1/firmware   (firmware image %s is ready", token, base, img.Version)
	urls := a.Firmware.ImageURLs(img.Filename)
	for _, u := range []string{urls.HTTP, urls.CoAP, urls.CoAPS} {
		if u != "" {
			fmt.Fprintf(iox.Stdout, "; %s", u)
		}
	}
	fmt.Fprintln(iox.Stdout, ")")
	fmt.Fprintf(iox.Stdout, "  curl -s -H \"Authorization: Bearer %s\" -H 'Content-Type: application/json' -d '{\"endpoint\":\"%s\",\"version\":\"%s\"}' %s/api/v1/firmware/updates   (update one device; GET it to follow)\n",
		token, first, img.Version, base)
	fmt.Fprintf(iox.Stdout, "  curl -s -H \"Authorization: Bearer %s\" -H 'Content-Type: application/json' -d '{\"version\":\"%s\",\"concurrency\":5}' %s/api/v1/firmware/campaigns   (the whole fleet, five at a time)\n",
		token, img.Version, base)
	fmt.Fprintf(iox.Stdout, `  curl -N -H "Authorization: Bearer %s" %s/api/v1/events/stream   (live events; ?endpoint=%s for one device)
  curl -s %s/api/v1/openapi.json   (the API's description)
  curl -s %s/metrics

Ctrl-C stops the fleet (devices deregister) and the server.

`, token, base, first, base, base)
	return run.run(ctx)
}

// demoDTLSDevices returns how many of the demo's devices talk DTLS: want
// when given (-1: a quarter of them, or all when plain CoAP is off, none
// when DTLS is off).
func demoDTLSDevices(cfg config.Config, devices, want int) (int, error) {
	switch {
	case want > devices:
		return 0, fmt.Errorf("%w: --dtls-devices %d: want 0 to --devices (%d)", errUsage, want, devices)
	case want > 0 && cfg.CoAPSListen == "":
		return 0, fmt.Errorf("%w: --dtls-devices needs the DTLS listener: --coaps-listen is empty", errUsage)
	case want >= 0 && want < devices && cfg.CoAPListen == "":
		return 0, fmt.Errorf("%w: --coap-listen is empty: every device must talk DTLS (drop --dtls-devices)", errUsage)
	case want >= 0:
		return want, nil
	case cfg.CoAPSListen == "":
		if cfg.CoAPListen == "" {
			return 0, fmt.Errorf("%w: the demo needs --coap-listen or --coaps-listen", errUsage)
		}
		return 0, nil
	case cfg.CoAPListen == "":
		return devices, nil
	}
	return devices / 4, nil
}

// demoPSKs gives the demo devices from index from to devices (numbered as
// in cfg) new random PSKs, their endpoint names as identities, and stores
// them as the server's credentials. Credentials an earlier run (--keep)
// left on any demo device are replaced or removed first, so every device
// can talk the transport it has now.
func demoPSKs(ctx context.Context, a *app.App, cfg simulator.Config, devices, from int) ([]simulator.PSK, error) {
	endpoints := make(map[string]bool, devices)
	names := make([]string, devices)
	for i := range devices {
		ep, err := cfg.EndpointName(i)
		if err != nil {
			return nil, err
		}
		endpoints[ep], names[i] = true, ep
	}
	existing, err := a.Credentials.List(ctx)
	if err != nil {
		return nil, err
	}
	by := store.Actor{Name: "demo"}
	for _, c := range existing {
		if endpoints[c.Endpoint] {
			if err := a.Credentials.Remove(ctx, by, c.Endpoint); err != nil {
				return nil, err
			}
		}
	}
	psks := make([]simulator.PSK, 0, devices-from)
	for _, ep := range names[from:] {
		k := simulator.PSK{Identity: ep, Key: randomPSKKey()}
		if _, err := a.Credentials.Add(ctx, by, credential.AddRequest{Endpoint: ep, PSKIdentity: k.Identity, PSKKey: k.Key}); err != nil {
			return nil, fmt.Errorf("demo credentials: %w", err)
		}
		psks = append(psks, k)
	}
	return psks, nil
}

// The demo's sites (the first half of the fleet is in the first, the rest
// in the second) and its site user, a Site User of the first site who may
// see and operate its devices.
var demoSiteNames = [2]string{"north", "south"}

const demoOperator = "north-operator"

// demoSites makes the demo's sites, provisions the devices' names into
// them before the fleet starts (so each device is in its site when it
// registers), and makes the site user with a random password, returned.
func demoSites(ctx context.Context, a *app.App, cfg simulator.Config, devices int) (string, error) {
	by := store.AuditEntry{Actor: "demo"}
	var sites [2]store.Site
	for i, name := range demoSiteNames {
		st, err := a.Store.GetSiteByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			st, err = a.Store.CreateSite(ctx, name)
		}
		if err != nil {
			return "", fmt.Errorf("demo sites: %w", err)
		}
		sites[i] = st
	}
	names := make([]string, devices)
	for i := range devices {
		ep, err := cfg.EndpointName(i)
		if err != nil {
			return "", err
		}
		names[i] = ep
	}
	if _, err := a.Store.ProvisionEndpoints(ctx, names, by); err != nil {
		return "", fmt.Errorf("demo sites: %w", err)
	}
	half := (devices + 1) / 2
	for i, part := range [2][]string{names[:half], names[half:]} {
		if len(part) == 0 {
			continue
		}
		if _, err := a.Store.AssignEndpoints(ctx, store.Assignment{Names: part}, sites[i].ID, auth.Everything); err != nil {
			return "", fmt.Errorf("demo sites: %w", err)
		}
	}
	password := auth.NewSecretKey()[:16]
	hash, err := auth.HashPassword(password, auth.DefaultParams)
	if err != nil {
		return "", err
	}
	u, err := a.Store.GetUserByName(ctx, demoOperator)
	if errors.Is(err, store.ErrNotFound) {
		u, err = a.Store.CreateUser(ctx, demoOperator, hash, false)
	} else if err == nil {
		err = a.Store.SetPassword(ctx, u.ID, hash)
	}
	if err != nil {
		return "", fmt.Errorf("demo site user: %w", err)
	}
	flags, _ := auth.FlagsOf(auth.ViewOverview, auth.ViewData, auth.ViewFirmware, auth.PerformOperations)
	if err := a.Store.SetMembership(ctx, u.ID, sites[0].ID, auth.SiteUser, flags); err != nil {
		return "", fmt.Errorf("demo site user: %w", err)
	}
	return password, nil
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

// optionalInt is an int flag that knows whether it was given.
type optionalInt struct {
	n   int
	set bool
}

func (o *optionalInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.Itoa(o.n)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	o.n, o.set = n, true
	return nil
}

// demoAutoObserveAttrs gives the demo's auto-observe policy a pmin of the
// simulated devices' value interval (whole seconds, at least 1) instead
// of the default 60 s, so that the demo shows live values, unless
// --auto-observe-attrs or FLOWNEXUS_AUTO_OBSERVE_ATTRS chose the
// attributes. It returns the attributes it set, or "".
func demoAutoObserveAttrs(cfg *config.Config, fs *flag.FlagSet, env config.Env, values time.Duration) string {
	if _, ok := env("FLOWNEXUS_AUTO_OBSERVE_ATTRS"); ok {
		return ""
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "auto-observe-attrs" })
	if set {
		return ""
	}
	secs := int64((values + time.Second - 1) / time.Second)
	cfg.AutoObserveAttrs = "pmin=" + strconv.FormatInt(max(secs, 1), 10)
	return cfg.AutoObserveAttrs
}

// Demo firmware: an image newer than the simulated devices' firmware
// (1.0.0), for updates to try.
const (
	demoFirmwareVersion = "1.1.0"
	demoFirmwareSize    = 64 << 10
)

// demoFirmware stores the demo's firmware image unless it is there
// already (a --keep run) and returns it. It is a simulated package
// (simulator.FirmwareImage): the devices check its size and hash and
// report its version after the update.
func demoFirmware(ctx context.Context, a *app.App) (store.Firmware, error) {
	if f, err := a.Firmware.Get(ctx, demoFirmwareVersion); err == nil {
		return f, nil
	}
	data := simulator.FirmwareImage(demoFirmwareVersion, demoFirmwareSize)
	f, err := a.Firmware.Upload(ctx, store.Actor{Name: "demo"}, demoFirmwareVersion, bytes.NewReader(data))
	if err != nil {
		return store.Firmware{}, fmt.Errorf("demo firmware image: %w", err)
	}
	return f, nil
}

// demoFirmwareCA returns the development CA of the firmware HTTPS server
// (written into the data directory at start in debug mode without
// --fw-cert), nil when there is none.
func demoFirmwareCA(cfg config.Config) (*x509.CertPool, error) {
	pem, err := os.ReadFile(filepath.Join(cfg.DataDir, firmware.DevCAFile))
	if errors.Is(err, os.ErrNotExist) || cfg.FWListen == "" || cfg.FWPlain || cfg.FWCert != "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", firmware.DevCAFile)
	}
	return pool, nil
}
