package firmware_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
)

// fwServer is a download server on a loopback port with its images.
type fwServer struct {
	im   *firmware.Images
	st   *store.Store
	srv  *firmware.Server
	addr string
	ca   *x509.CertPool // nil for plain HTTP
}

// startServer starts a download server with the development certificate
// (TLS) or plain HTTP; record is ServerConfig.RecordSize.
func startServer(t testing.TB, useTLS bool, record int) *fwServer {
	t.Helper()
	return startServerWith(t, useTLS, firmware.ServerConfig{RecordSize: record})
}

// startServerWith is startServer with cfg (its Images and Certificate
// set here).
func startServerWith(t testing.TB, useTLS bool, cfg firmware.ServerConfig) *fwServer {
	t.Helper()
	st := openStore(t, false)
	s := &fwServer{st: st, im: newImages(t, st, firmware.DefaultMaxSize)}
	cfg.Images = s.im
	if useTLS {
		dir := t.TempDir()
		cert, err := firmware.DevCertificate(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificate = &cert
		s.ca = caPool(t, filepath.Join(dir, firmware.DevCAFile))
	}
	s.srv = firmware.NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
	})
	return s
}

func caPool(t testing.TB, path string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in " + path)
	}
	return pool
}

// put stores an image of data as version directly (the store refuses
// empty uploads; the server must still serve what it holds).
func (s *fwServer) put(t testing.TB, version string, data []byte) store.Firmware {
	t.Helper()
	if len(data) > 0 {
		return upload(t, s.im, version, data)
	}
	if err := os.WriteFile(filepath.Join(s.im.Dir(), firmware.Filename(version)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := s.st.CreateFirmware(context.Background(), store.Firmware{Version: version, Filename: firmware.Filename(version),
		SHA256: "e3b0c44298fc1c149afbe4c8996fb92427ae41e4649b934ca495991b7852b855"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recordConn reads a TLS stream through and records the records' headers:
// the largest whole record (header included) per content type.
type recordConn struct {
	net.Conn
	mu      sync.Mutex
	buf     []byte // bytes of the current header, < 5
	skip    int    // body bytes of the current record still to come
	largest map[byte]int
	count   map[byte]int
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	b := p[:n]
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.buf), len(b))
		c.buf = append(c.buf, b[:k]...)
		b = b[k:]
		if len(c.buf) == 5 {
			typ, size := c.buf[0], int(binary.BigEndian.Uint16(c.buf[3:5]))
			c.largest[typ] = max(c.largest[typ], 5+size)
			c.count[typ]++
			c.skip, c.buf = size, c.buf[:0]
		}
	}
	return n, err
}

// recorder dials through recordConns and sums what they saw.
type recorder struct {
	mu    sync.Mutex
	conns []*recordConn
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	rc := &recordConn{Conn: c, largest: map[byte]int{}, count: map[byte]int{}}
	r.mu.Lock()
	r.conns = append(r.conns, rc)
	r.mu.Unlock()
	return rc, nil
}

// largest is the largest record of type typ seen, and how many there were.
func (r *recorder) largest(typ byte) (size, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.mu.Lock()
		size, n = max(size, c.largest[typ]), n+c.count[typ]
		c.mu.Unlock()
	}
	return size, n
}

const recordAppData = 23

// client returns an HTTP client that speaks only TLS version v (0: any)
// to a server trusting ca, through rec.
func client(ca *x509.CertPool, v uint16, rec *recorder) *http.Client {
	tr := &http.Transport{
		DialContext:        rec.dial,
		TLSClientConfig:    &tls.Config{RootCAs: ca, MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}},
		DisableCompression: true,
		ForceAttemptHTTP2:  true, // offer h2: the server must not take it
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func get(t testing.TB, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestRecordSizes reads the raw TLS stream of downloads and checks that no
// application-data record exceeds the 1370-byte cap, for images of 0 B,
// 1 B, 1370 B, 1 MiB and 8 MiB, whole and by Range, over TLS 1.2 and 1.3;
// the same check against a default Go TLS server finds larger records.
func TestRecordSizes(t *testing.T) {
	s := startServer(t, true, firmware.DefaultRecordSize)
	sizes := []int{0, 1, 1370, 1 << 20, 8 << 20}
	images := map[int][]byte{}
	for _, n := range sizes {
		images[n] = pattern(n)
		s.put(t, fmt.Sprintf("size-%d", n), images[n])
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			rec := &recorder{}
			c := client(s.ca, v, rec)
			for _, n := range sizes {
				url := fmt.Sprintf("https://%s/binaries/size-%d.bin", s.addr, n)
				resp, body := get(t, c, url)
				if resp.StatusCode != 200 || resp.ProtoMajor != 1 || resp.TLS.Version != v ||
					resp.TLS.NegotiatedProtocol == "h2" || string(body) != string(images[n]) {
					t.Fatalf("GET %d B: %s %s, %d bytes (equal %v)", n, resp.Status, resp.Proto, len(body), string(body) == string(images[n]))
				}
				if resp.ContentLength != int64(n) || resp.Header.Get("Content-Encoding") != "" {
					t.Fatalf("GET %d B: Content-Length %d, Content-Encoding %q", n, resp.ContentLength, resp.Header.Get("Content-Encoding"))
				}
				if n == 0 {
					continue
				}
				// Ranges as Nordic's download client asks: 2 KiB at a time
				// from the start, one in the middle, the last bytes.
				for _, r := range [][2]int{{0, 2047}, {n / 2, n/2 + 2047}, {max(0, n-100), n - 1}} {
					from, to := r[0], min(r[1], n-1)
					resp, body := get(t, c, url, "Range", fmt.Sprintf("bytes=%d-%d", from, r[1]))
					want := fmt.Sprintf("bytes %d-%d/%d", from, to, n)
					if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want || string(body) != string(images[n][from:to+1]) {
						t.Fatalf("Range %d-%d of %d B: %s, Content-Range %q (want %q), %d bytes", from, r[1], n, resp.Status,
							resp.Header.Get("Content-Range"), want, len(body))
					}
				}
			}
			size, count := rec.largest(recordAppData)
			t.Logf("%s: %d application-data records, the largest %d bytes", tls.VersionName(v), count, size)
			if size > firmware.DefaultRecordSize || count < (9<<20)/1370 {
				t.Fatalf("largest application-data record %d bytes (of %d records), want at most %d", size, count, firmware.DefaultRecordSize)
			}
		})
	}

	// The check can fail: a default Go TLS server writes larger records.
	img := images[1<<20]
	def := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(img) }))
	defer def.Close()
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		rec := &recorder{}
		c := client(nil, v, rec)
		c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
		c.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
		if _, body := get(t, c, def.URL); len(body) != len(img) {
			t.Fatalf("default server: %d bytes", len(body))
		}
		if size, _ := rec.largest(recordAppData); size <= 2048 {
			t.Fatalf("%s: the default Go TLS server's largest record is %d bytes: the check cannot tell", tls.VersionName(v), size)
		} else {
			t.Logf("%s: default Go TLS server: largest application-data record %d bytes", tls.VersionName(v), size)
		}
	}
}

// TestDownloadHTTP checks the HTTP surface over plain HTTP and TLS: HEAD,
// ETag and If-None-Match, If-Range, bad and past-the-end ranges, several
// ranges, unknown images, other methods, and traversal attempts.
func TestDownloadHTTP(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprint("tls=", useTLS), func(t *testing.T) {
			s := startServer(t, useTLS, 0)
			data := pattern(5000)
			f := s.put(t, "1.0", data)
			// A file beside the firmware directory that traversal would reach.
			os.WriteFile(filepath.Join(filepath.Dir(s.im.Dir()), "secret.bin"), []byte("secret"), 0o644)
			scheme := "http"
			if useTLS {
				scheme = "https"
			}
			base := scheme + "://" + s.addr
			c := client(s.ca, 0, &recorder{})
			etag := `"` + f.SHA256 + `"`

			resp, body := get(t, c, base+"/binaries/1.0.bin")
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != etag || resp.Header.Get("Accept-Ranges") != "bytes" ||
				resp.Header.Get("Content-Type") != "application/octet-stream" || string(body) != string(data) || resp.Proto != "HTTP/1.1" {
				t.Fatalf("GET: %s %s, headers %v, %d bytes", resp.Status, resp.Proto, resp.Header, len(body))
			}
			req, _ := http.NewRequest(http.MethodHead, base+"/binaries/1.0.bin", nil)
			hr, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			hr.Body.Close()
			if hr.StatusCode != 200 || hr.ContentLength != 5000 || hr.Header.Get("ETag") != etag {
				t.Fatalf("HEAD: %s, length %d", hr.Status, hr.ContentLength)
			}
			for _, c2 := range []struct {
				hdr    []string
				status int
				body   string
				cr     string
			}{
				{[]string{"Accept-Encoding", "gzip, br"}, 200, string(data), ""},
				{[]string{"If-None-Match", etag}, 304, "", ""},
				{[]string{"If-None-Match", `"other"`}, 200, string(data), ""},
				{[]string{"Range", "bytes=100-199", "If-Range", etag}, 206, string(data[100:200]), "bytes 100-199/5000"},
				{[]string{"Range", "bytes=100-199", "If-Range", `"old"`}, 200, string(data), ""},
				{[]string{"Range", "bytes=4990-"}, 206, string(data[4990:]), "bytes 4990-4999/5000"},
				{[]string{"Range", "bytes=-10"}, 206, string(data[4990:]), "bytes 4990-4999/5000"},
				{[]string{"Range", "bytes=4000-9999"}, 206, string(data[4000:]), "bytes 4000-4999/5000"},
				{[]string{"Range", "bytes=5000-5100"}, 416, "", "bytes */5000"},
				{[]string{"Range", "bytes=9000-"}, 416, "", "bytes */5000"},
				{[]string{"Range", "bytes=abc"}, 416, "", ""},
				{[]string{"Range", "bytes=200-100"}, 416, "", ""},
				{[]string{"Range", "bytes=0-9,20-29"}, 200, string(data), ""},
				{[]string{"Range", "lines=1-2"}, 200, string(data), ""},
			} {
				resp, body := get(t, c, base+"/binaries/1.0.bin", c2.hdr...)
				if resp.StatusCode != c2.status || (c2.status != 416 && string(body) != c2.body) || resp.Header.Get("Content-Range") != c2.cr ||
					resp.Header.Get("Content-Encoding") != "" {
					t.Errorf("%v: %s, Content-Range %q, %d bytes; want %d, %q", c2.hdr, resp.Status, resp.Header.Get("Content-Range"), len(body), c2.status, c2.cr)
				}
			}
			for _, path := range []string{"/binaries/2.0.bin", "/binaries/1.0", "/binaries/", "/binaries", "/",
				"/binaries/../secret.bin", "/binaries/%2e%2e%2fsecret.bin", "/binaries/%2E%2E/secret.bin",
				"/binaries/..%2Fsecret.bin", `/binaries/..\secret.bin`, "/binaries/..%5csecret.bin",
				"/binaries/1.0.bin/", "/binaries//1.0.bin", "/binaries/./1.0.bin", "/firmware/1.0.bin",
				"/binaries/%00", "/binaries/1.0.bin%00", "/../secret.bin"} {
				if status := rawStatus(t, s, "GET", path); status != 404 {
					t.Errorf("GET %s: %d, want 404", path, status)
				}
			}
			if status := rawStatus(t, s, "POST", "/binaries/1.0.bin"); status != 405 {
				t.Errorf("POST: %d, want 405", status)
			}
		})
	}
}

// rawStatus sends a request line as given (no client cleans it) and
// returns the status.
func rawStatus(t *testing.T, s *fwServer, method, path string) int {
	t.Helper()
	var conn net.Conn
	var err error
	if s.ca != nil {
		conn, err = tls.Dial("tcp", s.addr, &tls.Config{RootCAs: s.ca})
	} else {
		conn, err = net.Dial("tcp", s.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDevCertificate(t *testing.T) {
	dir := t.TempDir()
	c1, err := firmware.DevCertificate(dir, []string{"fw.example.org", "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c1.Certificate[0])
	pool := caPool(t, filepath.Join(dir, firmware.DevCAFile))
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "fw.example.org", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if len(c1.Certificate) != 1 || leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("chain of %d, key %v: want one ECDSA leaf", len(c1.Certificate), leaf.PublicKeyAlgorithm)
	}
	if w := firmware.CheckChain(&c1, firmware.DefaultRecordSize); w != "" {
		t.Fatalf("the development chain draws a warning: %s", w)
	}
	// Reused on the next start; a new host gets a new leaf from the same CA.
	c2, err := firmware.DevCertificate(dir, []string{"fw.example.org"})
	if err != nil || string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Fatalf("second start made a new certificate (%v)", err)
	}
	c3, err := firmware.DevCertificate(dir, []string{"other.example.org"})
	if err != nil || string(c3.Certificate[0]) == string(c1.Certificate[0]) {
		t.Fatalf("new host, same certificate (%v)", err)
	}
	leaf3, _ := x509.ParseCertificate(c3.Certificate[0])
	if _, err := leaf3.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.org"}); err != nil {
		t.Fatalf("new leaf does not verify against the CA kept: %v", err)
	}
	// A long chain draws the warning.
	big := c1
	big.Certificate = [][]byte{c1.Certificate[0], make([]byte, 900)}
	if w := firmware.CheckChain(&big, firmware.DefaultRecordSize); !strings.Contains(w, "over the 1370-byte record cap") {
		t.Fatalf("warning %q", w)
	}
}

// TestStalledDeviceDropped: a device that stops reading mid-download is
// dropped after the write timeout, and its connection slot goes to the
// next device (MaxConns 1 here).
func TestStalledDeviceDropped(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprint("tls=", useTLS), func(t *testing.T) {
			s := startServerWith(t, useTLS, firmware.ServerConfig{MaxConns: 1, WriteTimeout: 300 * time.Millisecond})
			data := pattern(8 << 20)
			s.put(t, "1.0", data)
			var stalled net.Conn
			var err error
			if useTLS {
				stalled, err = tls.Dial("tcp", s.addr, &tls.Config{RootCAs: s.ca})
			} else {
				stalled, err = net.Dial("tcp", s.addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			if tc, ok := stalled.(*tls.Conn); ok {
				tc.NetConn().(*net.TCPConn).SetReadBuffer(4096)
			} else {
				stalled.(*net.TCPConn).SetReadBuffer(4096)
			}
			fmt.Fprintf(stalled, "GET /binaries/1.0.bin HTTP/1.1\r\nHost: x\r\n\r\n")
			// The next device waits for the slot, and gets the image once
			// the stalled one is dropped.
			scheme := "http"
			if useTLS {
				scheme = "https"
			}
			start := time.Now()
			resp, body := get(t, client(s.ca, 0, &recorder{}), scheme+"://"+s.addr+"/binaries/1.0.bin")
			if resp.StatusCode != 200 || len(body) != len(data) {
				t.Fatalf("next device: %s, %d bytes", resp.Status, len(body))
			}
			if waited := time.Since(start); waited < 250*time.Millisecond {
				t.Fatalf("served after %v: the stalled device's slot was not held", waited)
			}
			// Shutdown is prompt although every slot is taken (by the
			// idle keep-alive connection).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start = time.Now()
			if err := s.srv.Shutdown(ctx); err != nil || time.Since(start) > 2*time.Second {
				t.Fatalf("shutdown: %v after %v", err, time.Since(start))
			}
		})
	}
}
