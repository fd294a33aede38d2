package coapd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/dtlsmux"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/registry"
)

// TestDialHonoursContextWhileResuming: resuming a parked DTLS session
// waits as long as the caller's ctx allows, not a fixed time of its own.
// The listener here is served by nobody: the session is unparked but
// never bound, so Dial can only return when its ctx ends.
func TestDialHonoursContextWhileResuming(t *testing.T) {
	s := New(Config{Registry: &registry.Registry{}, Ingest: &ingest.Writer{}})
	c, err := dtlsmux.ListenUDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := dtlsmux.NewListener(c, dtlsmux.Config{PSK: func([]byte) (string, []byte, error) {
		return "", nil, dtlsmux.ErrUnknownIdentity
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s.dmu.Lock()
	s.dl = l
	s.dmu.Unlock()
	reg := registry.Registration{Endpoint: "ep-1", Transport: registry.TransportDTLS}
	park := func(cid string) {
		l.AddParked(dtlsmux.Session{Endpoint: "ep-1", Addr: netip.MustParseAddrPort("192.0.2.1:5000"), CID: cid,
			State: []byte("state")})
	}

	for _, wait := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond} {
		park("cid-0001")
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
		if len(l.Parked()) != 0 {
			t.Fatal("the parked session was not resumed")
		}
		l.ForgetParked("ep-1") // as when it is bound
	}

	// A cancelled ctx ends the wait at once.
	park("cid-0002")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Dial(ctx, reg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial cancelled: %v", err)
	}
}
