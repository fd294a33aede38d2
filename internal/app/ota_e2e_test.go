package app

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
)

// End-to-end tests of firmware over the air with nothing but the server:
// the image uploaded through the API, served by the server's own IoT-safe
// HTTPS server (records of at most 1370 bytes, development CA) and its
// CoAP and CoAPS listeners (route fw/), and simulated devices that
// download as an nRF91 does (HTTPS by 2 KiB ranges, refusing any TLS
// record over 2048 bytes; CoAP Block2 asking each block itself).

// devCA returns the pool of the development CA the firmware server wrote
// into the data directory of cfg.
func devCA(t *testing.T, dataDir string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, firmware.DevCAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("development CA: no certificate")
	}
	return pool
}

// uploadImage uploads data as version through the API.
func (s *server) uploadImage(t *testing.T, version string, data []byte) {
	t.Helper()
	if code, b := s.postImage(t, "?version="+version, "application/octet-stream", data); code != http.StatusCreated {
		t.Fatalf("upload %s: %d %s", version, code, b)
	}
}

// otaTuning steps updates often, with the download bases of the server's
// own listeners.
func otaTuning() Tuning {
	return Tuning{Firmware: FirmwareTuning{PollInterval: 300 * time.Millisecond, ReadInterval: 2 * time.Second}}
}

// TestFirmwareOverTheAir updates three plain-CoAP devices from the
// server's own download paths, each download cut once in the middle: over
// CoAP Block2 (chosen from the device's protocol support), over HTTPS
// (asked for; resumed by Range) and by a Block1 push. Each ends succeeded
// with the image's version on the device and the whole image received.
func TestFirmwareOverTheAir(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.FWListen = "127.0.0.1:0"
	s := startServer(t, cfg, otaTuning())
	img := simulator.FirmwareImage("3.1.0", 150_000)
	s.uploadImage(t, "3.1.0", img)
	ca := devCA(t, dir)
	f := startFleet(t, s, 3, func(c *simulator.Config) {
		c.FirmwareDelay = 100 * time.Millisecond
		c.FirmwareCA = ca
		c.FirmwareDropAt = 60_000
	})

	for i, c := range []struct{ method, protocol, wantURI string }{
		{"", "", "coap://127.0.0.1:"},
		{"", "https", "https://127.0.0.1:"},
		{"push", "", ""},
	} {
		d := f.Device(i)
		u := s.startUpdate(t, map[string]any{"endpoint": d.Endpoint(), "version": "3.1.0", "method": c.method, "protocol": c.protocol})
		done := s.waitUpdate(t, u.ID, 60*time.Second, nil)
		if done.State != "succeeded" || !strings.HasPrefix(done.PackageURI, c.wantURI) {
			t.Fatalf("%s (%s %s): %+v", d.Endpoint(), c.method, c.protocol, done)
		}
		if c.wantURI != "" && !strings.HasSuffix(done.PackageURI, "/3.1.0.bin") {
			t.Errorf("package URI %s", done.PackageURI)
		}
		if v, _ := d.Value(lwm2m.MustParsePath("/3/0/3")); v.StringValue() != "3.1.0" {
			t.Errorf("%s: device version %v", d.Endpoint(), v)
		}
		if got := d.Firmware(); got.Size != len(img) {
			t.Errorf("%s: device received %+v, want %d bytes", d.Endpoint(), got, len(img))
		}
	}
}

// TestFirmwareOverTheAirFailures: a device that reports each failing
// Update Result (2–9, injected in the simulator at the stage where a
// real device meets it) ends its update FAILED with the result's meaning,
// and the device keeps its old version.
func TestFirmwareOverTheAirFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.FWListen = "127.0.0.1:0"
	s := startServer(t, cfg, otaTuning())
	s.uploadImage(t, "5.0.0", simulator.FirmwareImage("5.0.0", 4000))
	for code := 2; code <= 9; code++ {
		f := startFleet(t, s, 1, func(c *simulator.Config) {
			c.Endpoint = func(int) string { return fmt.Sprintf("urn:dev:fail-%d", code) }
			c.FirmwareDelay = 50 * time.Millisecond
			c.FirmwareFail = code
		})
		d := f.Device(0)
		u := s.startUpdate(t, map[string]any{"endpoint": d.Endpoint(), "version": "5.0.0"})
		done := s.waitUpdate(t, u.ID, 30*time.Second, nil)
		want := fwupdate.ResultMeaning(code)
		if done.State != "failed" || done.ResultCode != code || done.Result != want {
			t.Errorf("result %d: %+v, want failed with %q", code, done, want)
		}
		if v, _ := d.Value(lwm2m.MustParsePath("/3/0/3")); v.StringValue() == "5.0.0" {
			t.Errorf("result %d: the device runs the new version", code)
		}
		// After a failed install (8) a device may keep the package
		// (Downloaded) or drop it (Idle); every other failure leaves it Idle.
		if v, _ := d.Value(lwm2m.MustParsePath("/5/0/3")); code != 8 && v.IntValue() != 0 {
			t.Errorf("result %d: device firmware state %v, want 0 (idle)", code, v)
		}
	}
}
