package simulator

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// startNginx serves dir/root over HTTPS with nginx (skipping the test when
// nginx is not installed) with the given ssl_buffer_size, and returns the
// base URL, the directory whose root/ it serves and the CA that verifies
// it.
func startNginx(t *testing.T, bufferSize string) (base, dir string, ca *x509.CertPool) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/nginx"); e != nil {
			t.Skip("nginx not installed (Debian package nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir = t.TempDir()
	cert, ca := testCert(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	write("nginx.conf", []byte(fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp;
	proxy_temp_path %[1]s/tmp;
	fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp;
	scgi_temp_path %[1]s/tmp;
	server {
		listen %[2]s ssl;
		ssl_certificate %[1]s/cert.pem;
		ssl_certificate_key %[1]s/key.pem;
		ssl_buffer_size %[3]s;
		gzip off;
		root %[1]s/root;
	}
}
`, dir, addr, bufferSize)))
	if err := os.MkdirAll(filepath.Join(dir, "root", "binaries"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error log:\n%s", log)
		}
	})
	return "https://" + addr, dir, ca
}

// TestFirmwareNginx pulls an image from nginx as the system flownexus
// replaces served it: with ssl_buffer_size 1370 the device downloads it;
// with nginx's default 16k buffers its records are too large for the
// modem and the download ends in result 4.
func TestFirmwareNginx(t *testing.T) {
	p := newPeer(t)
	img := FirmwareImage("4.2.0", 100_000)
	for _, c := range []struct {
		buffer string
		state  int64
		result int64
	}{{"1370", fwDownloaded, fwResultInitial}, {"16k", fwIdle, fwResultConnLost}} {
		t.Run("ssl_buffer_size="+c.buffer, func(t *testing.T) {
			base, dir, ca := startNginx(t, c.buffer)
			if err := os.WriteFile(filepath.Join(dir, "root", "binaries", "4.2.0.bin"), img, 0o644); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(cfg *Config) {
				cfg.FirmwareCA = ca
				cfg.Logger = newBufferLogger(&logs)
			})
			p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(base+"/binaries/4.2.0.bin"))
			waitFw(t, d, c.state, c.result)
			if c.result == fwResultConnLost && !strings.Contains(logs.String(), "NRF_EMSGSIZE") {
				t.Errorf("log:\n%s", logs.String())
			}
			if c.state == fwDownloaded {
				if fi := d.Firmware(); fi.Size != len(img) {
					t.Errorf("size %d", fi.Size)
				}
			}
		})
	}
}
