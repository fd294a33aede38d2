// Package config defines the server's configuration as one typed value,
// loaded from FLOWNEXUS_* environment variables and command-line flags
// (flags win) and validated before anything starts. There is no global
// configuration: the loaded Config is passed down by value.
//
// The secret key (FLOWNEXUS_SECRET_KEY, or FLOWNEXUS_SECRET_KEY_FILE whose
// content without its trailing line ending is the key) seals the devices'
// PSK keys and the saved DTLS sessions. Validate refuses, with debug on or
// off, a key that is easy to guess whatever its length (CheckKeyStrength);
// with debug off it also refuses a missing, short or development key and a
// key file that group or others may read (with debug on that is one of the
// Warnings the command logs at start).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DevSecretKey is the public development secret used when none is set and
// debug is on. It is refused when debug is off.
const DevSecretKey = "flownexus-development-secret-key-not-for-production"

// MinSecretKeyLen is the shortest secret key accepted with debug off.
const MinSecretKeyLen = 32

// Config is the whole server configuration. The zero value is not valid;
// use Default or Load.
type Config struct {
	DataDir     string // directory for the SQLite database, firmware and state
	DatabaseURL string // "" means the SQLite file DataDir/flownexus.db
	HTTPListen  string // dashboard, REST API, health and metrics
	// MetricsListen, when set, serves /metrics (and /healthz) on a
	// listener of its own and takes /metrics off HTTPListen.
	MetricsListen string
	CoAPListen    string // plain CoAP/UDP; "" disables it
	CoAPSListen   string // CoAP over DTLS; "" disables it
	DTLSCert      string // PEM certificate chain DTLS presents to X.509 devices; with DTLSKey and DTLSClientCA, or ""
	DTLSKey       string // PEM private key of DTLSCert
	DTLSClientCA  string // PEM CA certificates device certificates must verify against
	FWListen      string // IoT-safe firmware HTTPS; "" disables it
	FirmwareDir   string // "" means DataDir/firmware
	// FWPublicURL is the base of the firmware download URLs devices are
	// given (scheme://host[:port][/path/]); "" derives
	// https://<host>:<port>/ from FWListen's bound address.
	FWPublicURL string
	// FWCert and FWKey are the firmware server's PEM certificate chain
	// and key; with neither, debug mode makes a development certificate
	// in the data directory, and without debug the server refuses to
	// start (package app) unless FWPlain or FWListen is "".
	FWCert, FWKey string
	// FWRecordSize caps every TLS record of a firmware download, its
	// header included (bytes).
	FWRecordSize int
	// FWMaxSize is the largest firmware image accepted (bytes).
	FWMaxSize int64
	// FWPlain serves firmware over plain HTTP (lab use), not HTTPS.
	FWPlain      bool
	ModelsDir    string   // directory of OMA DDF XML object definitions to add; "" means built-ins only
	RedisURL     string   // "" means single node
	Debug        bool     // development mode: permits the development secret
	AllowedHosts []string // Host header allow list ("*" allows any, ".example.com" a domain and its subdomains)
	CSRFOrigins  []string // extra origins trusted for state-changing browser requests
	SecretKey    string   // signs sessions and encrypts credentials at rest
	LogFormat    string   // "text" or "json"
	LogLevel     string   // "debug", "info", "warn" or "error"
	// AutoObserve is the list the server observes on every device after
	// it registers, as devmgmt.ParseObserveSpecs reads it; "" observes
	// nothing. AutoObserveAttrs are the notification attributes written
	// before each observation (devmgmt.ParseObserveAttributes); "" writes
	// none. Both are parsed, and checked, when the server is built.
	AutoObserve      string
	AutoObserveAttrs string

	// RegisterPolicy says which endpoints may register: RegisterOpen any,
	// RegisterKnown only those with a credential or created by an
	// operator.
	RegisterPolicy string
	// RegisterRate is how many Registers a second one host (an IPv4
	// address or IPv6 /64) may make, in bursts of twice as many; 0 sets
	// no limit.
	RegisterRate int
	// APIRate is how many requests a second one API token may make, in
	// bursts of twice as many; beyond that 429 with Retry-After; 0 sets
	// no limit.
	APIRate int
	// MaxLifetime caps the lifetime a device registers with (lt=); a
	// larger one is taken as MaxLifetime.
	MaxLifetime time.Duration
	// OfflineRetention is how long an endpoint that was neither created
	// by an operator nor given a credential, and never stored a value
	// beyond its registration history, is kept after it went offline; 0
	// keeps every endpoint.
	OfflineRetention time.Duration
	// EventRetention is how long the durable event log keeps events (for
	// webhooks); it must be positive.
	EventRetention time.Duration
	// WebhookAllowPrivate lets webhooks reach loopback, private and
	// link-local addresses (refused by default: server-side request
	// forgery).
	WebhookAllowPrivate bool

	secretFromDefault bool
	secretFile        string      // FLOWNEXUS_SECRET_KEY_FILE, "" when the key came otherwise
	secretFileMode    fs.FileMode // its permission bits
}

// Default returns the development defaults of DESIGN.md.
func Default() Config {
	return Config{
		DataDir:      "./data",
		HTTPListen:   ":8000",
		CoAPListen:   ":5683",
		CoAPSListen:  ":5684",
		FWListen:     ":8443",
		FWRecordSize: DefaultFWRecordSize,
		FWMaxSize:    DefaultFWMaxSize,
		Debug:        true,
		AllowedHosts: []string{"localhost", "127.0.0.1", "[::1]"},
		LogFormat:    "text",
		LogLevel:     "info",

		RegisterPolicy:   RegisterOpen,
		RegisterRate:     50,
		APIRate:          50,
		MaxLifetime:      30 * 24 * time.Hour,
		OfflineRetention: 7 * 24 * time.Hour,
		EventRetention:   24 * time.Hour,
		AutoObserve:      DefaultAutoObserve,
		AutoObserveAttrs: DefaultAutoObserveAttrs,
	}
}

// The firmware download defaults: records of at most 1370 bytes (what
// nRF91 modems take; nginx's ssl_buffer_size of the old deployment) and
// images of at most 8 MiB.
const (
	DefaultFWRecordSize = 1370
	DefaultFWMaxSize    = 8 << 20
	minFWRecordSize     = 256   // room for the record overhead and some payload
	maxFWRecordSize     = 16645 // a whole TLS record: caps nothing beyond
)

// The default auto-observe policy: temperature and humidity values,
// firmware update state and result, with pmin 60 s so that a device in
// queue mode wakes to notify at most once a minute. It is the same as
// devmgmt.DefaultPolicy.
const (
	DefaultAutoObserve      = "/3303/0/5700,/3304/0/5700,/5/0/3,/5/0/5"
	DefaultAutoObserveAttrs = "pmin=60"
)

// autoObserveSettings reads the auto-observe settings from env and adds
// their flags to fs. A variable set to "" counts: it turns the policy (or
// its attributes) off.
func (c *Config) autoObserveSettings(fs *flag.FlagSet, env Env) {
	if v, ok := env("FLOWNEXUS_AUTO_OBSERVE"); ok {
		c.AutoObserve = v
	}
	if v, ok := env("FLOWNEXUS_AUTO_OBSERVE_ATTRS"); ok {
		c.AutoObserveAttrs = v
	}
	fs.StringVar(&c.AutoObserve, "auto-observe", c.AutoObserve, "paths observed on every device after it registers: comma-separated, \"+\" joins paths into one composite observation, ?pmin=300&pmax=3600 gives an entry its own attributes; empty observes nothing (FLOWNEXUS_AUTO_OBSERVE)")
	fs.StringVar(&c.AutoObserveAttrs, "auto-observe-attrs", c.AutoObserveAttrs, "notification attributes written (Write-Attributes) before each auto-observation, e.g. pmin=60,pmax=3600; empty writes none (FLOWNEXUS_AUTO_OBSERVE_ATTRS)")
}

// The register policies (Config.RegisterPolicy).
const (
	RegisterOpen  = "open"
	RegisterKnown = "known"
)

// Database returns the effective database URL: DatabaseURL, or the SQLite
// file in the data directory.
func (c Config) Database() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "flownexus.db")
}

// IsPostgres reports whether the database URL selects PostgreSQL.
func (c Config) IsPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// Firmware returns the effective firmware directory.
func (c Config) Firmware() string {
	if c.FirmwareDir != "" {
		return c.FirmwareDir
	}
	return filepath.Join(c.DataDir, "firmware")
}

// UsesDevSecret reports whether the public development key is in use.
func (c Config) UsesDevSecret() bool { return c.SecretKey == DevSecretKey }

// DTLSSessionFile is where the DTLS server keeps its sessions across a
// planned restart, sealed under a key derived from the secret key.
func (c Config) DTLSSessionFile() string { return filepath.Join(c.DataDir, "dtls-sessions") }

// Env is how Load reads the environment: os.LookupEnv in production, MapEnv
// in tests.
type Env func(key string) (string, bool)

// Load builds a Config from the environment and the flags in args, parsed
// with fs (which Load extends with the configuration flags; callers may
// have added their own flags before). Flags win over environment
// variables. It returns every problem found, one per line, and does not
// validate (call Validate).
func Load(fs *flag.FlagSet, args []string, env Env) (Config, error) {
	c := Default()
	var errs []error
	get := func(key string) string { v, _ := env(key); return v }
	str := func(p *string, key string) {
		if v := get(key); v != "" {
			*p = v
		}
	}
	list := func(p *[]string, key string) {
		if v, ok := env(key); ok {
			*p = splitList(v)
		}
	}
	str(&c.DataDir, "FLOWNEXUS_DATA_DIR")
	str(&c.DatabaseURL, "FLOWNEXUS_DATABASE_URL")
	// Listen addresses may be set to "" to disable a listener, so an empty
	// but present variable counts.
	for key, p := range map[string]*string{
		"FLOWNEXUS_HTTP_LISTEN":    &c.HTTPListen,
		"FLOWNEXUS_METRICS_LISTEN": &c.MetricsListen,
		"FLOWNEXUS_COAP_LISTEN":    &c.CoAPListen,
		"FLOWNEXUS_COAPS_LISTEN":   &c.CoAPSListen,
		"FLOWNEXUS_FW_LISTEN":      &c.FWListen,
	} {
		if v, ok := env(key); ok {
			*p = v
		}
	}
	str(&c.FirmwareDir, "FLOWNEXUS_FIRMWARE_DIR")
	str(&c.DTLSCert, "FLOWNEXUS_COAPS_CERT")
	str(&c.DTLSKey, "FLOWNEXUS_COAPS_KEY")
	str(&c.DTLSClientCA, "FLOWNEXUS_COAPS_CLIENT_CA")
	str(&c.FWPublicURL, "FLOWNEXUS_FW_PUBLIC_URL")
	str(&c.FWCert, "FLOWNEXUS_FW_CERT")
	str(&c.FWKey, "FLOWNEXUS_FW_KEY")
	if v := get("FLOWNEXUS_FW_RECORD_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_FW_RECORD_SIZE=%q: want a number of bytes", v))
		}
		c.FWRecordSize = n
	}
	if v := get("FLOWNEXUS_FW_MAX_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_FW_MAX_SIZE=%q: want a number of bytes", v))
		}
		c.FWMaxSize = n
	}
	if v := get("FLOWNEXUS_FW_PLAIN"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_FW_PLAIN=%q: want true or false", v))
		}
		c.FWPlain = b
	}
	str(&c.ModelsDir, "FLOWNEXUS_MODELS_DIR")
	str(&c.RedisURL, "FLOWNEXUS_REDIS_URL")
	str(&c.LogFormat, "FLOWNEXUS_LOG_FORMAT")
	str(&c.LogLevel, "FLOWNEXUS_LOG_LEVEL")
	if v := get("FLOWNEXUS_DEBUG"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_DEBUG=%q: want true or false", v))
		}
		c.Debug = b
	}
	str(&c.RegisterPolicy, "FLOWNEXUS_REGISTER_POLICY")
	dur := func(p *time.Duration, key string) {
		if v := get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 720h", key, v))
			}
			*p = d
		}
	}
	if v := get("FLOWNEXUS_REGISTER_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_REGISTER_RATE=%q: want a number of Registers a second", v))
		}
		c.RegisterRate = n
	}
	if v := get("FLOWNEXUS_API_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_API_RATE=%q: want a number of requests a second", v))
		}
		c.APIRate = n
	}
	dur(&c.MaxLifetime, "FLOWNEXUS_MAX_LIFETIME")
	dur(&c.OfflineRetention, "FLOWNEXUS_OFFLINE_RETENTION")
	dur(&c.EventRetention, "FLOWNEXUS_EVENT_RETENTION")
	if v := get("FLOWNEXUS_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_WEBHOOK_ALLOW_PRIVATE=%q: want true or false", v))
		}
		c.WebhookAllowPrivate = b
	}
	list(&c.AllowedHosts, "FLOWNEXUS_ALLOWED_HOSTS")
	list(&c.CSRFOrigins, "FLOWNEXUS_CSRF_ORIGINS")

	key, keyFile := get("FLOWNEXUS_SECRET_KEY"), get("FLOWNEXUS_SECRET_KEY_FILE")
	switch {
	case key != "" && keyFile != "":
		errs = append(errs, errors.New("FLOWNEXUS_SECRET_KEY and FLOWNEXUS_SECRET_KEY_FILE are both set: set one"))
	case keyFile != "":
		var err error
		c.SecretKey, c.secretFileMode, err = ReadSecretKeyFile(keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("FLOWNEXUS_SECRET_KEY_FILE: %w", err))
		}
		c.secretFile = keyFile
	default:
		c.SecretKey = key
	}

	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory (FLOWNEXUS_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "database URL; postgres://… selects PostgreSQL, default SQLite in the data directory (FLOWNEXUS_DATABASE_URL)")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "HTTP listen address (FLOWNEXUS_HTTP_LISTEN)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve /metrics and /healthz on this address instead of the HTTP listener, e.g. 127.0.0.1:9100; empty keeps them on the HTTP listener (FLOWNEXUS_METRICS_LISTEN)")
	fs.StringVar(&c.CoAPListen, "coap-listen", c.CoAPListen, "CoAP/UDP listen address, empty disables plain CoAP so devices must use DTLS (FLOWNEXUS_COAP_LISTEN)")
	fs.StringVar(&c.CoAPSListen, "coaps-listen", c.CoAPSListen, "CoAP/DTLS listen address, empty disables (FLOWNEXUS_COAPS_LISTEN)")
	fs.StringVar(&c.DTLSCert, "coaps-cert", c.DTLSCert, "PEM certificate chain for X.509 devices over DTLS (FLOWNEXUS_COAPS_CERT)")
	fs.StringVar(&c.DTLSKey, "coaps-key", c.DTLSKey, "PEM private key of --coaps-cert (FLOWNEXUS_COAPS_KEY)")
	fs.StringVar(&c.DTLSClientCA, "coaps-client-ca", c.DTLSClientCA, "PEM CA certificates device certificates must verify against (FLOWNEXUS_COAPS_CLIENT_CA)")
	fs.StringVar(&c.FWListen, "fw-listen", c.FWListen, "firmware HTTPS listen address, empty disables (FLOWNEXUS_FW_LISTEN)")
	fs.StringVar(&c.FirmwareDir, "firmware-dir", c.FirmwareDir, "firmware directory, default firmware/ in the data directory (FLOWNEXUS_FIRMWARE_DIR)")
	fs.StringVar(&c.FWPublicURL, "fw-public-url", c.FWPublicURL, "base of the firmware download URLs given to devices, e.g. https://fw.example.org/; default https://<host>:<port>/ of --fw-listen (FLOWNEXUS_FW_PUBLIC_URL)")
	fs.StringVar(&c.FWCert, "fw-cert", c.FWCert, "PEM certificate chain of the firmware HTTPS server (keep it short: ECDSA P-256); default in debug mode: a development certificate in the data directory (FLOWNEXUS_FW_CERT)")
	fs.StringVar(&c.FWKey, "fw-key", c.FWKey, "PEM private key of --fw-cert (FLOWNEXUS_FW_KEY)")
	fs.IntVar(&c.FWRecordSize, "fw-record-size", c.FWRecordSize, "largest TLS record of a firmware download in bytes, header included (nRF91 modems refuse records over 2 KB) (FLOWNEXUS_FW_RECORD_SIZE)")
	fs.Int64Var(&c.FWMaxSize, "fw-max-size", c.FWMaxSize, "largest firmware image accepted, in bytes (FLOWNEXUS_FW_MAX_SIZE)")
	fs.BoolVar(&c.FWPlain, "fw-plain", c.FWPlain, "serve firmware over plain HTTP instead of HTTPS, for lab use (FLOWNEXUS_FW_PLAIN)")
	fs.StringVar(&c.ModelsDir, "models", c.ModelsDir, "directory of OMA DDF XML object definitions that add to or override the built-in ones (FLOWNEXUS_MODELS_DIR)")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL for multi-node setups (FLOWNEXUS_REDIS_URL)")
	fs.BoolVar(&c.Debug, "debug", c.Debug, "development mode (FLOWNEXUS_DEBUG)")
	fs.Func("allowed-hosts", "comma-separated Host header allow list (FLOWNEXUS_ALLOWED_HOSTS)", func(s string) error {
		c.AllowedHosts = splitList(s)
		return nil
	})
	fs.Func("csrf-origins", "comma-separated trusted origins (FLOWNEXUS_CSRF_ORIGINS)", func(s string) error {
		c.CSRFOrigins = splitList(s)
		return nil
	})
	fs.StringVar(&c.RegisterPolicy, "register-policy", c.RegisterPolicy, "which endpoints may register: open (any) or known (with a credential or created by an operator) (FLOWNEXUS_REGISTER_POLICY)")
	fs.IntVar(&c.APIRate, "api-rate", c.APIRate, "API requests a second one API token may make, in bursts of twice as many; beyond that 429 with Retry-After; 0 sets no limit (FLOWNEXUS_API_RATE)")
	fs.IntVar(&c.RegisterRate, "register-rate", c.RegisterRate, "Registers a second one host (IPv4 address or IPv6 /64) may make, in bursts of twice as many; beyond that 5.03 with Max-Age; 0 sets no limit (FLOWNEXUS_REGISTER_RATE)")
	fs.DurationVar(&c.MaxLifetime, "max-lifetime", c.MaxLifetime, "longest registration lifetime a device gets; a larger lt= is capped (FLOWNEXUS_MAX_LIFETIME)")
	fs.DurationVar(&c.OfflineRetention, "offline-retention", c.OfflineRetention, "remove endpoints offline this long that no operator created, have no credential and stored nothing but their registrations; 0 keeps all (FLOWNEXUS_OFFLINE_RETENTION)")
	fs.DurationVar(&c.EventRetention, "event-retention", c.EventRetention, "how long the event log keeps events for webhooks (FLOWNEXUS_EVENT_RETENTION)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", c.WebhookAllowPrivate, "let webhooks reach loopback, private and link-local addresses (FLOWNEXUS_WEBHOOK_ALLOW_PRIVATE)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (FLOWNEXUS_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error (FLOWNEXUS_LOG_LEVEL)")
	c.autoObserveSettings(fs, env)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.SecretKey == "" {
		c.SecretKey = DevSecretKey
		c.secretFromDefault = true
	}
	return c, errors.Join(errs...)
}

// MapEnv returns an Env over a map, for tests.
func MapEnv(m map[string]string) Env {
	return func(key string) (string, bool) {
		v, ok := m[key]
		return v, ok
	}
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks every field and the fields against each other, and
// returns all problems found joined, each naming the setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data directory (--data-dir, FLOWNEXUS_DATA_DIR) must not be empty")
	}
	if c.DatabaseURL != "" && !c.IsPostgres() {
		if strings.Contains(c.DatabaseURL, "://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
			bad("database URL (--database-url, FLOWNEXUS_DATABASE_URL) %q: want postgres://…, sqlite://PATH or a file path", redact(c.DatabaseURL))
		}
	}
	if c.IsPostgres() {
		if u, err := url.Parse(c.DatabaseURL); err != nil || u.Host == "" {
			bad("database URL (--database-url, FLOWNEXUS_DATABASE_URL) %q: not a valid PostgreSQL URL", redact(c.DatabaseURL))
		}
	}
	if c.HTTPListen == "" {
		bad("HTTP listen address (--http-listen, FLOWNEXUS_HTTP_LISTEN) must not be empty")
	}
	for _, l := range []struct{ name, flag, v string }{
		{"HTTP", "http-listen", c.HTTPListen},
		{"metrics", "metrics-listen", c.MetricsListen},
		{"CoAP", "coap-listen", c.CoAPListen},
		{"CoAP/DTLS", "coaps-listen", c.CoAPSListen},
		{"firmware HTTPS", "fw-listen", c.FWListen},
	} {
		if l.v == "" {
			continue
		}
		if err := checkListen(l.v); err != nil {
			bad("%s listen address (--%s, FLOWNEXUS_%s) %q: %v", l.name, l.flag,
				strings.ToUpper(strings.ReplaceAll(l.flag, "-", "_")), l.v, err)
		}
	}
	if n := countSet(c.DTLSCert, c.DTLSKey, c.DTLSClientCA); n != 0 && n != 3 {
		bad("DTLS certificates: --coaps-cert, --coaps-key and --coaps-client-ca (FLOWNEXUS_COAPS_CERT, FLOWNEXUS_COAPS_KEY, FLOWNEXUS_COAPS_CLIENT_CA) go together: set all three or none")
	}
	if c.FWPublicURL != "" {
		if u, err := url.Parse(c.FWPublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad("firmware public URL (--fw-public-url, FLOWNEXUS_FW_PUBLIC_URL) %q: want https://host[:port][/path/]", c.FWPublicURL)
		}
	}
	if (c.FWCert == "") != (c.FWKey == "") {
		bad("firmware certificate: --fw-cert and --fw-key (FLOWNEXUS_FW_CERT, FLOWNEXUS_FW_KEY) go together: set both or neither")
	}
	if c.FWPlain && c.FWCert != "" {
		bad("firmware server: --fw-plain (FLOWNEXUS_FW_PLAIN) serves plain HTTP: it takes no --fw-cert/--fw-key")
	}
	if c.FWRecordSize < minFWRecordSize || c.FWRecordSize > maxFWRecordSize {
		bad("firmware TLS record size (--fw-record-size, FLOWNEXUS_FW_RECORD_SIZE) %d: want %d to %d bytes", c.FWRecordSize, minFWRecordSize, maxFWRecordSize)
	}
	if c.FWMaxSize < 1 || c.FWMaxSize > 1<<31 {
		bad("firmware maximum size (--fw-max-size, FLOWNEXUS_FW_MAX_SIZE) %d: want 1 to %d bytes", c.FWMaxSize, int64(1)<<31)
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("Redis URL (--redis-url, FLOWNEXUS_REDIS_URL) %q: want redis://host:port/db", redact(c.RedisURL))
		}
	}
	if len(c.AllowedHosts) == 0 {
		bad("allowed hosts (--allowed-hosts, FLOWNEXUS_ALLOWED_HOSTS) must not be empty")
	}
	for _, h := range c.AllowedHosts {
		if strings.ContainsAny(h, "/ ") || strings.Contains(h, "://") {
			bad("allowed host %q: want a host name or address without scheme or path", h)
		}
	}
	for _, o := range c.CSRFOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("CSRF origin %q (--csrf-origins, FLOWNEXUS_CSRF_ORIGINS): want scheme://host[:port]", o)
		}
	}
	if c.RegisterPolicy != RegisterOpen && c.RegisterPolicy != RegisterKnown {
		bad("register policy (--register-policy, FLOWNEXUS_REGISTER_POLICY) %q: want open or known", c.RegisterPolicy)
	}
	if c.APIRate < 0 {
		bad("API rate (--api-rate, FLOWNEXUS_API_RATE) %d: want 0 (no limit) or more", c.APIRate)
	}
	if c.RegisterRate < 0 {
		bad("register rate (--register-rate, FLOWNEXUS_REGISTER_RATE) %d: want 0 (no limit) or more", c.RegisterRate)
	}
	if c.MaxLifetime < time.Minute || c.MaxLifetime > math.MaxUint32*time.Second {
		bad("maximum lifetime (--max-lifetime, FLOWNEXUS_MAX_LIFETIME) %v: want 1m to %v", c.MaxLifetime, math.MaxUint32*time.Second)
	}
	if c.EventRetention <= 0 {
		bad("event retention (--event-retention, FLOWNEXUS_EVENT_RETENTION) %v: want more than 0", c.EventRetention)
	}
	if c.OfflineRetention < 0 {
		bad("offline retention (--offline-retention, FLOWNEXUS_OFFLINE_RETENTION) %v: want 0 (keep) or more", c.OfflineRetention)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log format (--log-format, FLOWNEXUS_LOG_FORMAT) %q: want text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log level (--log-level, FLOWNEXUS_LOG_LEVEL) %q: want debug, info, warn or error", c.LogLevel)
	}
	if !c.Debug {
		switch {
		case c.SecretKey == "" || c.secretFromDefault:
			bad("secret key is missing: with debug off set FLOWNEXUS_SECRET_KEY or FLOWNEXUS_SECRET_KEY_FILE (generate one with `flownexus secret`)")
		case c.SecretKey == DevSecretKey:
			bad("secret key is the public development key: with debug off set a secret of your own (`flownexus secret`)")
		case len(c.SecretKey) < MinSecretKeyLen:
			bad("secret key is %d bytes: with debug off it must be at least %d bytes (`flownexus secret`)", len(c.SecretKey), MinSecretKeyLen)
		}
		if c.secretFile != "" && c.secretFileMode&0o077 != 0 {
			bad("secret key file (FLOWNEXUS_SECRET_KEY_FILE) %s has mode %04o: group or others may read it; run chmod 600 %s", c.secretFile, c.secretFileMode, c.secretFile)
		}
	}
	if c.SecretKey != "" && c.SecretKey != DevSecretKey {
		if err := CheckKeyStrength(c.SecretKey); err != nil {
			from := "FLOWNEXUS_SECRET_KEY"
			if c.secretFile != "" {
				from = "FLOWNEXUS_SECRET_KEY_FILE " + c.secretFile
			}
			bad("%w (from %s)", err, from)
		}
	}
	return errors.Join(errs...)
}

// Warning is something Validate accepts but the operator should hear
// about: the command logs it at start.
type Warning struct {
	Msg   string
	Attrs []slog.Attr
}

// Warnings returns what a valid configuration still does unsafely: with
// debug on, a secret key file that group or others may read.
func (c Config) Warnings() []Warning {
	var out []Warning
	if c.Debug && c.secretFile != "" && c.secretFileMode&0o077 != 0 {
		out = append(out, Warning{
			Msg: "secret key file is readable by group or others (refused with debug off): chmod 600 it",
			Attrs: []slog.Attr{slog.String("file", c.secretFile),
				slog.String("mode", fmt.Sprintf("%04o", c.secretFileMode))},
		})
	}
	return out
}

// ReadSecretKeyFile reads a secret key from the file at path: its content
// without the trailing line ending, and the file's permission bits. An
// empty key is an error.
func ReadSecretKeyFile(path string) (key string, mode fs.FileMode, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileLen+1))
	if err != nil {
		return "", 0, err
	}
	if len(b) > maxSecretFileLen {
		return "", 0, fmt.Errorf("%s is larger than %d bytes: not a secret key", path, maxSecretFileLen)
	}
	key = strings.TrimRight(string(b), "\r\n")
	if key == "" {
		return "", 0, fmt.Errorf("%s is empty", path)
	}
	return key, fi.Mode().Perm(), nil
}

// maxSecretFileLen bounds what ReadSecretKeyFile reads.
const maxSecretFileLen = 4096

// minKeyDistinct is how many distinct bytes CheckKeyStrength wants.
const minKeyDistinct = 8

// ErrWeakKey is matched by CheckKeyStrength's errors.
var ErrWeakKey = errors.New("secret key is low-entropy")

// CheckKeyStrength refuses a secret key that is easy to guess whatever its
// length: fewer than 8 distinct characters ("                ", "aaaa…",
// "0101…"), a repetition of a shorter pattern ("abc123abc123…"), or a key
// that is mostly a run of evenly spaced characters ("abcdef…", "0123…",
// "acegi…"). Keys from `flownexus secret` (48 random bytes, base64) pass.
// It does not check the length (Validate does, with debug off).
func CheckKeyStrength(key string) error {
	hint := "generate one with `flownexus secret`"
	var seen [256]bool
	distinct := 0
	for i := 0; i < len(key); i++ {
		if !seen[key[i]] {
			seen[key[i]] = true
			distinct++
		}
	}
	if distinct < minKeyDistinct {
		return fmt.Errorf("%w: it has %d distinct character%s, want at least %d; %s", ErrWeakKey, distinct, plural(distinct), minKeyDistinct, hint)
	}
	if p := period(key); 2*p <= len(key) {
		return fmt.Errorf("%w: it repeats a %d-character pattern; %s", ErrWeakKey, p, hint)
	}
	// Steps equal to the step before: none expected in a random key but a
	// few by chance, almost every one in "abcdef…".
	same := 0
	for i := 2; i < len(key); i++ {
		if key[i]-key[i-1] == key[i-1]-key[i-2] {
			same++
		}
	}
	if 2*same >= len(key)-2 {
		return fmt.Errorf("%w: it is mostly a run of evenly spaced characters like \"abcdef\"; %s", ErrWeakKey, hint)
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// period returns the length of the shortest p with s[i] == s[i-p] for
// every i >= p: len(s) when s repeats no shorter pattern.
func period(s string) int {
	// The prefix function of Knuth-Morris-Pratt: border[i] is the length
	// of the longest proper prefix of s[:i+1] that is also its suffix.
	border := make([]int, len(s))
	for i := 1; i < len(s); i++ {
		k := border[i-1]
		for k > 0 && s[i] != s[k] {
			k = border[k-1]
		}
		if s[i] == s[k] {
			k++
		}
		border[i] = k
	}
	if len(s) == 0 {
		return 0
	}
	return len(s) - border[len(s)-1]
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number in 0..65535")
	}
	return nil
}

// redact hides the password of a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}
