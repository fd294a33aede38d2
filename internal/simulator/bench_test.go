package simulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// BenchmarkServeRead measures the device's handling of a Read of /3/0 as
// SenML-CBOR, without the network.
func BenchmarkServeRead(b *testing.B) {
	d, err := NewDevice(Config{Server: "127.0.0.1:1", Clock: newFakeClock()}, 0)
	if err != nil {
		b.Fatal(err)
	}
	req := pool.NewMessage(context.Background())
	req.SetCode(codes.GET)
	if err := req.SetPath("/3/0"); err != nil {
		b.Fatal(err)
	}
	req.SetAccept(message.MediaType(lwm2m.FormatSenMLCBOR))
	b.ReportAllocs()
	for b.Loop() {
		if res := d.serve(req); res.code != codes.Content {
			b.Fatal(res.code)
		}
	}
}

// BenchmarkReadRoundTrip measures a Read of one resource from a server
// over loopback UDP.
func BenchmarkReadRoundTrip(b *testing.B) {
	p := newPeer(b)
	cfg := Config{Server: p.addr, Clock: newFakeClock(), Lifetime: time.Hour}
	d, err := NewDevice(cfg, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = d.Stop(context.Background()) }()
	p.wait("register", d.Endpoint(), 5*time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if r := p.request(d.Endpoint(), codes.GET, "/3303/0/5700", 0, nil); r.code != codes.Content {
			b.Fatal(r.code)
		}
	}
}

// BenchmarkFleetStartStop measures registering and de-registering a fleet
// of 100 devices against a local server.
func BenchmarkFleetStartStop(b *testing.B) {
	p := newPeer(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := NewFleet(Config{Server: p.addr, Devices: 100, Lifetime: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		if s := f.Stats(); s.Registered != 100 {
			b.Fatalf("registered %d", s.Registered)
		}
		if err := f.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		for range 200 {
			<-p.events
		}
	}
}

// BenchmarkFirmwareDownload measures a device's pull of a 1 MiB image over
// loopback: HTTPS by 2 KiB Range requests from a server whose TLS records
// carry at most 1348 bytes, plain HTTP the same way, and CoAP Block2 in
// 512- and 1024-byte blocks; each against a baseline fetching the same
// bytes in one plain request (net/http GET, go-coap's own block-wise GET).
func BenchmarkFirmwareDownload(b *testing.B) {
	img := FirmwareImage("9.9.9", 1<<20)
	hs := newFWHTTPServer(b, false, 1348)
	ps := newFWHTTPServer(b, true, 0)
	cs := newFWCoAPServer(b, nil)
	run := func(b *testing.B, uri string, block int, ca *x509.CertPool) {
		d, err := NewDevice(Config{Server: "127.0.0.1:1", FirmwareCA: ca, FirmwareBlockSize: block,
			FirmwareProtocols: []int{0, 2, 3}}, 0)
		if err != nil {
			b.Fatal(err)
		}
		u, _ := url.Parse(uri)
		b.SetBytes(int64(len(img)))
		for b.Loop() {
			got, err := d.download(context.Background(), u)
			if err != nil || len(got) != len(img) {
				b.Fatalf("%d bytes, %v", len(got), err)
			}
		}
	}
	b.Run("https-range-2048-records-1348", func(b *testing.B) { run(b, hs.put("a.bin", img), 0, hs.CA) })
	b.Run("baseline-https-one-get", func(b *testing.B) {
		uri := hs.put("a.bin", img)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hs.CA}}}
		defer c.CloseIdleConnections()
		b.SetBytes(int64(len(img)))
		for b.Loop() {
			resp, err := c.Get(uri)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(len(img)) {
				b.Fatal(n)
			}
		}
	})
	b.Run("http-range-2048", func(b *testing.B) { run(b, ps.put("a.bin", img), 0, nil) })
	b.Run("coap-block2-512", func(b *testing.B) { run(b, cs.put("coap", "a.bin", img), 512, nil) })
	b.Run("coap-block2-1024", func(b *testing.B) { run(b, cs.put("coap", "a.bin", img), 1024, nil) })
	b.Run("baseline-coap-go-coap-get", func(b *testing.B) {
		cs.put("coap", "a.bin", img)
		conn, err := udp.Dial(cs.addr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.SetBytes(int64(len(img)))
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			resp, err := conn.Get(ctx, "/fw/a.bin")
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			body, _ := resp.ReadBody()
			conn.ReleaseMessage(resp)
			if len(body) != len(img) {
				b.Fatal(len(body))
			}
		}
	})
}
