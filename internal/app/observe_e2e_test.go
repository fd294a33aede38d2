package app

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/simulator"
)

type observationJSON struct {
	Token       string     `json:"token"`
	Paths       []string   `json:"paths"`
	Composite   bool       `json:"composite"`
	CreatedAt   time.Time  `json:"created_at"`
	Origin      string     `json:"origin"`
	User        string     `json:"user"`
	Operation   int64      `json:"operation"`
	Attributes  []string   `json:"attributes"`
	LastValueAt *time.Time `json:"last_value_at"`
}

func (s *server) observations(t *testing.T, ep string) []observationJSON {
	t.Helper()
	var out struct {
		Items []observationJSON `json:"items"`
	}
	if code := s.call(t, "GET", "/api/v1/endpoints/"+ep+"/observations", nil, &out); code != 200 {
		t.Fatalf("observations of %s: %d", ep, code)
	}
	return out.Items
}

// TestAutoObserveDefaultPolicy: with the default configuration the server
// writes pmin=60 before it observes, so a device whose values change every
// 100 ms does not notify them; the API shows each observation with its
// origin, the attributes written and the time of the last value, and
// those an operator made with the operator.
func TestAutoObserveDefaultPolicy(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AutoObserve, cfg.AutoObserveAttrs = config.DefaultAutoObserve, config.DefaultAutoObserveAttrs
	s := startServer(t, cfg, Tuning{})
	f := startFleet(t, s, 1, func(c *simulator.Config) { c.ValueInterval = 100 * time.Millisecond })
	d := f.Device(0)
	ep := d.Endpoint()
	eventually(t, 10*time.Second, "the four default observations", func() bool { return d.Observations() == 4 })

	before := d.Stats().Notifications
	time.Sleep(2 * time.Second) // 20 value changes
	if n := d.Stats().Notifications - before; n != 0 {
		t.Errorf("%d notifications within pmin", n)
	}

	got := s.observations(t, ep)
	var paths []string
	for _, o := range got {
		paths = append(paths, o.Paths...)
		if o.Origin != "auto-observe" || !slices.Equal(o.Attributes, []string{"pmin=60"}) || o.User != "" ||
			o.CreatedAt.IsZero() || o.LastValueAt == nil || o.Token == "" {
			t.Errorf("auto-observation %+v", o)
		}
	}
	slices.Sort(paths)
	if want := []string{"/3303/0/5700", "/3304/0/5700", "/5/0/3", "/5/0/5"}; !slices.Equal(paths, want) {
		t.Errorf("observed %v, want %v", paths, want)
	}

	// An operator's observation, made now and queued.
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/observe", map[string]any{"path": "/3/0/9"}, &res); code != 200 {
		t.Fatalf("observe: %d", code)
	}
	op := s.enqueue(t, ep, map[string]any{"kind": "observe", "path": "/3/0/0"})
	s.waitQueued(t, ep, op.ID, "CONFIRMED")
	byPath := map[string]observationJSON{}
	for _, o := range s.observations(t, ep) {
		byPath[strings.Join(o.Paths, " ")] = o
	}
	if o := byPath["/3/0/9"]; o.Origin != "api" || o.User != "admin" || o.Operation != 0 || o.Attributes != nil ||
		o.Token != res.Observation {
		t.Errorf("API observation %+v", o)
	}
	if o := byPath["/3/0/0"]; o.Origin != "queue" || o.User != "admin" || o.Operation != op.ID {
		t.Errorf("queued observation %+v, want operation %d", o, op.ID)
	}

	// After a restart, before the device talks again, they are still
	// held and shown.
	cfg.CoAPListen = s.CoAPAddr().String()
	s.stop()
	s2 := startServer(t, cfg, Tuning{})
	if n := len(s2.observations(t, ep)); n != 6 {
		t.Errorf("%d observations shown after a restart, want 6", n)
	}
}

// TestAutoObservePolicySetting: the configured list is observed, limited
// to what the device registered; an empty list observes nothing; a bad
// one stops the start naming the setting.
func TestAutoObservePolicySetting(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AutoObserve = "/3/0/9?pmin=1, /9999/0/1, /3303/0/5700+/3304/0/5700"
	s := startServer(t, cfg, Tuning{})
	var unregistered atomic.Int64
	f := startFleet(t, s, 2, func(c *simulator.Config) {
		c.OnEvent = func(e simulator.Event) {
			if e.Path.Object() == 9999 && (e.Kind == simulator.EventRequest || e.Kind == simulator.EventDropped) {
				unregistered.Add(1)
			}
		}
	})
	ep := f.Device(0).Endpoint()
	eventually(t, 10*time.Second, "the configured observations", func() bool { return len(s.observations(t, ep)) == 2 })
	for _, o := range s.observations(t, ep) {
		switch strings.Join(o.Paths, " ") {
		case "/3/0/9":
			if !slices.Equal(o.Attributes, []string{"pmin=1"}) {
				t.Errorf("/3/0/9: attributes %v, want its own", o.Attributes)
			}
		case "/3303/0/5700 /3304/0/5700":
			if !o.Composite || o.Attributes != nil {
				t.Errorf("composite entry %+v", o)
			}
		default:
			t.Errorf("unexpected observation %+v", o)
		}
	}
	if n := unregistered.Load(); n != 0 {
		t.Errorf("%d requests for an object the device did not register", n)
	}

	off := testConfig(t, t.TempDir())
	off.AutoObserve = ""
	s2 := startServer(t, off, Tuning{})
	d := startFleet(t, s2, 1, nil).Device(0)
	time.Sleep(500 * time.Millisecond)
	if n := d.Observations(); n != 0 {
		t.Errorf("empty policy: %d observations", n)
	}

	bad := testConfig(t, t.TempDir())
	bad.AutoObserve, bad.AutoObserveAttrs = "/3303/x", "pmin=soon"
	if _, err := New(context.Background(), bad, testLogger(t), Tuning{}); err == nil ||
		!strings.Contains(err.Error(), "--auto-observe, FLOWNEXUS_AUTO_OBSERVE") ||
		!strings.Contains(err.Error(), "--auto-observe-attrs, FLOWNEXUS_AUTO_OBSERVE_ATTRS") {
		t.Errorf("bad policy: %v", err)
	}
}

// TestDefaultPolicyMatchesConfig: the configuration's default text is
// devmgmt's default policy.
func TestDefaultPolicyMatchesConfig(t *testing.T) {
	p, err := devmgmt.ParsePolicy(config.DefaultAutoObserve, config.DefaultAutoObserveAttrs)
	if err != nil {
		t.Fatal(err)
	}
	def := devmgmt.DefaultPolicy()
	if len(p.Entries) != len(def.Entries) || strings.Join(p.Attrs.Query(), "&") != strings.Join(def.Attrs.Query(), "&") {
		t.Fatalf("config default %+v, devmgmt default %+v", p, def)
	}
	for i := range p.Entries {
		if p.Entries[i].String() != def.Entries[i].String() {
			t.Errorf("entry %d: %s, want %s", i, p.Entries[i], def.Entries[i])
		}
	}
}
