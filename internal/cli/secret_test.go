package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

const (
	secretA = "Xq3v9LmT0pWz7Rk2Hs5Nd8Bf1Yc4Gj6U" // the key the PSKs are sealed with first
	secretB = "Tn8Kd2Wq5Zr0Lm7Vx3Pb9Hc4Yf6Js1Ga" // the key they are rotated to
	secretC = "Mv4Qz8Rt1Wn6Kb3Xy0Hd5Lf9Ps2Jc7Ge" // a key nobody sealed anything with
)

// forEachDatabase runs fn with the environment of a fresh SQLite data
// directory and, when FLOWNEXUS_TEST_POSTGRES_URL is set, of a fresh
// PostgreSQL database.
func forEachDatabase(t *testing.T, fn func(t *testing.T, env map[string]string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, serverEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		env := serverEnv(t)
		env["FLOWNEXUS_DATABASE_URL"] = storetest.PostgresURL(t)
		fn(t, env)
	})
}

// with returns a copy of env with the given variables set ("" removes).
func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// startServerWith runs the server of env (data directory, database and
// secret key) with DTLS on loopback ports.
func startServerWith(t *testing.T, env map[string]string) *app.App {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.DatabaseURL, cfg.SecretKey = env["FLOWNEXUS_DATA_DIR"], env["FLOWNEXUS_DATABASE_URL"], env["FLOWNEXUS_SECRET_KEY"]
	cfg.HTTPListen, cfg.CoAPListen, cfg.CoAPSListen, cfg.FWListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	ctx := context.Background()
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler), app.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Stop(ctx)
	})
	return a
}

// runServeBriefly runs serve with env and returns its result if it ends
// within 20 s; a serve that keeps running fails the test.
func runServeBriefly(t *testing.T, env map[string]string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb syncBuffer
	code := Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)}, []string{"serve"})
	if ctx.Err() != nil {
		t.Fatalf("serve ran until stopped (exit %d):\n%s", code, errb.String())
	}
	return run{code, out.String(), errb.String()}
}

func TestSecretPrintsStrongKeys(t *testing.T) {
	for range 50 {
		r := runCLI(t, nil, "", "secret")
		key := strings.TrimSuffix(r.stdout, "\n")
		if r.code != 0 || len(key) < config.MinSecretKeyLen || config.CheckKeyStrength(key) != nil {
			t.Fatalf("secret printed %q (exit %d): %v", key, r.code, config.CheckKeyStrength(key))
		}
	}
	r := runCLI(t, map[string]string{"FLOWNEXUS_SECRET_KEY": secretA}, "", "secret", "fingerprint")
	if r.code != 0 || r.stdout != credential.Fingerprint(secretA)+"\n" {
		t.Fatalf("secret fingerprint: %+v", r)
	}
	if r := runCLI(t, nil, "", "secret", "frob"); r.code != 2 || !strings.Contains(r.stderr, `unknown secret command "frob"`) {
		t.Fatalf("unknown secret command: %+v", r)
	}
}

// TestSecretRotate is the operator's path after changing the secret key:
// the server and `credential add` refuse the new key, naming both
// fingerprints; `secret rotate` with the old key re-seals the PSKs; then
// simulated devices complete real DTLS handshakes with their PSKs against
// the server running with the new key.
func TestSecretRotate(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, env map[string]string) {
		envA, envB := with(env, "FLOWNEXUS_SECRET_KEY", secretA), with(env, "FLOWNEXUS_SECRET_KEY", secretB)
		gen := runCLI(t, nil, "", "simulate", "--devices", "3", "--psk-secret", "s3cret", "--write-psk-file", "-")
		if r := runCLI(t, envA, gen.stdout, "credential", "import", "-"); r.code != 0 {
			t.Fatalf("import: %+v", r)
		}
		fpA, fpB := credential.Fingerprint(secretA), credential.Fingerprint(secretB)

		r := runServeBriefly(t, envB)
		if r.code != 1 || !strings.Contains(r.stderr, "fingerprint "+fpA) || !strings.Contains(r.stderr, "fingerprint "+fpB) ||
			!strings.Contains(r.stderr, "flownexus: to go on, do one of:") || !strings.Contains(r.stderr, "flownexus secret rotate") {
			t.Fatalf("serve with another key: %+v", r)
		}
		if strings.Contains(r.stderr, secretA) || strings.Contains(r.stderr, secretB) {
			t.Fatalf("a key was printed:\n%s", r.stderr)
		}
		if r := runCLI(t, envB, "", "credential", "add", "urn:imei:9", "--psk-identity", "d9", "--psk-key", "000102030405060708090a0b0c0d0e0f"); r.code != 1 ||
			!strings.Contains(r.stderr, "fingerprint "+fpA) {
			t.Fatalf("credential add with another key: %+v", r)
		}

		keyFileA := filepath.Join(t.TempDir(), "old.key")
		os.WriteFile(keyFileA, []byte(secretA+"\n"), 0o600)
		for name, c := range map[string]struct {
			env   map[string]string
			stdin string
			args  []string
			code  int
			want  string
		}{
			"no old key":     {envB, "", nil, 2, "secret rotate needs the old key"},
			"two old keys":   {with(envB, oldKeyEnv, secretA), "", []string{"--old-key-file", keyFileA}, 2, "give the old key once"},
			"wrong old key":  {with(envB, oldKeyEnv, secretC), "", nil, 1, "the old secret key given does not open the stored PSK keys: its fingerprint is " + credential.Fingerprint(secretC)},
			"same key":       {with(envB, oldKeyEnv, secretB), "", nil, 1, "the old secret key is the configured one"},
			"missing file":   {envB, "", []string{"--old-key-file", keyFileA + ".none"}, 1, "old key (--old-key-file)"},
			"empty stdin":    {envB, "\n", []string{"--old-key-stdin"}, 1, "old key (--old-key-stdin): empty line"},
			"to the dev key": {with(envA, "FLOWNEXUS_SECRET_KEY", "", oldKeyEnv, secretA), "", nil, 1, "the configured key is the public development key"},
		} {
			r := runCLI(t, c.env, c.stdin, append([]string{"secret", "rotate"}, c.args...)...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%s: %+v\nwant exit %d and %q", name, r, c.code, c.want)
			}
		}

		r = runCLI(t, envB, "", "secret", "rotate", "--old-key-file", keyFileA)
		if r.code != 0 || r.stdout != "re-sealed 3 PSK keys with the configured key (fingerprint "+fpB+", was "+fpA+")\n" {
			t.Fatalf("rotate: %+v", r)
		}
		if r := runCLI(t, envB, secretA+"\n", "secret", "rotate", "--old-key-stdin"); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
			t.Fatalf("rotate again: %+v", r)
		}
		if r := runServeBriefly(t, envA); r.code != 1 || !strings.Contains(r.stderr, "fingerprint "+fpB) {
			t.Fatalf("serve with the old key after the rotation: %+v", r)
		}

		a := startServerWith(t, envB)
		eps := []string{"urn:imei:350000000000006", "urn:imei:350000000000014", "urn:imei:350000000000022"}
		r = simulateUntil(t, "DTLS registrations with the rotated PSKs", registeredOver(a, registry.TransportDTLS, eps...),
			"--devices", "3", "--psk-secret", "s3cret", "--server", "coaps://"+a.CoAPSAddr().String(), "--progress", "100ms")
		if r.code != 0 || !strings.Contains(r.stdout, "handshakes 3") {
			t.Fatalf("simulate: %+v", r)
		}
		entries, err := a.Store.ListAudit(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		rotations := 0
		for _, e := range entries {
			if e.Action == "secret.rotate" {
				rotations++
				if e.Actor != "cli" || !strings.Contains(string(e.Detail), `"resealed":3`) {
					t.Errorf("audit entry %+v %s", e, e.Detail)
				}
			}
		}
		if rotations != 1 {
			t.Fatalf("%d secret.rotate audit entries, want 1", rotations)
		}
	})
}

// TestSecretReset: with the old key lost, `secret reset` lists the PSKs
// the configured key cannot open, and with --drop-psks removes them so
// that credentials can be added again with the new key.
func TestSecretReset(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, env map[string]string) {
		envA, envB := with(env, "FLOWNEXUS_SECRET_KEY", secretA), with(env, "FLOWNEXUS_SECRET_KEY", secretB)
		const key = "000102030405060708090a0b0c0d0e0f"
		for _, args := range [][]string{
			{"urn:imei:1", "--psk-identity", "dev-1", "--psk-key", key},
			{"urn:imei:2", "--psk-identity", "dev-2", "--psk-key", key},
			{"urn:imei:3", "--cert-cn", "urn:imei:3"},
		} {
			if r := runCLI(t, envA, "", append([]string{"credential", "add"}, args...)...); r.code != 0 {
				t.Fatalf("add: %+v", r)
			}
		}
		fpA, fpB := credential.Fingerprint(secretA), credential.Fingerprint(secretB)
		r := runCLI(t, envB, "", "secret", "reset")
		want := "2 PSK credentials do not open with the configured key (fingerprint " + fpB + "; the database records " + fpA + "), 0 do\n" +
			"  urn:imei:1\n  urn:imei:2\nnothing changed: run again with --drop-psks to remove them and record the configured key\n"
		if r.code != 0 || r.stdout != want {
			t.Fatalf("reset dry run: %+v\nwant stdout\n%s", r, want)
		}
		if r := runCLI(t, envA, "", "credential", "list"); r.code != 0 || strings.Count(r.stdout, "\n") != 4 {
			t.Fatalf("the dry run changed the credentials: %+v", r)
		}
		r = runCLI(t, envB, "", "secret", "reset", "--drop-psks")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "removed 2 PSK credentials the configured key cannot open; recorded the configured key (fingerprint "+fpB+", was "+fpA+")\n") {
			t.Fatalf("reset: %+v", r)
		}
		if r := runCLI(t, envB, "", "secret", "reset", "--drop-psks"); r.code != 0 || !strings.HasPrefix(r.stdout, "nothing to do") {
			t.Fatalf("reset again: %+v", r)
		}
		r = runCLI(t, envB, "", "credential", "list")
		if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "urn:imei:3") {
			t.Fatalf("list after reset: %+v", r)
		}
		if r := runCLI(t, envB, "", "credential", "add", "urn:imei:1", "--psk-identity", "dev-1", "--psk-key", key); r.code != 0 {
			t.Fatalf("add with the new key after reset: %+v", r)
		}
		if r := runCLI(t, envA, "", "credential", "add", "urn:imei:2", "--psk-identity", "dev-2", "--psk-key", key); r.code != 1 ||
			!strings.Contains(r.stderr, "fingerprint "+fpB) {
			t.Fatalf("add with the old key after reset: %+v", r)
		}
	})
}

// TestSecretKeyChecksAtStart: commands refuse a weak key, and a key file
// others may read with debug off; with debug on they warn about the file.
func TestSecretKeyChecksAtStart(t *testing.T) {
	env := dataEnv(t)
	if r := runCLI(t, with(env, "FLOWNEXUS_SECRET_KEY", strings.Repeat(" ", 40)), "", "migrate"); r.code != 1 ||
		!strings.Contains(r.stderr, "secret key is low-entropy: it has 1 distinct character") {
		t.Fatalf("40 spaces: %+v", r)
	}
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	os.WriteFile(keyFile, []byte(secretA+"\n"), 0o644)
	r := runCLI(t, with(env, "FLOWNEXUS_SECRET_KEY_FILE", keyFile, "FLOWNEXUS_DEBUG", "false"), "", "migrate")
	if r.code != 1 || !strings.Contains(r.stderr, "has mode 0644: group or others may read it; run chmod 600 "+keyFile) {
		t.Fatalf("0644 key file, debug off: %+v", r)
	}
	r = runCLI(t, with(env, "FLOWNEXUS_SECRET_KEY_FILE", keyFile), "", "migrate")
	if r.code != 0 || !strings.Contains(r.stderr, `level=WARN msg="secret key file is readable by group or others (refused with debug off): chmod 600 it" file=`+keyFile+" mode=0644") {
		t.Fatalf("0644 key file, debug on: %+v", r)
	}
	os.Chmod(keyFile, 0o600)
	if r := runCLI(t, with(env, "FLOWNEXUS_SECRET_KEY_FILE", keyFile, "FLOWNEXUS_DEBUG", "false"), "", "migrate"); r.code != 0 || strings.Contains(r.stderr, "WARN") {
		t.Fatalf("0600 key file: %+v", r)
	}
}
