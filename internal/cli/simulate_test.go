package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
)

// startDTLSServer runs the server with plain CoAP and DTLS on loopback
// ports and returns it with the environment that points the CLI at its
// database.
func startDTLSServer(t *testing.T) (*app.App, map[string]string) {
	t.Helper()
	env := dataEnv(t)
	cfg := config.Default()
	cfg.DataDir = env["FLOWNEXUS_DATA_DIR"]
	cfg.HTTPListen, cfg.CoAPListen, cfg.CoAPSListen, cfg.FWListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.SecretKey = config.DevSecretKey
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
	return a, env
}

// simulateUntil runs simulate with args until cond, given its output so
// far, holds (checked every 50 ms, for at most 20 s), then stops it as
// Ctrl-C does and returns its result.
func simulateUntil(t *testing.T, what string, cond func(stdout string) bool, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: config.MapEnv(nil)}, append([]string{"simulate"}, args...))
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(out.String()) {
		select {
		case code := <-done:
			t.Fatalf("simulate ended (exit %d) before %s:\n%s%s", code, what, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no %s within 20 s:\n%s%s", what, out.String(), errb.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		return run{code, out.String(), errb.String()}
	case <-time.After(20 * time.Second):
		t.Fatal("simulate did not stop")
		return run{}
	}
}

// registeredOver reports whether every endpoint is registered over the
// transport.
func registeredOver(a *app.App, tr registry.Transport, endpoints ...string) func(string) bool {
	return func(string) bool {
		for _, ep := range endpoints {
			if reg, ok := a.Registry.ByEndpoint(ep); !ok || reg.Transport != tr {
				return false
			}
		}
		return true
	}
}

func TestDerivePSKKey(t *testing.T) {
	// printf %s urn:imei:350000000000006 | openssl dgst -sha256 -hmac s3cret | sed 's/.*= //' | cut -c1-32
	const want = "3618b14b8410e984e8629996fbcb3098"
	if got := hex.EncodeToString(derivePSKKey("s3cret", "urn:imei:350000000000006")); got != want {
		t.Fatalf("derivePSKKey = %s, want %s (as openssl computes it)", got, want)
	}
}

// TestSimulatePSKSecret is the two-command path with a shared secret: the
// simulator writes the fleet's PSK file into credential import, then runs
// the same fleet over DTLS against the server.
func TestSimulatePSKSecret(t *testing.T) {
	a, env := startDTLSServer(t)
	gen := runCLI(t, nil, "", "simulate", "--devices", "3", "--psk-secret", "s3cret", "--write-psk-file", "-")
	if gen.code != 0 || strings.Count(gen.stdout, "\n") != 4 ||
		!strings.Contains(gen.stdout, "\nurn:imei:350000000000006,urn:imei:350000000000006,3618b14b8410e984e8629996fbcb3098\n") {
		t.Fatalf("write-psk-file: %+v", gen)
	}
	if r := runCLI(t, env, gen.stdout, "credential", "import", "-"); r.code != 0 || !strings.Contains(r.stdout, "imported 3") {
		t.Fatalf("import: %+v", r)
	}
	eps := []string{"urn:imei:350000000000006", "urn:imei:350000000000014", "urn:imei:350000000000022"}
	r := simulateUntil(t, "DTLS registrations", registeredOver(a, registry.TransportDTLS, eps...),
		"--devices", "3", "--psk-secret", "s3cret", "--server", "coaps://"+a.CoAPSAddr().String(), "--progress", "100ms")
	if r.code != 0 || !strings.Contains(r.stdout, "over CoAP/DTLS-PSK") || !strings.Contains(r.stdout, "handshakes 3") {
		t.Fatalf("simulate: %+v", r)
	}
	if strings.Contains(r.stdout+r.stderr, "3618b14b") {
		t.Fatalf("simulate printed a key:\n%s%s", r.stdout, r.stderr)
	}
}

// TestSimulatePSKFileRebind writes random keys to a file, imports it, and
// runs the fleet from that file while rebinding its source ports: the
// devices keep their sessions (one handshake each) thanks to the
// Connection ID.
func TestSimulatePSKFileRebind(t *testing.T) {
	a, env := startDTLSServer(t)
	file := filepath.Join(t.TempDir(), "fleet.csv")
	gen := runCLI(t, nil, "", "simulate", "--devices", "2", "--imei", "49015420323750", "--write-psk-file", file)
	if gen.code != 0 || !strings.Contains(gen.stdout, "wrote 2 PSK credentials to "+file) || !strings.Contains(gen.stdout, "credential import "+file) {
		t.Fatalf("write-psk-file: %+v", gen)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("PSK file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if r := runCLI(t, nil, "", "simulate", "--devices", "2", "--write-psk-file", file); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("overwriting the PSK file: %+v", r)
	}
	if r := runCLI(t, env, "", "credential", "import", file); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	eps := []string{"urn:imei:490154203237500", "urn:imei:490154203237518"}
	rebinds := regexp.MustCompile(`rebinds ([0-9]+)`)
	r := simulateUntil(t, "DTLS registrations and rebinds", func(stdout string) bool {
		// Both devices registered, then rebound at least twice each.
		if !registeredOver(a, registry.TransportDTLS, eps...)("") {
			return false
		}
		m := rebinds.FindAllStringSubmatch(stdout, -1)
		return len(m) > 0 && atoi(m[len(m)-1][1]) >= 4
	}, "--psk-file", file, "--server", a.CoAPSAddr().String(), "--rebind", "200ms", "--progress", "100ms", "--send", "100ms")
	// The last line is printed after the devices deregistered (a Send in
	// flight then may fail); the one before it while they ran.
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	running, final := lines[len(lines)-2], lines[len(lines)-1]
	if r.code != 0 || !strings.Contains(r.stdout, "simulating 2 LwM2M 1.1 devices") || !strings.Contains(running, "errors 0,") ||
		!strings.Contains(final, "registered 0/2") || !strings.Contains(final, "handshakes 2,") {
		t.Fatalf("simulate: %+v\nwant no errors while running and one handshake per device", r)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestSimulateUsage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(good, []byte("urn:imei:1,dev-1,000102030405060708090a0b0c0d0e0f\nurn:imei:2,dev-2,000102030405060708090a0b0c0d0e0f\n"), 0o600)
	os.WriteFile(bad, []byte("urn:imei:1,dev-1,00\nurn:imei:2,dev-2,000102030405060708090a0b0c0d0e0f\nurn:imei:3\n"), 0o600)
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"coaps without credentials": {[]string{"--server", "coaps://127.0.0.1"}, 2, "needs DTLS credentials"},
		"coap with credentials":     {[]string{"--server", "coap://127.0.0.1", "--psk-secret", "s"}, 2, "use coaps://"},
		"other scheme":              {[]string{"--server", "http://127.0.0.1:5683"}, 2, "coap or coaps"},
		"no port":                   {[]string{"--server", "127.0.0.1"}, 2, "want HOST:PORT"},
		"uri with a path":           {[]string{"--server", "coap://127.0.0.1/rd"}, 2, "want HOST:PORT"},
		"secret and file":           {[]string{"--psk-secret", "s", "--psk-file", good}, 2, "not both"},
		"more devices than lines":   {[]string{"--psk-file", good, "--devices", "3"}, 2, "--devices 3 but " + good + " lists 2"},
		"imei with file":            {[]string{"--psk-file", good, "--imei", "49015420323750"}, 2, "--imei has no effect"},
		"write and read":            {[]string{"--psk-file", good, "--write-psk-file", "-"}, 2, "--psk-file reads one"},
		"negative rebind":           {[]string{"--rebind", "-1s"}, 2, "negative"},
		"missing file":              {[]string{"--psk-file", filepath.Join(dir, "none.csv")}, 1, "no such file"},
		"bad file":                  {[]string{"--psk-file", bad}, 1, "2 bad lines\nflownexus: line 1: invalid credential: PSK key is 1 bytes"},
		"fw protocol":               {[]string{"--fw-protocols", "coap,ftp"}, 2, `"ftp" is not coap`},
		"fw coaps without dtls":     {[]string{"--fw-protocols", "coaps"}, 2, "coaps needs DTLS credentials"},
		"fw delivery":               {[]string{"--fw-delivery", "mail"}, 2, "want pull, push or both"},
		"fw fail":                   {[]string{"--fw-fail", "1"}, 2, "want an Update Result in 2..9"},
		"fw block size":             {[]string{"--fw-block-size", "100"}, 2, "power of two"},
		"fw drop":                   {[]string{"--fw-drop-at", "-5"}, 2, "--fw-drop-at must not be negative"},
		"fw ca missing":             {[]string{"--fw-ca", filepath.Join(dir, "none.pem")}, 1, "no such file"},
		"fw ca not pem":             {[]string{"--fw-ca", good}, 2, "no PEM certificate"},
	} {
		r := runCLI(t, nil, "", append([]string{"simulate"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want code %d and %q", name, r, c.code, c.want)
		}
	}
	for server, want := range map[string]string{
		"":                    "127.0.0.1:5684",
		"coaps://example.org": "example.org:5684",
		"coaps://[::1]:6000":  "[::1]:6000",
		"10.0.0.1:7000":       "10.0.0.1:7000",
	} {
		if got, err := serverAddr(server, true); err != nil || got != want {
			t.Errorf("serverAddr(%q, dtls) = %q, %v; want %q", server, got, err, want)
		}
	}
	if got, _ := serverAddr("coap://example.org", false); got != "example.org:5683" {
		t.Errorf("serverAddr(coap://example.org) = %q", got)
	}
}

// TestSimulateFirmwareFlags runs a device with firmware flags against the
// server and reads what they set: /5/0/8, /5/0/9 and an injected result.
func TestSimulateFirmwareFlags(t *testing.T) {
	a, _ := startDTLSServer(t)
	const ep = "urn:imei:350000000000006"
	ctx := context.Background()
	read := func(path string) []lwm2m.Record {
		res, err := a.Devices.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.MustParsePath(path)}})
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		return res.Values
	}
	var failures []string
	checked := false
	r := simulateUntil(t, "the injected firmware result", func(string) bool {
		if !registeredOver(a, registry.TransportUDP, ep)("") {
			return false
		}
		if !checked {
			checked = true
			if got := read("/5/0/8"); len(got) != 2 || got[0].Value.IntValue() != 0 || got[1].Value.IntValue() != 2 {
				failures = append(failures, fmt.Sprintf("/5/0/8 = %v", got))
			}
			if got := read("/5/0/9"); len(got) != 1 || got[0].Value.IntValue() != 0 {
				failures = append(failures, fmt.Sprintf("/5/0/9 = %v", got))
			}
			_, err := a.Devices.Do(ctx, ep, devmgmt.Operation{Kind: devmgmt.KindWrite, Mode: devmgmt.Replace,
				Paths: []lwm2m.Path{lwm2m.MustParsePath("/5/0/1")}, Values: []lwm2m.Record{{Path: lwm2m.MustParsePath("/5/0/1"), Value: lwm2m.String("coap://127.0.0.1:9/fw")}}})
			if err != nil {
				failures = append(failures, "write /5/0/1: "+err.Error())
			}
		}
		if len(failures) > 0 {
			return true
		}
		got := read("/5/0/5")
		return len(got) == 1 && got[0].Value.IntValue() == 7
	}, "--devices", "1", "--server", a.CoAPAddr().String(), "--progress", "0",
		"--fw-protocols", "coap,2", "--fw-delivery", "pull", "--fw-fail", "7", "--fw-block-size", "64", "--fw-chunk", "1024")
	if r.code != 0 || len(failures) > 0 {
		t.Fatalf("simulate: %+v\n%s", r, strings.Join(failures, "\n"))
	}
}
