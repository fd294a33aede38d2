package app

import (
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/simulator"
)

// TestSendAfterRestart: plain-CoAP devices that registered before a
// restart go on sending afterwards without registering again; the server
// finds each by its source address in the stored registration, so no Send
// is refused.
func TestSendAfterRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := startServer(t, cfg, Tuning{})
	// The devices reach the server through a NAT that keeps their
	// addresses while the server restarts.
	nat := newNAT(t, s.CoAPAddr())
	var mu sync.Mutex
	refused := map[codes.Code]int{}
	f := startFleet(t, s, 5, func(c *simulator.Config) {
		c.Server = nat.Addr()
		c.Version = "1.1"
		c.SendInterval = 100 * time.Millisecond
		c.Lifetime = time.Hour // no Update during the test
		c.OnEvent = func(e simulator.Event) {
			if e.Kind == simulator.EventSendFailed && e.Code != 0 {
				mu.Lock()
				refused[e.Code]++
				mu.Unlock()
			}
		}
	})
	eventually(t, 10*time.Second, "Sends before the restart", func() bool { return f.Stats().SendsAcked >= 10 })
	regs := f.Stats().Registrations

	cfg.CoAPListen = s.CoAPAddr().String()
	s.stop()
	restarted := time.Now()
	s2 := startServer(t, cfg, Tuning{})
	after := f.Stats().SendsAcked
	eventually(t, 10*time.Second, "Sends acknowledged after the restart", func() bool {
		return f.Stats().SendsAcked >= after+25
	})
	mu.Lock()
	defer mu.Unlock()
	if len(refused) > 0 {
		t.Fatalf("Sends refused after the restart: %v", refused)
	}
	if n := f.Stats().Registrations; n != regs {
		t.Fatalf("devices registered again (%d registrations, %d before): the test needs them to keep their registration", n, regs)
	}
	// Every device's Sends after the restart are stored under its endpoint.
	// A device whose Send went unanswered while the server stopped sends
	// again only when it retransmits (RFC 7252: 2 to 3 s later, then 4 to
	// 6 s), so each device is waited for on its own.
	for i := range 5 {
		ep := f.Device(i).Endpoint()
		eventually(t, 15*time.Second, ep+" Sends stored after the restart", func() bool {
			var evs struct {
				Items []struct {
					Kind       string    `json:"kind"`
					ReceivedAt time.Time `json:"received_at"`
				} `json:"items"`
			}
			if code := s2.call(t, "GET", "/api/v1/endpoints/"+ep+"/events", nil, &evs); code != 200 || len(evs.Items) == 0 {
				t.Fatalf("events of %s: %d, %d events", ep, code, len(evs.Items))
			}
			e := evs.Items[0]
			return e.Kind == "send" && e.ReceivedAt.After(restarted)
		})
	}
}
