package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

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
