package devmgmt_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
)

func TestParsePolicy(t *testing.T) {
	p, err := devmgmt.ParsePolicy(" /3303/0/5700, /3/0/9+/3/0/0?pmin=5&pmax=30 ,/5/0/3?", "pmin=60, pmax=3600")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range p.Entries {
		got = append(got, e.String())
	}
	if want := []string{"/3303/0/5700", "/3/0/9+/3/0/0?pmin=5&pmax=30", "/5/0/3?"}; !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if !p.Entries[1].Composite || p.Entries[0].OwnAttrs || !p.Entries[2].OwnAttrs || !p.Entries[2].Attrs.IsZero() {
		t.Errorf("entries %+v", p.Entries)
	}
	if q := strings.Join(p.Attrs.Query(), "&"); q != "pmin=60&pmax=3600" {
		t.Errorf("attributes %q", q)
	}
	if p, err := devmgmt.ParsePolicy("", ""); err != nil || len(p.Entries) != 0 || !p.Attrs.IsZero() {
		t.Errorf("empty policy: %+v %v", p, err)
	}
	def := devmgmt.DefaultPolicy()
	if q := strings.Join(def.Attrs.Query(), "&"); q != "pmin=60" || len(def.Entries) != 4 {
		t.Errorf("default policy: %+v", def)
	}

	for _, c := range []struct{ list, attrs, want string }{
		{"/x", "", "--auto-observe, FLOWNEXUS_AUTO_OBSERVE"},
		{"/", "", "root path"},
		{"/1/0/1?pmin=x", "", `entry "/1/0/1?pmin=x"`},
		{"/1/0/1?nope=1", "", "unknown attribute"},
		{"", "pmin=-1", "--auto-observe-attrs, FLOWNEXUS_AUTO_OBSERVE_ATTRS"},
		{"", "pmin=60,pmin=61", "given twice"},
		{"", "pmin=600&pmax=60", "pmin 600 is greater than pmax 60"},
	} {
		_, err := devmgmt.ParsePolicy(c.list, c.attrs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePolicy(%q, %q) = %v, want an error with %q", c.list, c.attrs, err, c.want)
		}
	}
}

// waitObserved waits until the peer holds an observation of each path.
func waitObserved(t *testing.T, p *peer, paths ...lwm2m.Path) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := 0
		for _, q := range paths {
			if _, _, ok := p.observerFor(false, q); !ok {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("%d observations missing; peer requests: %v", missing, p.requests)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAutoObserveWritesAttributesFirst: each entry's paths get the
// policy's attributes, or the entry's own, by Write-Attributes before the
// Observe, and the observations record that they came from the policy
// and which attributes were written.
func TestAutoObserveWritesAttributesFirst(t *testing.T) {
	policy, err := devmgmt.ParsePolicy("/3303/0/5700,/3/0/9?pmin=5&pmax=30,/5/0/3?", "pmin=60")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, &policy)
	p := newPeer(t, s, "attrs", "1.1")
	p.register()
	fw := lwm2m.NewPath(5, 0, 3)
	waitObserved(t, p, pTemp, pBattery, fw)

	p.mu.Lock()
	attrs := map[string]string{}
	for k, v := range p.attrs {
		attrs[k] = strings.Join(v, "&")
	}
	reqs := slices.Clone(p.requests)
	p.mu.Unlock()
	if want := map[string]string{"/3303/0/5700": "pmin=60", "/3/0/9": "pmin=5&pmax=30"}; !maps(attrs, want) {
		t.Errorf("attributes written %v, want %v", attrs, want)
	}
	// One request at a time, attributes before each Observe.
	var order []string
	for _, r := range reqs {
		f := strings.Fields(r)
		order = append(order, f[0]+" "+f[1])
	}
	want := []string{"PUT /3303/0/5700", "GET /3303/0/5700", "PUT /3/0/9", "GET /3/0/9", "GET /5/0/3"}
	if !slices.Equal(order, want) {
		t.Errorf("requests %q, want %q", order, want)
	}

	obs, err := s.mgr.ListObservations(context.Background(), p.name)
	if err != nil || len(obs) != 3 {
		t.Fatalf("observations %+v %v", obs, err)
	}
	wantAttrs := []string{"pmin=60", "pmin=5&pmax=30", ""}
	for i, o := range obs {
		if o.Origin != (registry.Origin{Kind: registry.OriginAutoObserve}) || o.Attributes != wantAttrs[i] {
			t.Errorf("observation %d: origin %+v, attributes %q; want auto-observe, %q", i, o.Origin, o.Attributes, wantAttrs[i])
		}
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestAutoObserveRefusedAttributes: a path whose Write-Attributes the
// device refuses is not observed (an observation without pmin could keep
// it awake); the device answered, so the rest of the policy goes on.
func TestAutoObserveRefusedAttributes(t *testing.T) {
	policy, err := devmgmt.ParsePolicy("/3303/0/5700,/5/0/3", "pmin=60")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, &policy)
	p := newPeer(t, s, "no-attrs", "1.1")
	p.fail["/3303/0/5700"] = codes.MethodNotAllowed
	p.register()
	fw := lwm2m.NewPath(5, 0, 3)
	waitObserved(t, p, fw)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.requests {
		if strings.HasPrefix(r, "GET /3303/0/5700") {
			t.Errorf("observed after the attributes were refused: %s", r)
		}
	}
	if got := s.mgr.Observations(p.name); len(got) != 1 || got[0].Paths[0] != fw {
		t.Errorf("observations %+v, want only %s", got, fw)
	}
}

// TestAutoObserveSilentAddressGetsOneRequest: a Register whose source
// address does not answer (as one with a forged source) draws one
// confirmable request of the policy, with its retransmissions, and no
// other: the socket that registered receives the CONs and never answers.
func TestAutoObserveSilentAddressGetsOneRequest(t *testing.T) {
	const timeout = 2 * time.Second
	s := newStack(t, nil, func(c *devmgmt.Config) { c.Timeout = timeout })
	victim, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	buf := make([]byte, 1500)
	opts := message.Options{}.
		Add(message.Option{ID: message.URIPath, Value: []byte("rd")}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("ep=spoofed")}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("lwm2m=1.1")})
	n, err := coder.DefaultCoder.Encode(message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: 7,
		Token: message.Token{1}, Options: opts, Payload: []byte("</3303/0>,</3304/0>,</5/0>")}, buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := victim.Write(buf[:n]); err != nil {
		t.Fatal(err)
	}
	// Read for two timeouts and more: without the gate the policy's
	// second request would go out after the first timed out.
	end := time.Now().Add(2*timeout + 1500*time.Millisecond)
	var cons, registered int
	mids := map[uint16]bool{}
	for {
		_ = victim.SetReadDeadline(end)
		n, err := victim.Read(buf)
		if err != nil {
			break
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatal(err)
		}
		switch {
		case m.Code == codes.Created:
			registered++
		case m.Type == message.Confirmable && m.Code < codes.Created:
			cons++
			mids[uint16(m.MessageID)] = true
		}
	}
	if registered != 1 {
		t.Fatalf("register answered %d times", registered)
	}
	if cons == 0 || len(mids) != 1 {
		t.Fatalf("%d confirmable requests with %d message IDs, want one request and its retransmissions", cons, len(mids))
	}
}
