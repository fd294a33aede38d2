package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

const (
	oldSecret = "the secret key the PSKs were sealed with, first"
	newSecret = "a new secret key from flownexus secret, second"
)

// logBuffer collects a server's log lines for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// devicePSK is the PSK of simulated device i in these tests.
func devicePSK(i int) simulator.PSK {
	return simulator.PSK{Identity: fmt.Sprintf("sim-%d", i), Key: []byte(fmt.Sprintf("key-of-device-%04d", i))}
}

// addDevicePSKs binds PSKs to devices 0..n-1.
func addDevicePSKs(t *testing.T, s *server, n int) {
	t.Helper()
	for i := range n {
		ep, err := (simulator.Config{}).EndpointName(i)
		if err != nil {
			t.Fatal(err)
		}
		k := devicePSK(i)
		if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"},
			credential.AddRequest{Endpoint: ep, PSKIdentity: k.Identity, PSKKey: k.Key}); err != nil {
			t.Fatal(err)
		}
	}
}

// rotate does what `flownexus secret rotate` does, with the server
// stopped: re-seal the PSKs and the saved DTLS sessions from oldKey to
// cfg's key.
func rotate(t *testing.T, cfg config.Config, oldKey string) credential.RotateResult {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, cfg, testLogger(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	creds, err := credential.New(st, cfg.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := creds.Rotate(ctx, store.Actor{Name: "test"}, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := creds.ResealSessionFile(cfg.DTLSSessionFile(), oldKey); !ok || err != nil {
		t.Fatalf("re-seal the session file: %v, %v", ok, err)
	}
	return res
}

// TestSecretKeyMismatchRefusesStart: a server started with another secret
// key than the one its PSKs were sealed with refuses to start, naming both
// fingerprints and the ways out, and changes nothing.
func TestSecretKeyMismatchRefusesStart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	cfg.SecretKey = oldSecret
	s := startServer(t, cfg, Tuning{})
	addDevicePSKs(t, s, 2)
	s.stop()

	cfg.SecretKey = newSecret
	a, err := New(context.Background(), cfg, testLogger(t), Tuning{})
	if err == nil {
		a.Stop(context.Background())
		t.Fatal("the server started with another secret key")
	}
	msg := err.Error()
	for _, want := range []string{
		"(fingerprint " + credential.Fingerprint(newSecret) + ")",
		"(fingerprint " + credential.Fingerprint(oldSecret) + ")",
		"2 of 2 PSK keys do not open",
		"flownexus secret rotate, with the old key in FLOWNEXUS_OLD_SECRET_KEY",
		"flownexus secret reset --drop-psks removes the 2 PSK credentials",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, oldSecret) || strings.Contains(msg, newSecret) {
		t.Fatalf("error shows a key:\n%s", msg)
	}
	// Forgetting to set the key is named as such.
	cfg.SecretKey = config.DevSecretKey
	if _, err := New(context.Background(), cfg, testLogger(t), Tuning{}); err == nil ||
		!strings.Contains(err.Error(), "the configured key is the public development key") {
		t.Fatalf("start with the development key: %v", err)
	}
	// The old key still starts it.
	cfg.SecretKey = oldSecret
	startServer(t, cfg, Tuning{})
}

// TestRotatedSecretKeyEndToEnd rotates the secret key of a server whose
// devices talk DTLS-PSK: the devices that were connected resume their
// saved sessions under the new key without a handshake, and a device that
// connects for the first time completes a full handshake with its
// re-sealed PSK.
func TestRotatedSecretKeyEndToEnd(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	cfg.SecretKey = oldSecret
	s := startServer(t, cfg, Tuning{})
	addDevicePSKs(t, s, 3)
	// Devices 0 and 1 connect now, device 2 only after the rotation.
	f := startFleet(t, s, 2, func(c *simulator.Config) {
		c.Server = s.CoAPSAddr().String()
		c.PSK = devicePSK
	})
	cfg.CoAPListen, cfg.CoAPSListen = s.CoAPAddr().String(), s.CoAPSAddr().String()
	s.stop()

	cfg.SecretKey = newSecret
	if res := rotate(t, cfg, oldSecret); res.Resealed != 3 {
		t.Fatalf("rotation: %+v", res)
	}
	logs := &logBuffer{}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)), Tuning{OpTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := &server{App: a, cfg: cfg, base: "http://" + a.HTTPAddr()}
	t.Cleanup(s2.stop)
	// The devices de-register while the server still answers.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Stop(ctx)
	})
	if !strings.Contains(logs.String(), `msg="DTLS sessions restored" sessions=2`) {
		t.Fatalf("sessions not restored under the new key:\n%s", logs)
	}
	for _, d := range f.Devices() {
		before := d.Stats().SendsAcked
		d.TriggerSend()
		eventually(t, 10*time.Second, "send after the rotation acknowledged", func() bool { return d.Stats().SendsAcked > before })
		if st := d.Stats(); st.Handshakes != 1 {
			t.Fatalf("%s: %d handshakes, want 1 (the saved session resumed)", d.Endpoint(), st.Handshakes)
		}
	}
	late := newFleet(t, s2, 1, func(c *simulator.Config) {
		c.Server = a.CoAPSAddr().String()
		c.Endpoint = func(int) string { ep, _ := (simulator.Config{}).EndpointName(2); return ep }
		c.PSK = func(int) simulator.PSK { return devicePSK(2) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := late.Start(ctx); err != nil {
		t.Fatalf("a device with a re-sealed PSK: %v", err)
	}
	d := late.Device(0)
	reg, ok := a.Registry.ByEndpoint(d.Endpoint())
	if !ok || reg.Transport != registry.TransportDTLS || d.Stats().Handshakes != 1 {
		t.Fatalf("%s: registration %+v %v, %d handshakes", d.Endpoint(), reg, ok, d.Stats().Handshakes)
	}
}

// TestSessionFileUnderOldKey: saved DTLS sessions that no longer open
// (the PSKs were dropped with `secret reset`, so nothing re-sealed them)
// are discarded at start with a log line that says why; the server runs.
func TestSessionFileUnderOldKey(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	cfg.SecretKey = oldSecret
	s := startServer(t, cfg, Tuning{})
	addDevicePSKs(t, s, 1)
	f := startFleet(t, s, 1, func(c *simulator.Config) {
		c.Server = s.CoAPSAddr().String()
		c.PSK = devicePSK
	})
	s.stop()
	// The device is not needed further: no De-register to wait for.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	f.Stop(stopped)

	cfg.SecretKey = newSecret
	ctx := context.Background()
	st, err := OpenStore(ctx, cfg, testLogger(t), true)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := credential.New(st, cfg.SecretKey)
	if res, err := creds.ResetSecretKey(ctx, store.Actor{Name: "test"}, true); err != nil || len(res.Unreadable) != 1 {
		t.Fatalf("reset: %+v, %v", res, err)
	}
	st.Close()

	logs := &logBuffer{}
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := &server{App: a, cfg: cfg, base: "http://" + a.HTTPAddr()}
	t.Cleanup(s2.stop)
	if got := logs.String(); !strings.Contains(got, `level=WARN msg="saved DTLS sessions not restored"`) ||
		!strings.Contains(got, "secret key changed?") {
		t.Fatalf("no clear line for the stale session file:\n%s", got)
	}
	if code := s2.call(t, "GET", "/api/v1/endpoints", nil, nil); code != 401 { // no token: up and answering
		t.Fatalf("server after the stale session file: %d", code)
	}
}

// TestMismatchHelpDevelopmentKey: PSKs sealed with the public development
// key (a server first run with debug on) get the rotation command that
// names it.
func TestMismatchHelpDevelopmentKey(t *testing.T) {
	help := mismatchHelp(&credential.KeyMismatchError{Configured: credential.Fingerprint(newSecret),
		Stored: credential.Fingerprint(config.DevSecretKey), PSKs: 3, Unreadable: 3})
	for _, want := range []string{
		"the PSK keys were sealed with the public development key",
		"flownexus secret rotate, with FLOWNEXUS_OLD_SECRET_KEY=" + config.DevSecretKey + ";",
		"removes the 3 PSK credentials",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "the configured key is the public development key") {
		t.Errorf("help says the configured key is the development key:\n%s", help)
	}
}
