package simulator

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

func TestObserveNotifications(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	d := startDevice(t, testConfig(t, p, clk, log))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	path := lwm2m.MustParsePath("/3303/0/5700")

	for _, f := range []lwm2m.MediaType{lwm2m.FormatSenMLCBOR, lwm2m.FormatTLV, lwm2m.FormatText} {
		t.Run(f.String(), func(t *testing.T) {
			o, first := p.observe(ep, path.String(), nil, accept(f))
			if first.code != codes.Content || !first.hasObs || first.format != f {
				t.Fatalf("observe answer %v observe=%v format %v", first.code, first.hasObs, first.format)
			}
			want, _ := d.Read(path)
			sameRecords(t, "observe answer", decodeReply(t, first, path), want)
			log.wait(EventObserve, nil, 5*time.Second)
			// Values walk every 10 s; a step may round to the same
			// value, which is no change and no notification.
			got := 0
			for step := 0; got < 3; step++ {
				if step == 10 {
					t.Fatalf("%d notifications in %d value steps", got, step)
				}
				clk.Advance(10 * time.Second)
				var n reply
				select {
				case n = <-o.notes:
				case <-time.After(300 * time.Millisecond):
					if cur, _ := d.Read(path); recordsEqual(cur, decodeReply(t, first, path)) {
						continue
					}
					n = o.next(t, 5*time.Second)
				}
				if n.code != codes.Content || n.format != f || !n.hasObs || n.observe <= first.observe {
					t.Fatalf("notification %d: %v format %v observe %d after %d", got, n.code, n.format, n.observe, first.observe)
				}
				first = n
				want, _ := d.Read(path)
				sameRecords(t, "notification", decodeReply(t, n, path), want)
				got++
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := o.obs.Cancel(ctx); err != nil {
				t.Fatalf("cancel: %v", err)
			}
			log.wait(EventCancel, func(e Event) bool { return e.Op == "cancel" }, 5*time.Second)
			if n := d.Observations(); n != 0 {
				t.Errorf("%d observations after cancel", n)
			}
			clk.Advance(10 * time.Second)
			o.none(t, 200*time.Millisecond)
		})
	}
	eventually(t, 5*time.Second, "9 notifications", func() bool { return d.Stats().Notifications == 9 })
}

func TestObserveAttributes(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	cfg.ValueInterval = time.Hour // values change only by Set
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	temp := lwm2m.MustParsePath("/3303/0/5700")
	set := func(v float64) {
		t.Helper()
		if err := d.Set(temp, lwm2m.Float(v)); err != nil {
			t.Fatal(err)
		}
	}
	value := func(r reply) float64 {
		t.Helper()
		rs := decodeReply(t, r, temp)
		return rs[0].Value.FloatValue()
	}
	writeAttrs := func(path string, q ...string) {
		t.Helper()
		if r := p.request(ep, codes.PUT, path, 0, nil, query(q...)); r.code != codes.Changed {
			t.Fatalf("write-attributes %s %q: %v %q", path, q, r.code, r.body)
		}
	}

	t.Run("step", func(t *testing.T) {
		set(20)
		writeAttrs(temp.String(), "st=1")
		o, _ := p.observe(ep, temp.String(), nil, accept(lwm2m.FormatText))
		log.wait(EventObserve, nil, 5*time.Second)
		set(20.5)
		o.none(t, 200*time.Millisecond)
		set(21.2)
		if v := value(o.next(t, 5*time.Second)); v != 21.2 {
			t.Errorf("notified %v", v)
		}
		set(20.4) // 0.8 from what was notified
		o.none(t, 200*time.Millisecond)
		set(20.1)
		if v := value(o.next(t, 5*time.Second)); v != 20.1 {
			t.Errorf("notified %v", v)
		}
		cancelObs(t, o)
		writeAttrs(temp.String(), "st")
	})
	t.Run("thresholds", func(t *testing.T) {
		set(20)
		writeAttrs(temp.String(), "gt=25", "lt=10")
		o, _ := p.observe(ep, temp.String(), nil, accept(lwm2m.FormatText))
		log.wait(EventObserve, nil, 5*time.Second)
		set(24)
		o.none(t, 200*time.Millisecond)
		set(26) // crosses gt upwards
		if v := value(o.next(t, 5*time.Second)); v != 26 {
			t.Errorf("notified %v", v)
		}
		set(30)
		o.none(t, 200*time.Millisecond)
		set(24) // back below gt
		if v := value(o.next(t, 5*time.Second)); v != 24 {
			t.Errorf("notified %v", v)
		}
		set(9) // below lt
		if v := value(o.next(t, 5*time.Second)); v != 9 {
			t.Errorf("notified %v", v)
		}
		cancelObs(t, o)
		writeAttrs(temp.String(), "gt", "lt")
	})
	t.Run("pmin", func(t *testing.T) {
		set(20)
		writeAttrs("/3303/0", "pmin=30") // inherited by the resource
		o, _ := p.observe(ep, temp.String(), nil, accept(lwm2m.FormatText))
		log.wait(EventObserve, nil, 5*time.Second)
		set(21)
		o.none(t, 200*time.Millisecond)
		clk.Advance(29 * time.Second)
		o.none(t, 200*time.Millisecond)
		clk.Advance(time.Second)
		if v := value(o.next(t, 5*time.Second)); v != 21 {
			t.Errorf("notified %v", v)
		}
		cancelObs(t, o)
		writeAttrs("/3303/0", "pmin")
	})
	t.Run("pmax", func(t *testing.T) {
		man := "/3/0/0" // never changes
		writeAttrs(man, "pmax=5")
		o, _ := p.observe(ep, man, nil)
		log.wait(EventObserve, nil, 5*time.Second)
		clk.Advance(4 * time.Second)
		o.none(t, 200*time.Millisecond)
		for range 2 {
			clk.Advance(time.Second)
			n := o.next(t, 5*time.Second)
			if string(n.body) != "flownexus" {
				t.Errorf("pmax notification %q", n.body)
			}
			clk.Advance(4 * time.Second)
			o.none(t, 100*time.Millisecond)
		}
		cancelObs(t, o)
	})
	t.Run("default periods from the server object", func(t *testing.T) {
		if r := p.request(ep, codes.PUT, "/1/0/3", lwm2m.FormatText, []byte("7")); r.code != codes.Changed {
			t.Fatalf("write default pmax: %v", r.code)
		}
		o, _ := p.observe(ep, "/3/0/1", nil)
		log.wait(EventObserve, nil, 5*time.Second)
		clk.Advance(6 * time.Second)
		o.none(t, 200*time.Millisecond)
		clk.Advance(time.Second)
		o.next(t, 5*time.Second)
		cancelObs(t, o)
		p.request(ep, codes.PUT, "/1/0/3", lwm2m.FormatText, []byte("0"))
	})
}

func cancelObs(t *testing.T, o *peerObs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.obs.Cancel(ctx); err != nil {
		t.Fatalf("cancel: %v", err)
	}
}

func TestObserveComposite(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	d := startDevice(t, testConfig(t, p, clk, log))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	paths := []lwm2m.Path{lwm2m.MustParsePath("/3303/0/5700"), lwm2m.MustParsePath("/3304/0/5700"), lwm2m.MustParsePath("/3/0/9")}
	current := func() []lwm2m.Record {
		var out []lwm2m.Record
		for _, q := range paths {
			rs, _ := d.Read(q)
			out = append(out, rs...)
		}
		return out
	}
	o, first := p.observe(ep, "/", paths, accept(lwm2m.FormatSenMLJSON))
	if first.code != codes.Content || first.format != lwm2m.FormatSenMLJSON || !first.hasObs {
		t.Fatalf("observe-composite answer %v %v %v", first.code, first.format, first.hasObs)
	}
	sameRecords(t, "observe-composite answer", decodeReply(t, first, lwm2m.Root), current())
	log.wait(EventObserve, nil, 5*time.Second)
	clk.Advance(10 * time.Second)
	n := o.next(t, 5*time.Second)
	sameRecords(t, "composite notification", decodeReply(t, n, lwm2m.Root), current())

	// Cancel with FETCH and Observe=1 on the same token.
	pr := p.registration(ep)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, _ := senml.EncodePathsCBOR(paths)
	req := pr.conn.AcquireMessage(ctx)
	defer pr.conn.ReleaseMessage(req)
	if err := req.SetupFetch("/", o.token, message.MediaType(lwm2m.FormatSenMLCBOR), bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	req.SetObserve(1)
	resp, err := pr.conn.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code() != codes.Content {
		t.Errorf("cancel-composite answer %v", resp.Code())
	}
	pr.conn.ReleaseMessage(resp)
	log.wait(EventCancel, nil, 5*time.Second)
	if d.Observations() != 0 {
		t.Errorf("%d observations after cancel", d.Observations())
	}

	// go-coap cancels with GET and Observe=1: answered with the composite.
	o2, _ := p.observe(ep, "/", paths)
	log.wait(EventObserve, nil, 5*time.Second)
	cancelObs(t, o2)
	if d.Observations() != 0 {
		t.Errorf("%d observations after GET cancel", d.Observations())
	}
}

func TestObservationEnds(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	d := startDevice(t, testConfig(t, p, clk, log))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)

	if r := p.request(ep, codes.POST, "/3303", 0, nil); r.code != codes.Created {
		t.Fatalf("create: %v", r.code)
	}
	o, _ := p.observe(ep, "/3303/1", nil)
	log.wait(EventObserve, nil, 5*time.Second)
	if r := p.request(ep, codes.DELETE, "/3303/1", 0, nil); r.code != codes.Deleted {
		t.Fatalf("delete: %v", r.code)
	}
	if n := o.next(t, 5*time.Second); n.code != codes.NotFound {
		t.Errorf("notification after delete: %v", n.code)
	}
	log.wait(EventCancel, func(e Event) bool { return e.Op == "gone" }, 5*time.Second)

	// Observations do not survive a reboot (a new registration).
	p.observe(ep, "/3303/0/5700", nil)
	log.wait(EventObserve, nil, 5*time.Second)
	if d.Observations() != 1 {
		t.Fatalf("%d observations", d.Observations())
	}
	d.Reboot()
	p.wait("register", ep, 5*time.Second)
	eventually(t, 5*time.Second, "registered", d.Registered)
	if d.Observations() != 0 {
		t.Errorf("%d observations after reboot", d.Observations())
	}

	for path, want := range map[string]codes.Code{"/": codes.MethodNotAllowed, "/3/0/4": codes.MethodNotAllowed, "/9": codes.NotFound} {
		pr := p.registration(ep)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req := pr.conn.AcquireMessage(ctx)
		token, _ := message.GetToken()
		_ = req.SetupGet(path, token)
		req.SetObserve(0)
		resp, err := pr.conn.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code() != want {
			t.Errorf("observe %s: %v, want %v", path, resp.Code(), want)
		}
		pr.conn.ReleaseMessage(resp)
		pr.conn.ReleaseMessage(req)
		cancel()
	}
	if d.Observations() != 0 {
		t.Errorf("refused observations were kept: %d", d.Observations())
	}
}

func TestObserveReset(t *testing.T) {
	p := newPeer(t)
	log := newEventLog(t)
	cfg := testConfig(t, p, newFakeClock(), log)
	cfg.ValueInterval = time.Hour
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	o, _ := p.observe(ep, "/3303/0/5700", nil)
	log.wait(EventObserve, nil, 5*time.Second)
	p.mu.Lock()
	p.resetTokens[string(o.token)] = true
	p.mu.Unlock()
	if err := d.Set(lwm2m.MustParsePath("/3303/0/5700"), lwm2m.Float(-3)); err != nil {
		t.Fatal(err)
	}
	log.wait(EventCancel, func(e Event) bool { return e.Op == "reset" }, 5*time.Second)
	if d.Observations() != 0 {
		t.Errorf("%d observations after Reset", d.Observations())
	}
	if s := d.Stats(); s.Notifications != 0 {
		t.Errorf("reset notification counted: %+v", s)
	}
	o.none(t, 100*time.Millisecond)
}

// TestObserveBeforeRegisterAnswer: a server that observes a device as
// soon as it has registered it (auto-observe) can have its Observe handled
// by the device before the Register answer reaches the device's run loop.
// The observation must survive the answer: before, the device dropped all
// observations when the answer arrived, so the server held an observation
// the device never notified (the flaky TestRestartKeepsObservations of
// package app, whose temperature was never notified).
func TestObserveBeforeRegisterAnswer(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	notes := make(chan reply, 16)
	p.beforeRegistered = func(cc *client.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := cc.AcquireMessage(ctx)
		defer cc.ReleaseMessage(req)
		token, _ := message.GetToken()
		if err := req.SetupGet("/3303/0/5700", token); err != nil {
			t.Error(err)
			return
		}
		req.SetObserve(0)
		if _, err := cc.DoObserve(req, func(m *pool.Message) { notes <- copyReply(m) }); err != nil {
			t.Errorf("observe before the Register answer: %v", err)
		}
	}
	d := startDevice(t, testConfig(t, p, clk, log))
	p.wait("register", d.Endpoint(), 5*time.Second)
	if first := <-notes; first.code != codes.Content {
		t.Fatalf("observe answer %v", first.code)
	}
	log.wait(EventRegistered, nil, 5*time.Second)
	if n := d.Observations(); n != 1 {
		t.Fatalf("%d observations after the Register answer, want 1", n)
	}
	log.waitAdvancing(clk, 10*time.Second, EventNotified, nil, 5*time.Second)
}

// TestNotificationAcrossServerRestart closes the server's socket while a
// device has an observation and a value to notify: the notification meets
// ICMP port unreachable, which makes go-coap close the device's socket.
// That is not the server losing interest: the device opens a new socket,
// sends the notification again once the server is back, keeps its
// observation and tells the server its new address with an Update.
// Before, it ended the observation, and its notifications stopped for
// good after a server restart.
func TestNotificationAcrossServerRestart(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	cfg.RequestTimeout = 10 * time.Second
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	p.observe(ep, "/3303/0/5700", nil)
	log.wait(EventObserve, nil, 5*time.Second)
	oldAddr := d.LocalAddr()

	p.stopServer()
	// The value changes: the notification goes to a closed port.
	d.Set(lwm2m.NewPath(3303, 0, 5700), lwm2m.Float(99.5))
	eventually(t, 5*time.Second, "the notification to meet the closed port", func() bool {
		return d.LocalAddr() != oldAddr || d.Observations() == 0
	})
	if d.Observations() == 0 {
		t.Fatal("the device ended its observation when its socket closed")
	}
	p.restart()
	log.wait(EventNotified, nil, 10*time.Second)
	if n := d.Observations(); n != 1 {
		t.Fatalf("%d observations after the server restart, want 1", n)
	}
	e := p.wait("update", ep, 10*time.Second)
	if e.addr != d.LocalAddr() {
		t.Fatalf("update from %s, want the new socket %s", e.addr, d.LocalAddr())
	}
}
