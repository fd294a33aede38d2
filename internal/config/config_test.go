package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// strongKey is a secret key that passes every check (from `flownexus
// secret`).
const strongKey = "q0O3cM6Lk0t5pY1f0hJ6mX8bR3vW2zA9sD4gF7jK1lZ5xC8vB2nM6"

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, MapEnv(env))
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.HTTPListen != ":8000" || c.CoAPListen != ":5683" || c.CoAPSListen != ":5684" || c.FWListen != ":8443" {
		t.Errorf("listen defaults: %+v", c)
	}
	if !c.Debug || !c.UsesDevSecret() {
		t.Errorf("debug %v, dev secret %v; want both", c.Debug, c.UsesDevSecret())
	}
	if got, want := c.Database(), filepath.Join("data", "flownexus.db"); got != want {
		t.Errorf("Database() = %q, want %q", got, want)
	}
	if got := strings.Join(c.AllowedHosts, ","); got != "localhost,127.0.0.1,[::1]" {
		t.Errorf("allowed hosts %q", got)
	}
}

func TestFlagsWinOverEnv(t *testing.T) {
	env := map[string]string{
		"FLOWNEXUS_HTTP_LISTEN":   ":9000",
		"FLOWNEXUS_DATA_DIR":      "/env/dir",
		"FLOWNEXUS_ALLOWED_HOSTS": "a.example, b.example",
		"FLOWNEXUS_DEBUG":         "false",
		"FLOWNEXUS_SECRET_KEY":    strongKey,
	}
	c, err := load(t, env, "--http-listen", "127.0.0.1:9100", "--allowed-hosts", "c.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListen != "127.0.0.1:9100" {
		t.Errorf("flag lost: %q", c.HTTPListen)
	}
	if c.DataDir != "/env/dir" || c.Debug {
		t.Errorf("env lost: %+v", c)
	}
	if strings.Join(c.AllowedHosts, ",") != "c.example" {
		t.Errorf("allowed hosts %v", c.AllowedHosts)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFirmwareSettings(t *testing.T) {
	c, err := load(t, map[string]string{"FLOWNEXUS_FW_LISTEN": ":8443"})
	if err != nil {
		t.Fatal(err)
	}
	if c.FWRecordSize != 1370 || c.FWMaxSize != 8<<20 || c.FWPlain || c.FWPublicURL != "" {
		t.Fatalf("firmware defaults %d %d %v %q", c.FWRecordSize, c.FWMaxSize, c.FWPlain, c.FWPublicURL)
	}
	env := map[string]string{"FLOWNEXUS_FW_PUBLIC_URL": "https://fw.example.org/", "FLOWNEXUS_FW_CERT": "c.pem",
		"FLOWNEXUS_FW_KEY": "k.pem", "FLOWNEXUS_FW_RECORD_SIZE": "1200", "FLOWNEXUS_FW_MAX_SIZE": "1000",
		"FLOWNEXUS_SECRET_KEY": strongKey, "FLOWNEXUS_DEBUG": "false"}
	c, err = load(t, env, "--fw-max-size", "2000")
	if err != nil {
		t.Fatal(err)
	}
	if c.FWPublicURL != "https://fw.example.org/" || c.FWCert != "c.pem" || c.FWKey != "k.pem" || c.FWRecordSize != 1200 || c.FWMaxSize != 2000 {
		t.Fatalf("firmware settings %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyListenDisables(t *testing.T) {
	c, err := load(t, map[string]string{"FLOWNEXUS_COAP_LISTEN": ""}, "--fw-listen=")
	if err != nil {
		t.Fatal(err)
	}
	if c.CoAPListen != "" || c.FWListen != "" {
		t.Errorf("want disabled, got coap %q fw %q", c.CoAPListen, c.FWListen)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateMessages(t *testing.T) {
	long := strings.Repeat("s", 40)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad debug", map[string]string{"FLOWNEXUS_DEBUG": "maybe"}, nil, `FLOWNEXUS_DEBUG="maybe": want true or false`},
		{"empty data dir", nil, []string{"--data-dir", ""}, "data directory (--data-dir, FLOWNEXUS_DATA_DIR) must not be empty"},
		{"bad http listen", nil, []string{"--http-listen", "8000"}, `HTTP listen address (--http-listen, FLOWNEXUS_HTTP_LISTEN) "8000": want host:port or :port`},
		{"empty http listen", nil, []string{"--http-listen", ""}, "HTTP listen address (--http-listen, FLOWNEXUS_HTTP_LISTEN) must not be empty"},
		{"bad coap port", nil, []string{"--coap-listen", ":70000"}, `CoAP listen address (--coap-listen, FLOWNEXUS_COAP_LISTEN) ":70000": port must be a number in 0..65535`},
		{"bad coaps", nil, []string{"--coaps-listen", "x"}, `CoAP/DTLS listen address (--coaps-listen, FLOWNEXUS_COAPS_LISTEN) "x"`},
		{"coaps cert without key", nil, []string{"--coaps-cert", "c.pem", "--coaps-client-ca", "ca.pem"}, "--coaps-cert, --coaps-key and --coaps-client-ca"},
		{"coaps ca only", map[string]string{"FLOWNEXUS_COAPS_CLIENT_CA": "ca.pem"}, nil, "set all three or none"},
		{"bad fw", nil, []string{"--fw-listen", ":https"}, `firmware HTTPS listen address (--fw-listen, FLOWNEXUS_FW_LISTEN) ":https": port must be a number`},
		{"bad db url", nil, []string{"--database-url", "mysql://x/y"}, `database URL (--database-url, FLOWNEXUS_DATABASE_URL) "mysql://x/y": want postgres://…`},
		{"pg without host", nil, []string{"--database-url", "postgres:///db"}, "not a valid PostgreSQL URL"},
		{"pg password hidden", nil, []string{"--database-url", "mysql://u:hunter2@h/db"}, "u:xxxxx@h"},
		{"bad redis", nil, []string{"--redis-url", "http://x"}, `Redis URL (--redis-url, FLOWNEXUS_REDIS_URL) "http://x": want redis://host:port/db`},
		{"no hosts", map[string]string{"FLOWNEXUS_ALLOWED_HOSTS": " , "}, nil, "allowed hosts (--allowed-hosts, FLOWNEXUS_ALLOWED_HOSTS) must not be empty"},
		{"host with scheme", nil, []string{"--allowed-hosts", "https://x"}, `allowed host "https://x": want a host name`},
		{"bad csrf", nil, []string{"--csrf-origins", "example.com"}, `CSRF origin "example.com"`},
		{"negative api rate", nil, []string{"--api-rate", "-1"}, "API rate (--api-rate, FLOWNEXUS_API_RATE) -1"},
		{"bad api rate", map[string]string{"FLOWNEXUS_API_RATE": "fast"}, nil, `FLOWNEXUS_API_RATE="fast"`},
		{"bad log format", nil, []string{"--log-format", "xml"}, `log format (--log-format, FLOWNEXUS_LOG_FORMAT) "xml": want text or json`},
		{"bad log level", nil, []string{"--log-level", "loud"}, `log level (--log-level, FLOWNEXUS_LOG_LEVEL) "loud"`},
		{"secret missing", map[string]string{"FLOWNEXUS_DEBUG": "false"}, nil, "secret key is missing"},
		{"secret is dev default", map[string]string{"FLOWNEXUS_DEBUG": "false", "FLOWNEXUS_SECRET_KEY": DevSecretKey}, nil, "secret key is the public development key"},
		{"secret short", map[string]string{"FLOWNEXUS_SECRET_KEY": "short"}, []string{"--debug=false"}, "secret key is 5 bytes: with debug off it must be at least 32 bytes"},
		{"secret both", map[string]string{"FLOWNEXUS_SECRET_KEY": long, "FLOWNEXUS_SECRET_KEY_FILE": "/x"}, nil, "FLOWNEXUS_SECRET_KEY and FLOWNEXUS_SECRET_KEY_FILE are both set"},
		{"fw public url", nil, []string{"--fw-public-url", "fw.example.org"}, `firmware public URL (--fw-public-url, FLOWNEXUS_FW_PUBLIC_URL) "fw.example.org": want https://host`},
		{"fw public url query", nil, []string{"--fw-public-url", "https://fw.example.org/?x=1"}, `want https://host[:port][/path/]`},
		{"fw cert without key", map[string]string{"FLOWNEXUS_FW_CERT": "c.pem"}, nil, "--fw-cert and --fw-key (FLOWNEXUS_FW_CERT, FLOWNEXUS_FW_KEY) go together"},
		{"fw plain with cert", nil, []string{"--fw-plain", "--fw-cert", "c.pem", "--fw-key", "k.pem"}, "--fw-plain (FLOWNEXUS_FW_PLAIN) serves plain HTTP"},
		{"fw record small", nil, []string{"--fw-record-size", "100"}, "firmware TLS record size (--fw-record-size, FLOWNEXUS_FW_RECORD_SIZE) 100: want 256 to 16645 bytes"},
		{"fw record env", map[string]string{"FLOWNEXUS_FW_RECORD_SIZE": "big"}, nil, `FLOWNEXUS_FW_RECORD_SIZE="big": want a number of bytes`},
		{"fw max size", nil, []string{"--fw-max-size", "0"}, "firmware maximum size (--fw-max-size, FLOWNEXUS_FW_MAX_SIZE) 0"},
		{"fw max size env", map[string]string{"FLOWNEXUS_FW_MAX_SIZE": "8M"}, nil, `FLOWNEXUS_FW_MAX_SIZE="8M": want a number of bytes`},
		{"fw plain env", map[string]string{"FLOWNEXUS_FW_PLAIN": "yes please"}, nil, `FLOWNEXUS_FW_PLAIN="yes please": want true or false`},
		{"secret file missing", map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": "/nonexistent/key"}, nil, "FLOWNEXUS_SECRET_KEY_FILE: open /nonexistent/key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env, tc.args...)
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("password leaked: %q", err)
			}
		})
	}
}

func TestSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	secret := strongKey
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": f, "FLOWNEXUS_DEBUG": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SecretKey != secret {
		t.Fatalf("secret %q, want trailing newline trimmed", c.SecretKey)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid secret file refused: %v", err)
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": empty}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty key file: %v", err)
	}
}

func TestAllProblemsReported(t *testing.T) {
	c, err := load(t, nil, "--http-listen", "x", "--log-format", "xml", "--debug=false")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Fatalf("want 3 problems, got %d: %v", n, err)
	}
}

func TestDeviceSettings(t *testing.T) {
	c, err := load(t, map[string]string{
		"FLOWNEXUS_REGISTER_POLICY":   "known",
		"FLOWNEXUS_MAX_LIFETIME":      "48h",
		"FLOWNEXUS_OFFLINE_RETENTION": "0",
		"FLOWNEXUS_REGISTER_RATE":     "500",
	}, "--offline-retention", "24h")
	if err != nil {
		t.Fatal(err)
	}
	if c.RegisterPolicy != RegisterKnown || c.MaxLifetime != 48*time.Hour || c.OfflineRetention != 24*time.Hour || c.RegisterRate != 500 {
		t.Errorf("loaded %q, %v, %v", c.RegisterPolicy, c.MaxLifetime, c.OfflineRetention)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := load(t, map[string]string{"FLOWNEXUS_MAX_LIFETIME": "a week"}); err == nil ||
		!strings.Contains(err.Error(), "FLOWNEXUS_MAX_LIFETIME") {
		t.Errorf("unparsable duration: %v", err)
	}
	c, _ = load(t, nil, "--register-policy", "closed", "--max-lifetime", "1s", "--offline-retention", "-1h", "--register-rate", "-5")
	err = c.Validate()
	for _, want := range []string{"--register-policy", "--max-lifetime", "--offline-retention", "--register-rate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %s", err, want)
		}
	}
}

// TestWeakSecretKeysRefused: keys that are easy to guess whatever their
// length are refused with debug on and off, naming what is wrong.
func TestWeakSecretKeysRefused(t *testing.T) {
	for _, c := range []struct {
		name, key, want string
	}{
		{"40 spaces", strings.Repeat(" ", 40), "1 distinct character,"},
		{"one letter", strings.Repeat("a", 64), "1 distinct character,"},
		{"two letters", strings.Repeat("01", 24), "2 distinct characters"},
		{"repeated word", strings.Repeat("hunter2!", 6), "repeats a 8-character pattern"},
		{"repeated with a tail", strings.Repeat("s3cr3t-k3y-", 4) + "s3c", "repeats a 11-character pattern"},
		{"alphabet", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN", "evenly spaced"},
		{"digits", "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ", "evenly spaced"},
		{"short", "secret", "5 distinct characters"},
	} {
		for _, debug := range []string{"true", "false"} {
			t.Run(c.name+" debug "+debug, func(t *testing.T) {
				cfg, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY": c.key, "FLOWNEXUS_DEBUG": debug})
				if err != nil {
					t.Fatal(err)
				}
				err = cfg.Validate()
				if !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), c.want) ||
					!strings.Contains(err.Error(), "(from FLOWNEXUS_SECRET_KEY)") || !strings.Contains(err.Error(), "flownexus secret") {
					t.Fatalf("Validate() = %v\nwant ErrWeakKey saying %q", err, c.want)
				}
			})
		}
	}
}

// TestStrongSecretKeysAccepted: what `flownexus secret` prints, random hex
// keys, a passphrase and the development key (debug on) pass.
func TestStrongSecretKeysAccepted(t *testing.T) {
	keys := []string{strongKey, "correct horse battery staple, and then some", DevSecretKey}
	for range 500 {
		keys = append(keys, auth.NewSecretKey())
		b := make([]byte, 16)
		rand.Read(b)
		keys = append(keys, hex.EncodeToString(b))
	}
	for _, k := range keys {
		if err := CheckKeyStrength(k); err != nil {
			t.Fatalf("CheckKeyStrength(%q) = %v", k, err)
		}
	}
	for _, k := range keys[:2] {
		cfg, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY": k, "FLOWNEXUS_DEBUG": "false"})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%q refused: %v", k, err)
		}
	}
}

// TestSecretKeyFileMode: with debug off a key file that group or others
// may read is refused, naming the file, its mode and the fix; with debug
// on it is a warning.
func TestSecretKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	if err := os.WriteFile(f, []byte(strongKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		cfg, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": f, "FLOWNEXUS_DEBUG": "false"})
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		want := fmt.Sprintf("secret key file (FLOWNEXUS_SECRET_KEY_FILE) %s has mode %04o: group or others may read it; run chmod 600 %s", f, mode, f)
		if err == nil || err.Error() != want {
			t.Fatalf("mode %04o, debug off: %v\nwant %s", mode, err, want)
		}
		cfg, err = load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": f}, "--debug=true")
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("mode %04o, debug on: %v", mode, err)
		}
		w := cfg.Warnings()
		if len(w) != 1 || !strings.Contains(w[0].Msg, "chmod 600") || fmt.Sprint(w[0].Attrs) != fmt.Sprintf("[file=%s mode=%04o]", f, mode) {
			t.Fatalf("mode %04o, debug on: warnings %+v", mode, w)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(f, mode)
		cfg, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": f, "FLOWNEXUS_DEBUG": "false"})
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil || len(cfg.Warnings()) != 0 {
			t.Fatalf("mode %04o: %v, warnings %+v", mode, err, cfg.Warnings())
		}
	}
	// A weak key in a file names the file.
	weak := filepath.Join(dir, "weak")
	os.WriteFile(weak, []byte(strings.Repeat(" ", 40)+"\n"), 0o600)
	cfg, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": weak})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), "(from FLOWNEXUS_SECRET_KEY_FILE "+weak+")") {
		t.Fatalf("weak key file: %v", err)
	}
	// A directory is not a key file.
	if _, err := load(t, map[string]string{"FLOWNEXUS_SECRET_KEY_FILE": dir}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory as key file: %v", err)
	}
}

func TestAutoObserveSettings(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AutoObserve != DefaultAutoObserve || c.AutoObserveAttrs != "pmin=60" {
		t.Errorf("defaults: %q %q", c.AutoObserve, c.AutoObserveAttrs)
	}
	// A variable set to "" turns the policy off; a flag wins over it.
	c, err = load(t, map[string]string{"FLOWNEXUS_AUTO_OBSERVE": "", "FLOWNEXUS_AUTO_OBSERVE_ATTRS": "pmin=300"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AutoObserve != "" || c.AutoObserveAttrs != "pmin=300" {
		t.Errorf("from env: %q %q", c.AutoObserve, c.AutoObserveAttrs)
	}
	c, err = load(t, map[string]string{"FLOWNEXUS_AUTO_OBSERVE": "/1/0/1"},
		"--auto-observe", "/3303/0/5700?pmin=10", "--auto-observe-attrs=")
	if err != nil {
		t.Fatal(err)
	}
	if c.AutoObserve != "/3303/0/5700?pmin=10" || c.AutoObserveAttrs != "" {
		t.Errorf("flags: %q %q", c.AutoObserve, c.AutoObserveAttrs)
	}
}
