package simulator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestLuhnAndIMEI(t *testing.T) {
	// 49015420323751 is the example IMEI body with check digit 8.
	if got := luhnDigit("49015420323751"); got != 8 {
		t.Errorf("luhnDigit = %d, want 8", got)
	}
	imei, err := IMEI("49015420323751", 0)
	if err != nil || imei != "490154203237518" {
		t.Errorf("IMEI = %q, %v", imei, err)
	}
	imei, err = IMEI("35000000000000", 12)
	if err != nil || imei[:14] != "35000000000012" || len(imei) != 15 {
		t.Errorf("IMEI(+12) = %q, %v", imei, err)
	}
	// Every IMEI validates under Luhn over all 15 digits.
	for i := range 100 {
		s, _ := IMEI(DefaultBaseIMEI, i)
		sum := 0
		for j := 0; j < 15; j++ {
			d := int(s[14-j] - '0')
			if j%2 == 1 {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
		}
		if sum%10 != 0 {
			t.Fatalf("IMEI %s fails the Luhn check", s)
		}
	}
	for _, bad := range []string{"", "123", "3500000000000x", "350000000000001"} {
		if _, err := IMEI(bad, 0); err == nil {
			t.Errorf("IMEI(%q) accepted", bad)
		}
	}
	if _, err := IMEI("99999999999999", 1); err == nil {
		t.Error("IMEI overflow accepted")
	}
	ep, err := Config{}.EndpointName(3)
	if err != nil || !strings.HasPrefix(ep, "urn:imei:35000000000003") {
		t.Errorf("EndpointName = %q, %v", ep, err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Server: "127.0.0.1:5683"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no server":      func(c *Config) { c.Server = "" },
		"no port":        func(c *Config) { c.Server = "localhost" },
		"devices":        func(c *Config) { c.Devices = -1 },
		"binding":        func(c *Config) { c.Binding = "T" },
		"version":        func(c *Config) { c.Version = "2.0" },
		"format":         func(c *Config) { c.Format = lwm2m.FormatOpaque },
		"format for 1.0": func(c *Config) { c.Version = lwm2m.V1_0; c.Format = lwm2m.FormatSenMLCBOR },
		"lifetime":       func(c *Config) { c.Lifetime = time.Millisecond },
		"negative send":  func(c *Config) { c.SendInterval = -time.Second },
		"drop rate":      func(c *Config) { c.Faults.DropRate = 1.5 },
		"rates sum":      func(c *Config) { c.Faults.DropRate, c.Faults.ErrorRate = 0.6, 0.6 },
		"error code":     func(c *Config) { c.Faults.ErrorCode = codes.Content },
		"base imei":      func(c *Config) { c.BaseIMEI = "12" },
		"imei room":      func(c *Config) { c.BaseIMEI = "99999999999999"; c.Devices = 2 },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRegisterUpdateDeregister(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	d, err := NewDevice(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	reg := p.wait("register", d.Endpoint(), 5*time.Second)
	for _, q := range []string{"ep=" + d.Endpoint(), "lt=100", "lwm2m=1.1", "b=U"} {
		if !slices.Contains(reg.queries, q) {
			t.Errorf("register queries %q lack %q", reg.queries, q)
		}
	}
	if slices.Contains(reg.queries, "Q") {
		t.Errorf("binding U sent Q: %q", reg.queries)
	}
	pr := p.registration(d.Endpoint())
	if !strings.HasPrefix(string(pr.payload), `</>;rt="oma.lwm2m";ct=112,`) {
		t.Errorf("payload %q lacks the root link", pr.payload)
	}
	if !slices.Equal(pr.objects.ContentFormats, []lwm2m.MediaType{lwm2m.FormatSenMLCBOR}) {
		t.Errorf("announced formats %v", pr.objects.ContentFormats)
	}
	var ids []uint16
	for _, o := range pr.objects.Objects {
		ids = append(ids, o.ID)
		if !slices.Equal(o.Instances, []uint16{0}) {
			t.Errorf("object %d instances %v", o.ID, o.Instances)
		}
	}
	if want := []uint16{1, 3, 4, 5, 19, 3303, 3304}; !slices.Equal(ids, want) {
		t.Errorf("objects %v, want %v", ids, want)
	}
	if o, _ := pr.objects.Object(3303); o.Version != "1.1" {
		t.Errorf("3303 version %q", o.Version)
	}
	if !d.Registered() || d.Location() != pr.loc {
		t.Errorf("device registered=%v location %q, peer %q", d.Registered(), d.Location(), pr.loc)
	}
	if e := log.wait(EventRegistered, nil, time.Second); e.Location != pr.loc || e.Version != lwm2m.V1_1 {
		t.Errorf("registered event %+v", e)
	}

	// No Update before 90% of the lifetime, one right after.
	clk.Advance(89 * time.Second)
	p.none("update", 200*time.Millisecond)
	clk.Advance(time.Second)
	up := p.wait("update", d.Endpoint(), 5*time.Second)
	log.wait(EventUpdated, nil, 5*time.Second)
	if len(up.queries) != 0 || len(up.payload) != 0 {
		t.Errorf("plain update carried %q %q", up.queries, up.payload)
	}
	if up.loc != pr.loc {
		t.Errorf("update to %q, registered at %q", up.loc, pr.loc)
	}
	// The next one is 90 s after this one.
	clk.Advance(80 * time.Second)
	p.none("update", 200*time.Millisecond)
	clk.Advance(10 * time.Second)
	p.wait("update", d.Endpoint(), 5*time.Second)

	// On demand.
	d.TriggerUpdate()
	p.wait("update", d.Endpoint(), 5*time.Second)
	eventually(t, 5*time.Second, "3 updates", func() bool { return d.Stats().Updates == 3 })
	if s := d.Stats(); s.Registrations != 1 || s.Updates != 3 || s.Registered != 1 {
		t.Errorf("stats %+v", s)
	}

	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	de := p.wait("deregister", d.Endpoint(), 5*time.Second)
	if de.loc != pr.loc {
		t.Errorf("deregister %q, registered at %q", de.loc, pr.loc)
	}
	if d.Registered() || d.Stats().Deregistrations != 1 {
		t.Errorf("after stop: registered %v, stats %+v", d.Registered(), d.Stats())
	}
	if err := d.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestVersionStepDown(t *testing.T) {
	for _, tc := range []struct {
		start  lwm2m.Version
		refuse []string
		want   lwm2m.Version
	}{
		{lwm2m.V1_1, []string{"1.1"}, lwm2m.V1_0},
		{lwm2m.V1_2, []string{"1.2"}, lwm2m.V1_1},
		{lwm2m.V1_2, []string{"1.2", "1.1"}, lwm2m.V1_0},
	} {
		t.Run(string(tc.start)+"-"+strings.Join(tc.refuse, ","), func(t *testing.T) {
			p := newPeer(t)
			for _, v := range tc.refuse {
				p.refuse[v] = true
			}
			log := newEventLog(t)
			cfg := testConfig(t, p, newFakeClock(), log)
			cfg.Version = tc.start
			cfg.Binding = "UQ"
			d := startDevice(t, cfg)
			reg := p.wait("register", d.Endpoint(), 5*time.Second)
			if !slices.Contains(reg.queries, "lwm2m="+string(tc.want)) {
				t.Errorf("registered with %q, want lwm2m=%s", reg.queries, tc.want)
			}
			if d.Version() != tc.want {
				t.Errorf("Version() = %s", d.Version())
			}
			log.wait(EventVersionStepDown, nil, time.Second)
			pr := p.registration(d.Endpoint())
			if tc.want == lwm2m.V1_0 {
				// 1.0: binding UQ in b=, no root link, no versions.
				if !slices.Contains(reg.queries, "b=UQ") || slices.Contains(reg.queries, "Q") {
					t.Errorf("1.0 binding queries %q", reg.queries)
				}
				if strings.Contains(string(pr.payload), "rt=") || strings.Contains(string(pr.payload), "ver=") {
					t.Errorf("1.0 payload %q", pr.payload)
				}
				// Composite operations and SenML are refused.
				if r := p.request(d.Endpoint(), codes.GET, "/3/0", 0, nil, accept(lwm2m.FormatSenMLJSON)); r.code != codes.NotAcceptable {
					t.Errorf("SenML read on 1.0: %v", r.code)
				}
				body, _ := encode(lwm2m.FormatSenMLJSON, lwm2m.Root, nil)
				if r := p.request(d.Endpoint(), codes.FETCH, "/", lwm2m.FormatSenMLJSON, body); r.code != codes.MethodNotAllowed {
					t.Errorf("FETCH on 1.0: %v", r.code)
				}
				if r := p.request(d.Endpoint(), codes.GET, "/3/0", 0, nil); r.format != lwm2m.FormatTLV {
					t.Errorf("1.0 default format %v", r.format)
				}
			} else if !slices.Contains(reg.queries, "b=U") || !slices.Contains(reg.queries, "Q") {
				t.Errorf("1.1 binding queries %q", reg.queries)
			}
		})
	}
}

func TestRegisterRetry(t *testing.T) {
	p := newPeer(t)
	p.registerCode = codes.InternalServerError
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	d, err := NewDevice(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Start(context.Background())
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	if !errors.Is(err, ErrRegistration) {
		t.Fatalf("Start = %v, want ErrRegistration", err)
	}
	if e := log.wait(EventRegisterFailed, nil, time.Second); e.Code != codes.InternalServerError {
		t.Errorf("failure event %+v", e)
	}
	p.mu.Lock()
	p.registerCode = 0
	p.mu.Unlock()
	// The retry comes after a back-off of about a second.
	log.waitAdvancing(clk, 300*time.Millisecond, EventRegistered, nil, 10*time.Second)
	if s := d.Stats(); s.Errors != 1 || s.Registrations != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestUpdateNotFoundReregisters(t *testing.T) {
	p := newPeer(t)
	log := newEventLog(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), log))
	first := p.wait("register", d.Endpoint(), 5*time.Second)
	p.mu.Lock()
	delete(p.byLoc, first.loc) // the server forgets the registration
	p.mu.Unlock()
	d.TriggerUpdate()
	log.wait(EventUpdateFailed, func(e Event) bool { return e.Code == codes.NotFound }, 5*time.Second)
	second := p.wait("register", d.Endpoint(), 5*time.Second)
	if second.loc == first.loc {
		t.Errorf("re-registration got the old location %q", second.loc)
	}
}
