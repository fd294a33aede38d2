// Package cli implements the flownexus subcommands: it parses their flags
// and configuration, opens what each command needs and runs it. The
// server's parts and their start and shutdown order belong to package app,
// which `serve` and `demo` run; everything below receives its
// configuration and dependencies as values.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/version"
)

// IO is the process environment a command runs in.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Env    config.Env
	// IsTerminal reports whether Stdin is an interactive terminal and
	// ReadPassword reads one line from it without echo; both nil in tests.
	IsTerminal   func() bool
	ReadPassword func() (string, error)
}

// errUsage marks an error whose message is a usage text; it exits 2.
var errUsage = errors.New("usage")

const usage = `flownexus — LwM2M device management

Usage: flownexus <command> [flags]

Commands:
  demo       the tour: a fresh database, an admin user, the server and a simulated fleet
             (a quarter of it over DTLS-PSK: --dtls-devices N)
  serve      run the server (HTTP, CoAP, workers)
  simulate   run a simulated LwM2M device fleet against a server: simulate --server HOST:PORT --devices N
             | over DTLS: --psk-secret S or --psk-file FILE.csv [--server coaps://HOST] [--rebind 30s]
             | simulate --devices N [--psk-secret S] --write-psk-file FILE.csv|- (to import, then exit)
  load       measure a server under a fleet arriving at once: load run --server HOST:PORT --devices N | load echo
  migrate    apply database migrations and exit
  user       manage operators: user create NAME [--admin] [--password-stdin] | user passwd NAME | user list
             | user disable NAME | user enable NAME | user delete NAME
             | user grant NAME SITE --role admin|user [--flags view_overview,view_data,...] | user revoke NAME SITE
  site       manage sites (groups of devices users are members of): site add NAME | site list | site remove NAME
  token      manage API tokens: token create --user NAME [--name LABEL] [--expires 720h]
             | token list [--user NAME] | token revoke ID
  credential manage device DTLS credentials: credential add ENDPOINT --psk-identity ID --psk-key HEX
             | credential add ENDPOINT --cert-cn CN [--cert-fingerprint SHA256] | credential list
             | credential import FILE.csv|- (endpoint,psk-identity,psk-hex-key lines, all or none)
             | credential remove ENDPOINT
  endpoint   provision endpoints before their devices register (see --register-policy known):
             endpoint add NAME... | endpoint import FILE|- (one name a line) | endpoint remove NAME (and its data)
             | endpoint assign SITE|- NAME... | endpoint assign SITE|- --prefix P (- for no site)
  fw         firmware images, updates and campaigns: fw upload FILE|- --version V (prints the download path last)
             | fw list | fw remove VERSION (refused while an unfinished update uses it)
             | fw update ENDPOINT --version V | fw updates | fw cancel ID|ENDPOINT
             | fw campaign create|list|show|pause|resume|cancel (carried out by the running server)
  secret     print a new random secret key for FLOWNEXUS_SECRET_KEY
             | secret fingerprint (of the configured key) | secret rotate (re-seal the PSKs from an old key:
             --old-key-file FILE, --old-key-stdin or FLOWNEXUS_OLD_SECRET_KEY) | secret reset [--drop-psks]
  openapi    print the API's OpenAPI document (JSON, --yaml) or its reference page (--html), no server needed
  version    print version and commit

Every command that opens the database takes the configuration flags; run
'flownexus serve -h' to list them with their FLOWNEXUS_* variables.
`

// Main runs the command in args and returns the process exit code: 0 on
// success, 1 on failure, 2 on a usage error. Errors are printed on one
// line each to io.Stderr.
func Main(ctx context.Context, iox IO, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(iox.Stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, iox, rest)
	case "demo":
		err = runDemo(ctx, iox, rest)
	case "simulate":
		err = runSimulate(ctx, iox, rest)
	case "load":
		err = runLoad(ctx, iox, rest)
	case "migrate":
		err = runMigrate(ctx, iox, rest)
	case "user":
		err = runUser(ctx, iox, rest)
	case "token":
		err = runToken(ctx, iox, rest)
	case "credential":
		err = runCredential(ctx, iox, rest)
	case "endpoint":
		err = runEndpoint(ctx, iox, rest)
	case "site":
		err = runSite(ctx, iox, rest)
	case "fw":
		err = runFw(ctx, iox, rest)
	case "secret":
		err = runSecret(ctx, iox, rest)
	case "openapi":
		err = runOpenAPI(ctx, iox, rest)
	case "version", "--version", "-version":
		fmt.Fprintf(iox.Stdout, "flownexus %s (commit %s)\n", version.Version, version.Revision())
	case "help", "-h", "--help":
		fmt.Fprint(iox.Stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q\n%s", errUsage, cmd, usage)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(iox.Stderr, "flownexus:", strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(iox.Stderr, "flownexus:", line)
	}
	return 1
}

// OS returns the IO of the running process.
func OS() IO {
	return IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.LookupEnv,
		IsTerminal:   stdinIsTerminal,
		ReadPassword: readPasswordNoEcho,
	}
}

// flagSet makes a flag set that reports errors instead of exiting.
func flagSet(iox IO, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("flownexus "+name, flag.ContinueOnError)
	fs.SetOutput(iox.Stderr)
	return fs
}

// loadConfig parses the configuration flags of a command and validates the
// result. extra adds command-specific flags before parsing. Positional
// arguments may be mixed with flags; they are returned in order.
func loadConfig(iox IO, name string, args []string, extra func(fs *flag.FlagSet)) (config.Config, []string, error) {
	fs := flagSet(iox, name)
	if extra != nil {
		extra(fs)
	}
	// Flags may follow positional arguments ("user create NAME --admin"):
	// parse, take one positional, parse the rest, repeat. config.Load
	// returns its Config by value, so configuration flags parsed after
	// it returned ("fw upload FILE --data-dir D") would be lost: once
	// the positionals are known, the flags alone are loaded again, in
	// their order, on a fresh flag set.
	var cfg config.Config
	var pos, flagArgs []string
	var err error
	first := true
	for {
		if first {
			cfg, err = config.Load(fs, args, iox.Env)
			first = false
		} else {
			err = fs.Parse(args)
		}
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return cfg, nil, err
			}
			return cfg, nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		flagArgs = append(flagArgs, args[:len(args)-len(rest)]...)
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) > 0 {
		fs = flagSet(iox, name)
		if extra != nil {
			extra(fs)
		}
		if cfg, err = config.Load(fs, flagArgs, iox.Env); err != nil {
			return cfg, nil, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, pos, fmt.Errorf("configuration: %w", err)
	}
	if ws := cfg.Warnings(); len(ws) > 0 {
		log := newLogger(cfg, iox.Stderr)
		for _, w := range ws {
			log.LogAttrs(context.Background(), slog.LevelWarn, w.Msg, w.Attrs...)
		}
	}
	return cfg, pos, nil
}

// newLogger builds the process logger: text for a terminal, JSON with
// --log-format json.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// readLine reads one line from r without its line ending.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input on stdin")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
