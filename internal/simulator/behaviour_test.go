package simulator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestSend(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	cfg.SendInterval = 30 * time.Second
	cfg.ValueInterval = time.Hour
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)

	clk.Advance(29 * time.Second)
	p.none("send", 200*time.Millisecond)
	clk.Advance(time.Second)
	s := p.wait("send", ep, 5*time.Second)
	if s.format != lwm2m.FormatSenMLCBOR {
		t.Errorf("send format %v", s.format)
	}
	var want []lwm2m.Record
	for _, q := range DefaultSendPaths {
		rs, _ := d.Read(q)
		want = append(want, rs...)
	}
	sameRecords(t, "send", s.records, want)
	for _, r := range s.records {
		if !r.Time.Equal(clk.Now()) {
			t.Errorf("send record %s at %v, want %v", r.Path, r.Time, clk.Now())
		}
	}
	log.wait(EventSendAcked, nil, 5*time.Second)

	// On demand, and failures are counted.
	p.mu.Lock()
	p.sendCode = codes.InternalServerError
	p.mu.Unlock()
	d.TriggerSend()
	p.wait("send", ep, 5*time.Second)
	if e := log.wait(EventSendFailed, nil, 5*time.Second); e.Code != codes.InternalServerError {
		t.Errorf("send failure event %+v", e)
	}
	if st := d.Stats(); st.Sends != 2 || st.SendsAcked != 1 || st.Errors != 1 {
		t.Errorf("stats %+v", st)
	}
	// The interval restarts after the triggered Send.
	clk.Advance(29 * time.Second)
	p.none("send", 200*time.Millisecond)
	clk.Advance(time.Second)
	p.wait("send", ep, 5*time.Second)
}

func TestSendNeedsLwM2M11(t *testing.T) {
	p := newPeer(t)
	p.refuse["1.1"] = true
	clk := newFakeClock()
	cfg := testConfig(t, p, clk, nil)
	cfg.SendInterval = 10 * time.Second
	d := startDevice(t, cfg)
	p.wait("register", d.Endpoint(), 5*time.Second)
	clk.Advance(30 * time.Second)
	p.none("send", 300*time.Millisecond)
}

func TestQueueMode(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	cfg.Binding = "UQ"
	cfg.ReceiveWindow = 5 * time.Second
	cfg.ValueInterval = time.Hour
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	reg := p.wait("register", ep, 5*time.Second)
	if !slices.Contains(reg.queries, "Q") || !slices.Contains(reg.queries, "b=U") {
		t.Errorf("queue-mode register queries %q", reg.queries)
	}
	if !d.Awake() {
		t.Fatal("not awake after registering")
	}
	if r := p.request(ep, codes.GET, "/3/0/0", 0, nil); r.code != codes.Content {
		t.Fatalf("read while awake: %v", r.code)
	}
	// An exchange restarts the window: 4 s later the device is still awake.
	clk.Advance(4 * time.Second)
	if r := p.request(ep, codes.GET, "/3/0/1", 0, nil); r.code != codes.Content {
		t.Fatalf("read within the window: %v", r.code)
	}
	clk.Advance(4 * time.Second)
	if r := p.request(ep, codes.GET, "/3/0/1", 0, nil); r.code != codes.Content {
		t.Fatalf("read within the restarted window: %v", r.code)
	}
	clk.Advance(5 * time.Second)
	log.wait(EventSleep, nil, 5*time.Second)
	if d.Awake() {
		t.Fatal("awake after the window")
	}
	if _, err := p.try(ep, codes.GET, "/3/0/0", 0, nil, 500*time.Millisecond); err == nil {
		t.Fatal("a sleeping device answered")
	}
	log.wait(EventDropped, func(e Event) bool { return e.Op == "asleep" }, time.Second)

	// The next wake comes with an Update (here: the lifetime's).
	clk.Advance(90 * time.Second)
	log.wait(EventWake, nil, 5*time.Second)
	p.wait("update", ep, 5*time.Second)
	log.wait(EventUpdated, nil, 5*time.Second)
	if r := p.request(ep, codes.GET, "/3/0/0", 0, nil); r.code != codes.Content {
		t.Fatalf("read after wake: %v", r.code)
	}
	clk.Advance(5 * time.Second)
	log.wait(EventSleep, nil, 5*time.Second)

	// A pending notification wakes the device too: Update, then the
	// notification.
	clk.Advance(time.Second) // let the window's last step pass
	d.TriggerUpdate()
	log.wait(EventWake, nil, 5*time.Second)
	p.wait("update", ep, 5*time.Second)
	log.wait(EventUpdated, nil, 5*time.Second)
	o, _ := p.observe(ep, "/3303/0/5700", nil)
	log.wait(EventObserve, nil, 5*time.Second)
	clk.Advance(5 * time.Second)
	log.wait(EventSleep, nil, 5*time.Second)
	if err := d.Set(lwm2m.MustParsePath("/3303/0/5700"), lwm2m.Float(99)); err != nil {
		t.Fatal(err)
	}
	log.wait(EventWake, nil, 5*time.Second)
	p.wait("update", ep, 5*time.Second)
	log.wait(EventUpdated, nil, 5*time.Second)
	if n := o.next(t, 5*time.Second); string(n.body) != "99" {
		t.Errorf("notification after wake %q", n.body)
	}
}

func TestFaults(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		p := newPeer(t)
		log := newEventLog(t)
		cfg := testConfig(t, p, newFakeClock(), log)
		cfg.Faults.DropRate = 1
		d := startDevice(t, cfg)
		p.wait("register", d.Endpoint(), 5*time.Second)
		if _, err := p.try(d.Endpoint(), codes.GET, "/3/0/0", 0, nil, 500*time.Millisecond); err == nil {
			t.Fatal("dropped request answered")
		}
		log.wait(EventDropped, func(e Event) bool { return e.Op == "fault" }, time.Second)
		if s := d.Stats(); s.Dropped == 0 || s.Requests != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("error", func(t *testing.T) {
		p := newPeer(t)
		cfg := testConfig(t, p, newFakeClock(), nil)
		cfg.Faults.ErrorRate = 1
		cfg.Faults.ErrorCode = codes.ServiceUnavailable
		d := startDevice(t, cfg)
		p.wait("register", d.Endpoint(), 5*time.Second)
		if r := p.request(d.Endpoint(), codes.GET, "/3/0/0", 0, nil); r.code != codes.ServiceUnavailable {
			t.Errorf("faulty answer %v", r.code)
		}
		if s := d.Stats(); s.Faults != 1 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("delay", func(t *testing.T) {
		p := newPeer(t)
		cfg := testConfig(t, p, nil, nil) // real clock
		cfg.Faults.Delay = 300 * time.Millisecond
		d := startDevice(t, cfg)
		p.wait("register", d.Endpoint(), 5*time.Second)
		start := time.Now()
		if r := p.request(d.Endpoint(), codes.GET, "/3/0/0", 0, nil); r.code != codes.Content {
			t.Errorf("delayed answer %v", r.code)
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("answer after %v, want >= 300ms", el)
		}
	})
	t.Run("shares are seeded", func(t *testing.T) {
		p := newPeer(t)
		results := make([][]codes.Code, 2)
		for i := range results {
			cfg := testConfig(t, p, newFakeClock(), nil)
			cfg.Faults.ErrorRate = 0.5
			d := startDevice(t, cfg)
			p.wait("register", d.Endpoint(), 5*time.Second)
			for range 60 {
				results[i] = append(results[i], p.request(d.Endpoint(), codes.GET, "/3/0/0", 0, nil).code)
			}
			_ = d.Stop(context.Background())
		}
		if !slices.Equal(results[0], results[1]) {
			t.Error("same seed, different faults")
		}
		n := 0
		for _, c := range results[0] {
			if c == codes.InternalServerError {
				n++
			}
		}
		if n < 15 || n > 45 {
			t.Errorf("%d of 60 requests failed with ErrorRate 0.5", n)
		}
	})
}

func TestValuesDeterministic(t *testing.T) {
	mk := func(i int) *Device {
		cfg := Config{Server: "127.0.0.1:1", Seed: 7, Clock: newFakeClock()}
		d, err := NewDevice(cfg, i)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	run := func(d *Device) []lwm2m.Record {
		for range 50 {
			d.mu.Lock()
			d.stepValues(d.clock.Now())
			d.mu.Unlock()
		}
		rs, _ := d.Read(lwm2m.Root)
		return rs
	}
	a, b, c := run(mk(3)), run(mk(3)), run(mk(4))
	if !recordsEqual(a, b) {
		t.Error("same seed and index, different values")
	}
	if recordsEqual(a, c) {
		t.Error("different index, same values")
	}
	// The walk stays within the sensor's range and moves.
	d := mk(5)
	temp := lwm2m.MustParsePath("/3303/0/5700")
	first, _ := d.Value(temp)
	moved := false
	for range 1000 {
		d.mu.Lock()
		d.stepValues(d.clock.Now())
		d.mu.Unlock()
		v, _ := d.Value(temp)
		if f := v.FloatValue(); f < -40 || f > 85 {
			t.Fatalf("temperature %v out of range", f)
		}
		moved = moved || !v.Equal(first)
	}
	if !moved {
		t.Error("temperature never changed")
	}
}

func TestFirmwareUpdate(t *testing.T) {
	pkg := append([]byte("version=2.1.0\n"), make([]byte, 5000)...) // block-wise over CoAP
	for i := range pkg[14:] {
		pkg[14+i] = byte(i)
	}
	sum := sha256.Sum256(pkg)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fw.bin" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(pkg)
	}))
	t.Cleanup(hs.Close)

	p := newPeer(t)
	p.fw = pkg
	for _, uri := range []string{"coap://" + p.addr + "/fw", hs.URL + "/fw.bin"} {
		t.Run(strings.SplitN(uri, ":", 2)[0], func(t *testing.T) {
			clk := newFakeClock()
			log := newEventLog(t)
			cfg := testConfig(t, p, clk, log)
			cfg.FirmwareDelay = 5 * time.Second
			cfg.FirmwareProtocols = []int{0, 2}
			d := startDevice(t, cfg)
			ep := d.Endpoint()
			p.wait("register", ep, 5*time.Second)
			state := func() int64 { v, _ := d.Value(pathFwState); return v.IntValue() }
			result := func() int64 { v, _ := d.Value(pathFwResult); return v.IntValue() }

			if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.MethodNotAllowed {
				t.Errorf("update without package: %v", r.code)
			}
			if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
				t.Fatalf("write package URI: %v", r.code)
			}
			log.wait(EventFirmware, func(e Event) bool { return e.Op == "downloaded" }, 10*time.Second)
			if fi := d.Firmware(); fi.Size != len(pkg) || fi.SHA256 != hex.EncodeToString(sum[:]) || fi.URI != uri {
				t.Errorf("firmware info %+v", fi)
			}
			if v, _ := d.Value(pathFwPkgVersion); v.StringValue() != "2.1.0" {
				t.Errorf("package version %v", v)
			}
			if r := p.request(ep, codes.POST, "/5/0/2", 0, nil); r.code != codes.Changed {
				t.Fatalf("execute update: %v", r.code)
			}
			if state() != fwUpdating {
				t.Errorf("state %d during update", state())
			}
			clk.Advance(5 * time.Second)
			log.wait(EventReboot, nil, 5*time.Second)
			p.wait("register", ep, 5*time.Second)
			if v, _ := d.Value(pathFirmwareVer); v.StringValue() != "2.1.0" {
				t.Errorf("firmware version after update %v", v)
			}
			if state() != fwIdle || result() != fwResultSuccess {
				t.Errorf("state %d result %d after update", state(), result())
			}
		})
	}
	t.Run("failures", func(t *testing.T) {
		clk := newFakeClock()
		log := newEventLog(t)
		cfg := testConfig(t, p, clk, log)
		cfg.FirmwareProtocols = []int{0, 2}
		d := startDevice(t, cfg)
		ep := d.Endpoint()
		p.wait("register", ep, 5*time.Second)
		for uri, want := range map[string]int64{
			"ftp://example.com/fw":           fwResultUnsupported,
			"coap://" + p.addr + "/missing":  fwResultInvalidURI,
			hs.URL + "/missing":              fwResultInvalidURI,
			"http://127.0.0.1:1/unreachable": fwResultConnLost,
			"not a uri":                      fwResultInvalidURI,
		} {
			log.drain()
			if r := p.request(ep, codes.PUT, "/5/0/1", lwm2m.FormatText, []byte(uri)); r.code != codes.Changed {
				t.Fatalf("write %q: %v", uri, r.code)
			}
			eventually(t, 10*time.Second, "download of "+uri+" to fail", func() bool {
				v, _ := d.Value(pathFwResult)
				s, _ := d.Value(pathFwState)
				return v.IntValue() == want && s.IntValue() == fwIdle
			})
		}
		// Pushing the package to /5/0/0, then clearing it with an empty one.
		if r := p.request(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, []byte("version=3.0.0\n")); r.code != codes.Changed {
			t.Fatalf("write package: %v", r.code)
		}
		if v, _ := d.Value(pathFwState); v.IntValue() != fwDownloaded {
			t.Errorf("state after push %v", v)
		}
		if r := p.request(ep, codes.PUT, "/5/0/0", lwm2m.FormatOpaque, []byte{}); r.code != codes.Changed {
			t.Fatalf("write empty package: %v", r.code)
		}
		if v, _ := d.Value(pathFwState); v.IntValue() != fwIdle {
			t.Errorf("state after reset %v", v)
		}
	})
}

func TestFleet(t *testing.T) {
	base := runtime.NumGoroutine()
	p := newPeer(t)
	var progress atomic.Int32
	var lines sync.Map
	cfg := Config{
		Server:           p.addr,
		Devices:          200,
		Lifetime:         time.Hour,
		Seed:             1,
		StartConcurrency: 32,
		RequestTimeout:   5 * time.Second,
		ProgressInterval: 50 * time.Millisecond,
		Progress: func(s Stats) {
			progress.Add(1)
			lines.Store(s.String(), true)
		},
	}
	f, err := NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- f.Run(ctx, 10*time.Second) }()

	eps, addrs := map[string]bool{}, map[string]bool{}
	for range 200 {
		e := p.wait("register", "", 30*time.Second)
		eps[e.ep], addrs[e.addr] = true, true
	}
	if len(eps) != 200 || len(addrs) != 200 {
		t.Errorf("%d endpoints from %d addresses, want 200 and 200", len(eps), len(addrs))
	}
	eventually(t, 10*time.Second, "200 registered", func() bool { return f.Stats().Registered == 200 })
	if d := f.Lookup(f.Device(17).Endpoint()); d != f.Device(17) || d.Index() != 17 {
		t.Error("Lookup")
	}
	// A device of the fleet answers like any other.
	ep := f.Device(199).Endpoint()
	if r := p.request(ep, codes.GET, "/3/0/2", 0, nil); string(r.body) != "FNX00000199" {
		t.Errorf("serial of device 199: %q", r.body)
	}
	eventually(t, 5*time.Second, "a progress line", func() bool { return progress.Load() > 0 })

	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for range 200 {
		p.wait("deregister", "", 30*time.Second)
	}
	s := f.Stats()
	if s.Registered != 0 || s.Registrations != 200 || s.Deregistrations != 200 || s.Devices != 200 {
		t.Errorf("stats after stop %+v", s)
	}
	final := fmt.Sprintf("registered 0/200, updates 0, requests 1, notifications 0, sends 0/0 acked, errors 0")
	if _, ok := lines.Load(final); !ok {
		var all []string
		lines.Range(func(k, _ any) bool { all = append(all, k.(string)); return true })
		t.Errorf("no final progress line %q in %q", final, all)
	}
	p.srv.Stop()
	waitGoroutines(t, base+2, 10*time.Second)
}

func TestDeviceStopReleasesGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	p := newPeer(t)
	for range 3 {
		cfg := testConfig(t, p, newFakeClock(), nil)
		cfg.Binding = "UQ"
		cfg.SendInterval = time.Second
		d, err := NewDevice(cfg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		p.wait("register", d.Endpoint(), 5*time.Second)
		p.observe(d.Endpoint(), "/3303/0/5700", nil)
		d.Reboot()
		p.wait("register", d.Endpoint(), 5*time.Second)
		if err := d.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// A device that never started stops too.
	d, _ := NewDevice(testConfig(t, p, nil, nil), 1)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.srv.Stop()
	waitGoroutines(t, base+2, 10*time.Second)
}
