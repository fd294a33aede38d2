package coapd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/registry"
)

// TestDialHonoursContextWhileResuming: resuming a parked DTLS session
// waits as long as the caller's ctx allows, not a fixed time of its own.
// The session here is unparked but never bound (nothing accepts it), so
// Dial can only return when its ctx ends.
func TestDialHonoursContextWhileResuming(t *testing.T) {
	s := New(Config{Registry: &registry.Registry{}, Ingest: &ingest.Writer{}})
	d := newTestDemux(t)
	s.dmu.Lock()
	s.dl = &dtlsListener{demux: d}
	s.dmu.Unlock()
	reg := registry.Registration{Endpoint: "ep-1", Transport: registry.TransportDTLS}

	for _, wait := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond} {
		parkOne(t, d, netip.MustParseAddrPort("192.0.2.1:5000"), "cid-0001", "ep-1")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		start := time.Now()
		_, err := s.Dial(ctx, reg)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, ErrNoSession) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial with %v: %v, want ErrNoSession and the deadline", wait, err)
		}
		if took < wait || took > wait+time.Second {
			t.Fatalf("Dial with a %v deadline returned after %v", wait, took)
		}
		// The unparked association was handed to Accept: take it away.
		if a := accepted(d); a == nil {
			t.Fatal("the parked session was not resumed")
		} else {
			d.forgetParked("ep-1")
			_ = a.Close()
		}
	}

	// A cancelled ctx ends the wait at once.
	parkOne(t, d, netip.MustParseAddrPort("192.0.2.1:5000"), "cid-0002", "ep-1")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Dial(ctx, reg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial cancelled: %v", err)
	}
}
