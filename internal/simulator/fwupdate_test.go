package simulator

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestFirmwareImage(t *testing.T) {
	img := FirmwareImage("2.0.1", 4096)
	if len(img) != 4096 {
		t.Fatalf("size %d", len(img))
	}
	if !bytes.Equal(img, FirmwareImage("2.0.1", 4096)) {
		t.Error("not deterministic")
	}
	if bytes.Equal(img[128:], FirmwareImage("2.0.2", 4096)[128:]) {
		t.Error("payload does not depend on the version")
	}
	if v, err := verifyImage(img, "1.0.0"); err != nil || v != "2.0.1" {
		t.Fatalf("verify: %q %v", v, err)
	}
	if !strings.HasPrefix(string(img), "FNXSIM1 version=2.0.1 size=4096 sha256=") {
		t.Errorf("header %q", img[:80])
	}
	long := strings.Repeat("v", 64)
	if v, err := verifyImage(FirmwareImage(long, 192), "1.0.0"); err != nil || v != long {
		t.Errorf("long version: %q %v", v, err)
	}
	if v, err := verifyImage(FirmwareImage("3", MinFirmwareImage), "1"); err != nil || v != "3" {
		t.Errorf("smallest image: %q %v", v, err)
	}

	flipped := bytes.Clone(img)
	flipped[3000] ^= 1
	trunc := img[:4000]
	padded := bytes.Clone(img)
	padded[127] = 'x'
	badHeader := bytes.Clone(img)
	copy(badHeader[16:], "!!")
	for name, pkg := range map[string][]byte{"flipped payload byte": flipped, "truncated": trunc, "dirty padding": padded, "malformed header": badHeader,
		"no newline": []byte("FNXSIM1 " + strings.Repeat("x", 300))} {
		if _, err := verifyImage(pkg, "1.0.0"); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// Packages without the header are accepted as before.
	for pkg, want := range map[string]string{"version=4.5.6\nrest": "4.5.6", "anything": "1.0.1"} {
		if v, err := verifyImage([]byte(pkg), "1.0.0"); err != nil || v != want {
			t.Errorf("%q: %q %v, want %s", pkg, v, err, want)
		}
	}
	for _, bad := range []func(){
		func() { FirmwareImage("1.0", 127) },
		func() { FirmwareImage("../x", 1024) },
		func() { FirmwareImage(long, 128) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			bad()
		}()
	}
}

func TestRecordScanner(t *testing.T) {
	rec := func(typ byte, n int) []byte {
		return append([]byte{typ, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	ok := bytes.Join([][]byte{rec(22, 1200), rec(20, 1), rec(23, 2048), rec(23, 0)}, nil)
	for _, step := range []int{1, 3, 5, 7, 4096} {
		s := recordScanner{max: maxTLSRecord}
		for i := 0; i < len(ok); i += step {
			if err := s.feed(ok[i:min(i+step, len(ok))]); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		if s.largest != 2048 {
			t.Errorf("largest %d", s.largest)
		}
	}
	s := recordScanner{max: maxTLSRecord}
	if err := s.feed(append(rec(23, 100), rec(23, 2049)[:5]...)); !errors.Is(err, ErrTLSRecordTooLarge) {
		t.Errorf("2049-byte record: %v", err)
	}
	s = recordScanner{max: maxTLSRecord}
	if err := s.feed([]byte("HTTP/1.1 200 OK\r\n")); err == nil || errors.Is(err, ErrTLSRecordTooLarge) {
		t.Errorf("plain text: %v", err)
	}
}

// fwDevice starts a device against p with firmware settings changed by
// adjust, and returns it with its state and result readers.
func fwDevice(t *testing.T, p *peer, clk *fakeClock, log *eventLog, adjust func(*Config)) (d *Device, state, result func() int64) {
	t.Helper()
	cfg := testConfig(t, p, clk, log)
	cfg.FirmwareProtocols = []int{0, 2, 3}
	if adjust != nil {
		adjust(&cfg)
	}
	d = startDevice(t, cfg)
	p.wait("register", d.Endpoint(), 5*time.Second)
	state = func() int64 { v, _ := d.Value(pathFwState); return v.IntValue() }
	result = func() int64 { v, _ := d.Value(pathFwResult); return v.IntValue() }
	return d, state, result
}

// waitFw waits until the device reaches state and result.
func waitFw(t *testing.T, d *Device, state, result int64) {
	t.Helper()
	eventually(t, 15*time.Second, "firmware state "+strconv.Itoa(int(state))+" result "+strconv.Itoa(int(result)), func() bool {
		s, _ := d.Value(pathFwState)
		r, _ := d.Value(pathFwResult)
		return s.IntValue() == state && r.IntValue() == result
	})
}

// TestFirmwareHTTPS pulls an image over HTTPS as an nRF91 does: from a
// server whose TLS records stay small it succeeds by 2 KiB Range requests
// on one connection; from Go's default TLS server (records up to 16 KiB)
// it fails with result 4.
func TestFirmwareHTTPS(t *testing.T) {
	p := newPeer(t)
	img := FirmwareImage("2.4.0", 50_000)
	t.Run("capped records", func(t *testing.T) {
		s := newFWHTTPServer(t, false, 1348)
		uri := s.put("2.4.0.bin", img)
		clk := newFakeClock()
		d, _, _ := fwDevice(t, p, clk, newEventLog(t), func(c *Config) { c.FirmwareCA = s.CA; c.FirmwareDelay = time.Second })
		ep := d.Endpoint()
		if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
			t.Fatalf("write URI: %v", r.code)
		}
		waitFw(t, d, fwDownloaded, fwResultInitial)
		conns, ranges := s.stats()
		if conns != 1 {
			t.Errorf("%d connections, want one kept alive", conns)
		}
		if len(ranges) != 25 || ranges[0] != "bytes=0-2047" || ranges[24] != "bytes=49152-51199" {
			t.Errorf("%d ranges: first %q last %q", len(ranges), ranges[0], ranges[len(ranges)-1])
		}
		if fi := d.Firmware(); fi.Size != len(img) || fi.URI != uri {
			t.Errorf("firmware info %+v", fi)
		}
		if v, _ := d.Value(pathFwPkgVersion); v.StringValue() != "2.4.0" {
			t.Errorf("PkgVersion %v", v)
		}
		if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.Changed {
			t.Fatalf("execute: %v", r.code)
		}
		clk.Advance(time.Second)
		p.wait("register", ep, 5*time.Second)
		if v, _ := d.Value(pathFirmwareVer); v.StringValue() != "2.4.0" {
			t.Errorf("/3/0/3 after update %v", v)
		}
		waitFw(t, d, fwIdle, fwResultSuccess)
	})
	t.Run("default Go TLS records", func(t *testing.T) {
		s := newFWHTTPServer(t, false, 0)
		uri := s.put("2.4.0.bin", img)
		var logs syncBuffer
		d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(c *Config) {
			c.FirmwareCA = s.CA
			c.Logger = newBufferLogger(&logs)
		})
		if r := p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
			t.Fatalf("write URI: %v", r.code)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(logs.String())
			}
		})
		waitFw(t, d, fwIdle, fwResultConnLost)
		if !strings.Contains(logs.String(), "NRF_EMSGSIZE") {
			t.Errorf("log does not name NRF_EMSGSIZE:\n%s", logs.String())
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		s := newFWHTTPServer(t, false, 1348)
		uri := s.put("2.4.0.bin", img)
		d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), nil)
		p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri))
		waitFw(t, d, fwIdle, fwResultConnLost)
	})
}

// TestFirmwareHTTPResume drops the connection mid-download and when the
// server closes it: the device reconnects and goes on by Range from the
// bytes it has.
func TestFirmwareHTTPResume(t *testing.T) {
	p := newPeer(t)
	img := FirmwareImage("3.0.0", 30_000)
	for _, plain := range []bool{false, true} {
		t.Run("plain="+strconv.FormatBool(plain), func(t *testing.T) {
			s := newFWHTTPServer(t, plain, 1348)
			s.closeEvery = 5
			uri := s.put("3.0.0.bin", img)
			d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(c *Config) {
				c.FirmwareCA = s.CA
				c.FirmwareDropAt = 9000
			})
			p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri))
			waitFw(t, d, fwDownloaded, fwResultInitial)
			conns, ranges := s.stats()
			// 15 chunks, a close every 5th answer, one drop: at least 4
			// connections, and a Range repeated or resumed mid-way.
			if conns < 4 {
				t.Errorf("%d connections", conns)
			}
			seen := map[string]int{}
			for _, r := range ranges {
				seen[r]++
			}
			if len(seen) != 15 {
				t.Errorf("%d distinct ranges, want 15: %v", len(seen), ranges)
			}
			if fi := d.Firmware(); fi.Size != len(img) {
				t.Errorf("size %d", fi.Size)
			}
		})
	}
}

// TestFirmwareCoAP pulls an image by CoAP Block2 in the configured block
// size, with a dropped connection, through the state machine.
func TestFirmwareCoAP(t *testing.T) {
	p := newPeer(t)
	s := newFWCoAPServer(t, nil)
	img := FirmwareImage("1.2.3", 20_000)
	uri := s.put("coap", "1.2.3.bin", img)
	d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(c *Config) {
		c.FirmwareBlockSize = 256
		c.FirmwareDropAt = 5000
	})
	if r := p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
		t.Fatalf("write URI: %v", r.code)
	}
	waitFw(t, d, fwDownloaded, fwResultInitial)
	sizes, peers := s.seen()
	if len(sizes) != 1 || sizes[256] != 79 {
		t.Errorf("block sizes asked: %v, want 79 of 256", sizes)
	}
	if peers != 2 {
		t.Errorf("%d client addresses, want 2 (a new socket after the drop)", peers)
	}
	if v, _ := d.Value(pathFwPkgVersion); v.StringValue() != "1.2.3" {
		t.Errorf("PkgVersion %v", v)
	}
}

// TestFirmwareCoAPS downloads by Block2 over DTLS with the device's PSK.
func TestFirmwareCoAPS(t *testing.T) {
	psk := PSK{Identity: "urn:imei:350000000000008", Key: []byte("0123456789abcdef")}
	s := newFWCoAPServer(t, &psk)
	img := FirmwareImage("1.3.0", 10_000)
	cfg := Config{Server: "127.0.0.1:1", PSK: func(int) PSK { return psk }, FirmwareBlockSize: 1024, RequestTimeout: 3 * time.Second, Logger: testLogger(t)}
	d, err := NewDevice(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Value(lwm2m.NewPath(5, 0, 8, 1)); v.IntValue() != 1 {
		t.Errorf("/5/0/8/1 = %v, want CoAPS", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, _ := url.Parse(s.put("coaps", "1.3.0.bin", img))
	got, err := d.download(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("got %d bytes", len(got))
	}
	if sizes, _ := s.seen(); sizes[1024] != 10 {
		t.Errorf("block sizes %v", sizes)
	}
}

// TestFirmwarePush writes a 1 MiB image to /5/0/0 with Block1.
func TestFirmwarePush(t *testing.T) {
	p := newPeer(t)
	img := FirmwareImage("5.0.0", 1<<20)
	d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), nil)
	ep := d.Endpoint()
	r, err := p.try(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, img, 30*time.Second)
	if err != nil || r.code != codes.Changed {
		t.Fatalf("push: %v %v", r.code, err)
	}
	waitFw(t, d, fwDownloaded, fwResultInitial)
	if fi := d.Firmware(); fi.Size != len(img) || fi.URI != "" {
		t.Errorf("firmware info %+v", fi)
	}
	if v, _ := d.Value(pathFwPkgVersion); v.StringValue() != "5.0.0" {
		t.Errorf("PkgVersion %v", v)
	}
	// A package while Downloaded is no trigger: rejected; NUL resets.
	if r := p.request(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, []byte("x")); r.code != codes.BadRequest {
		t.Errorf("second package: %v", r.code)
	}
	if r := p.request(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, []byte{0}); r.code != codes.Changed {
		t.Errorf("NUL package: %v", r.code)
	}
	waitFw(t, d, fwIdle, fwResultInitial)
	// A corrupted image fails the integrity check.
	bad := bytes.Clone(img[:4096])
	copy(bad, FirmwareImage("5.0.0", 4096)[:128])
	bad[200] ^= 0xff
	if r := p.request(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, bad); r.code != codes.Changed {
		t.Fatalf("push: %v", r.code)
	}
	waitFw(t, d, fwIdle, fwResultIntegrity)
	// The largest image the server stores by default: 8 MiB.
	if testing.Short() {
		return
	}
	img = FirmwareImage("5.1.0", 8<<20)
	if r, err := p.try(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, img, 60*time.Second); err != nil || r.code != codes.Changed {
		t.Fatalf("push of 8 MiB: %v %v", r.code, err)
	}
	waitFw(t, d, fwDownloaded, fwResultInitial)
	if v, _ := d.Value(pathFwPkgVersion); v.StringValue() != "5.1.0" {
		t.Errorf("PkgVersion %v", v)
	}
}

// TestFirmwareDelivery checks /5/0/9: a pull-only device refuses a push,
// a push-only one a Package URI.
func TestFirmwareDelivery(t *testing.T) {
	p := newPeer(t)
	for method, refused := range map[string]string{"pull": "/5/0/0", "push": "/5/0/1"} {
		d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(c *Config) { c.FirmwareDelivery = method })
		if v, _ := d.Value(lwm2m.NewPath(5, 0, 9)); v.IntValue() != deliveryMethods[method] {
			t.Errorf("%s: /5/0/9 = %v", method, v)
		}
		cf := lwm2m.FormatText
		if refused == "/5/0/0" {
			cf = lwm2m.FormatOpaque
		}
		if r := p.request(d.Endpoint(), codes.PUT, refused, cf, []byte("coap://127.0.0.1/x")); r.code != codes.MethodNotAllowed {
			t.Errorf("%s: write %s: %v", method, refused, r.code)
		}
	}
}

// TestFirmwareFailures runs Config.FirmwareFail for each result 2..9 and
// the failures that come from the network.
func TestFirmwareFailures(t *testing.T) {
	p := newPeer(t)
	img := FirmwareImage("6.0.0", 3000)
	p.fw = img
	uri := "coap://" + p.addr + "/fw"
	for code := int64(2); code <= 9; code++ {
		t.Run(strconv.Itoa(int(code)), func(t *testing.T) {
			clk := newFakeClock()
			d, state, _ := fwDevice(t, p, clk, newEventLog(t), func(c *Config) { c.FirmwareFail = int(code) })
			ep := d.Endpoint()
			if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
				t.Fatalf("write URI: %v", r.code)
			}
			if code == fwResultFailed {
				waitFw(t, d, fwDownloaded, fwResultInitial)
				if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.Changed {
					t.Fatalf("execute: %v", r.code)
				}
				if state() != fwUpdating {
					t.Errorf("state %d after Execute", state())
				}
				clk.Advance(DefaultFirmwareDelay)
			}
			waitFw(t, d, fwIdle, code)
			if v, _ := d.Value(pathFirmwareVer); v.StringValue() != "1.0.0" {
				t.Errorf("firmware version %v after a failed update", v)
			}
		})
	}
	t.Run("network", func(t *testing.T) {
		hs := newFWHTTPServer(t, true, 0)
		d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), nil)
		ep := d.Endpoint()
		big := hs.put("big.bin", make([]byte, maxFirmware+1))
		truncated := FirmwareImage("6.0.1", 5000)[:4999]
		for uri, want := range map[string]int64{
			"ftp://example.com/fw":             fwResultUnsupported,
			"coaps://127.0.0.1/fw":             fwResultUnsupported, // not in /5/0/8 without DTLS credentials
			"coap://" + p.addr + "/missing":    fwResultInvalidURI,
			hs.URL + "/binaries/missing.bin":   fwResultInvalidURI,
			"http://127.0.0.1:1/unreachable":   fwResultConnLost,
			"not a uri":                        fwResultInvalidURI,
			"http:///nohost":                   fwResultInvalidURI,
			big:                                fwResultNoFlash,
			hs.put("truncated.bin", truncated): fwResultIntegrity,
			hs.put("empty.bin", nil):           fwResultIntegrity,
			hs.put("ok.bin", img):              fwResultInitial,
		} {
			if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
				t.Fatalf("write %q: %v", uri, r.code)
			}
			wantState := int64(fwIdle)
			if want == fwResultInitial {
				wantState = fwDownloaded
			}
			waitFw(t, d, wantState, want)
			if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte{}); r.code != codes.Changed {
				t.Fatalf("reset: %v", r.code)
			}
			waitFw(t, d, fwIdle, fwResultInitial)
		}
	})
}

// TestFirmwareCancel writes a new URI and then an empty one while a
// download runs, watching State and Update Result notifications.
func TestFirmwareCancel(t *testing.T) {
	p := newPeer(t)
	s := newFWHTTPServer(t, true, 0)
	s.hold = make(chan struct{})
	uri := s.put("7.0.0.bin", FirmwareImage("7.0.0", 10_000))
	log := newEventLog(t)
	d, state, _ := fwDevice(t, p, newFakeClock(), log, nil)
	ep := d.Endpoint()
	stateObs, first := p.observe(ep, "/5/0/3", nil, accept(lwm2m.FormatText))
	if string(first.body) != "0" {
		t.Fatalf("first state %q", first.body)
	}
	resultObs, _ := p.observe(ep, "/5/0/5", nil, accept(lwm2m.FormatText))
	if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
		t.Fatalf("write URI: %v", r.code)
	}
	if n := stateObs.next(t, 5*time.Second); string(n.body) != "1" {
		t.Errorf("notified state %q, want 1", n.body)
	}
	eventually(t, 5*time.Second, "the second range request", func() bool { _, r := s.stats(); return len(r) >= 2 })
	// A new URI is no trigger while downloading.
	if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri+"?again")); r.code != codes.BadRequest {
		t.Errorf("second URI while downloading: %v", r.code)
	}
	if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.MethodNotAllowed {
		t.Errorf("execute while downloading: %v", r.code)
	}
	if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte{}); r.code != codes.Changed {
		t.Fatalf("cancel: %v", r.code)
	}
	if state() != fwIdle {
		t.Errorf("state %d after cancel", state())
	}
	if n := stateObs.next(t, 5*time.Second); string(n.body) != "0" {
		t.Errorf("notified state %q after cancel, want 0", n.body)
	}
	// The cancelled download ends without changing the state.
	ended := make(chan struct{})
	go func() { d.fwWG.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled download did not end")
	}
	if state() != fwIdle {
		t.Errorf("state %d after the cancelled download ended", state())
	}
	s.release()
	// Update Result: the fail-then-reset path notifies too.
	if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte("ftp://x/y")); r.code != codes.Changed {
		t.Fatal(r.code)
	}
	if n := resultObs.next(t, 5*time.Second); string(n.body) != "9" {
		t.Errorf("notified result %q, want 9", n.body)
	}
}

// TestFirmwareQueueMode updates a queue-mode device: the download goes on
// while it sleeps, the Downloaded notification wakes it, and after the
// reboot it registers again and reads the new version.
func TestFirmwareQueueMode(t *testing.T) {
	p := newPeer(t)
	s := newFWHTTPServer(t, true, 0)
	s.hold = make(chan struct{})
	uri := s.put("8.0.0.bin", FirmwareImage("8.0.0", 10_000))
	clk := newFakeClock()
	log := newEventLog(t)
	d, _, _ := fwDevice(t, p, clk, log, func(c *Config) {
		c.Binding = "UQ"
		c.ReceiveWindow = 10 * time.Second
		c.FirmwareDelay = 2 * time.Second
	})
	ep := d.Endpoint()
	obs, _ := p.observe(ep, "/5/0/3", nil, accept(lwm2m.FormatText))
	p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri))
	if n := obs.next(t, 5*time.Second); string(n.body) != "1" {
		t.Fatalf("state %q", n.body)
	}
	log.wait(EventNotified, nil, 5*time.Second) // the device saw the acknowledgement
	clk.Advance(11 * time.Second)
	log.wait(EventSleep, nil, 5*time.Second)
	if d.Awake() {
		t.Fatal("awake after the receive window")
	}
	s.release()
	if n := obs.next(t, 10*time.Second); string(n.body) != "2" {
		t.Fatalf("state %q", n.body)
	}
	if !d.Awake() {
		t.Error("asleep after notifying")
	}
	p.wait("update", ep, 5*time.Second)
	if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.Changed {
		t.Fatalf("execute: %v", r.code)
	}
	clk.Advance(2 * time.Second)
	p.wait("register", ep, 5*time.Second)
	if r := p.request(ep, codes.GET, "/3/0/3", 0, nil, accept(lwm2m.FormatText)); string(r.body) != "8.0.0" {
		t.Errorf("/3/0/3 = %q", r.body)
	}
	if r := p.request(ep, codes.GET, "/5/0/5", 0, nil, accept(lwm2m.FormatText)); string(r.body) != "1" {
		t.Errorf("/5/0/5 = %q", r.body)
	}
}

func TestValidateFirmware(t *testing.T) {
	for name, c := range map[string]Config{
		"protocol 4":          {FirmwareProtocols: []int{4}},
		"coaps without creds": {FirmwareProtocols: []int{1}},
		"delivery":            {FirmwareDelivery: "carrier pigeon"},
		"block size":          {FirmwareBlockSize: 100},
		"block size 2048":     {FirmwareBlockSize: 2048},
		"chunk":               {FirmwareChunk: 8},
		"fail 1":              {FirmwareFail: 1},
		"fail 10":             {FirmwareFail: 10},
		"drop":                {FirmwareDropAt: -1},
	} {
		c.Server = "127.0.0.1:5683"
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (Config{Server: "127.0.0.1:5683", FirmwareProtocols: []int{0, 2, 3}, FirmwareDelivery: "push", FirmwareBlockSize: 16, FirmwareFail: 9}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestFirmwareHTTPStall serves half a chunk and then nothing: the device
// gives up on each silent connection after RequestTimeout and, after its
// retries, reports result 4.
func TestFirmwareHTTPStall(t *testing.T) {
	p := newPeer(t)
	var requests atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Range", "bytes 0-2047/4096")
		w.Header().Set("Content-Length", "2048")
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(hs.Close)
	d, _, _ := fwDevice(t, p, newFakeClock(), newEventLog(t), func(c *Config) {
		c.FirmwareProtocols = []int{2}
		c.RequestTimeout = 300 * time.Millisecond
	})
	start := time.Now()
	p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(hs.URL+"/fw.bin"))
	waitFw(t, d, fwIdle, fwResultConnLost)
	if n := requests.Load(); n != 1+fwRetries {
		t.Errorf("%d requests, want %d", n, 1+fwRetries)
	}
	t.Logf("gave up after %v", time.Since(start))
}

// TestFirmwareFleet updates 30 devices of a fleet at once from one HTTPS
// server with small records: each pulls the image on its own connection,
// installs it and comes back with the new version.
func TestFirmwareFleet(t *testing.T) {
	p := newPeer(t)
	s := newFWHTTPServer(t, false, 1348)
	uri := s.put("2.0.0.bin", FirmwareImage("2.0.0", 64<<10))
	cfg := testConfig(t, p, nil, nil)
	cfg.Devices = 30
	cfg.FirmwareCA = s.CA
	cfg.FirmwareDelay = 10 * time.Millisecond
	f, err := NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	for _, d := range f.Devices() {
		if r := p.request(d.Endpoint(), codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
			t.Fatalf("%s: write URI: %v", d.Endpoint(), r.code)
		}
	}
	for _, d := range f.Devices() {
		waitFw(t, d, fwDownloaded, fwResultInitial)
		if r := p.request(d.Endpoint(), codes.POST, "/5/0/2", 0, nil); r.code != codes.Changed {
			t.Fatalf("%s: execute: %v", d.Endpoint(), r.code)
		}
	}
	for _, d := range f.Devices() {
		waitFw(t, d, fwIdle, fwResultSuccess)
		eventually(t, 10*time.Second, d.Endpoint()+" registered again with 2.0.0", func() bool {
			v, _ := d.Value(pathFirmwareVer)
			return v.StringValue() == "2.0.0" && d.Registered()
		})
	}
	if conns, ranges := s.stats(); conns != 30 || len(ranges) != 30*32 {
		t.Errorf("%d connections, %d requests; want 30 and %d", conns, len(ranges), 30*32)
	}
}
