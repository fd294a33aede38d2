package webhook

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// TestSign checks the signature against a vector computed independently
// (Python's hmac module): HMAC-SHA256("whsec_test",
// "1700000000." + body).
func TestSign(t *testing.T) {
	body := []byte(`{"id":1,"topic":"ping"}`)
	const want = "sha256=ed2e9157a12a1e3b55e62b250c5d05c6d29e390d518d08f41eb5e859f99b5735"
	if got := Sign([]byte("whsec_test"), 1700000000, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	now := time.Unix(1700000100, 0)
	if !Verify([]byte("whsec_test"), "1700000000", want, body, now, 5*time.Minute) {
		t.Error("Verify refused a good signature")
	}
	for name, c := range map[string]struct {
		secret, ts, sig string
		body            []byte
		now             time.Time
	}{
		"other secret": {"whsec_other", "1700000000", want, body, now},
		"other body":   {"whsec_test", "1700000000", want, []byte(`{"id":2}`), now},
		"other time":   {"whsec_test", "1700000001", want, body, now},
		"too old":      {"whsec_test", "1700000000", want, body, now.Add(time.Hour)},
		"no prefix":    {"whsec_test", "1700000000", strings.TrimPrefix(want, "sha256="), body, now},
		"bad time":     {"whsec_test", "soon", want, body, now},
	} {
		if Verify([]byte(c.secret), c.ts, c.sig, c.body, c.now, 5*time.Minute) {
			t.Errorf("%s: Verify accepted it", name)
		}
	}
}

func TestBlocked(t *testing.T) {
	for _, c := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},        // loopback
		{"127.8.9.10", true},       // loopback
		{"::1", true},              // loopback
		{"10.1.2.3", true},         // private
		{"172.16.0.1", true},       // private
		{"172.31.255.255", true},   // private
		{"192.168.1.1", true},      // private
		{"fd00::1", true},          // unique local
		{"169.254.169.254", true},  // link-local (cloud metadata)
		{"fe80::1", true},          // link-local
		{"0.0.0.0", true},          // unspecified
		{"::", true},               // unspecified
		{"0.1.2.3", true},          // this network
		{"224.0.0.1", true},        // multicast
		{"239.1.2.3", true},        // multicast
		{"ff02::1", true},          // multicast
		{"100.64.0.1", true},       // shared address space
		{"255.255.255.255", true},  // broadcast
		{"::ffff:127.0.0.1", true}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", true},  // IPv4-mapped private
		{"93.184.216.34", false},   // public
		{"172.32.0.1", false},      // just past 172.16/12
		{"2606:4700::1111", false}, // public IPv6
		{"::ffff:93.184.216.34", false},
	} {
		if got := Blocked(netip.MustParseAddr(c.addr)); got != c.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", c.addr, got, c.blocked)
		}
	}
	if err := guardControl("tcp", "127.0.0.1:443", nil); !errors.Is(err, ErrBlockedAddress) {
		t.Errorf("guardControl(loopback) = %v", err)
	}
	if err := guardControl("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("guardControl(public) = %v", err)
	}
}

// TestGuardAtConnect: the client refuses to connect to an internal
// address whatever the URL's host resolved to when it was stored.
func TestGuardAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c := newClient(2*time.Second, false)
	_, err = c.Post("http://"+ln.Addr().String()+"/", "application/json", bytes.NewReader(nil))
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("POST to loopback: %v, want ErrBlockedAddress", err)
	}
	// A name resolving to loopback is dialled by address: refused too.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, err = c.Post("http://localhost:"+port+"/", "application/json", bytes.NewReader(nil))
	if !errors.Is(err, ErrBlockedAddress) {
		t.Fatalf("POST to localhost: %v, want ErrBlockedAddress", err)
	}
}

func TestURLPolicy(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "hooks.example.com":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		case "rebind.example.com":
			return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.5")}, nil
		}
		return nil, errors.New("no such host")
	}
	strict := urlPolicy{lookup: lookup}
	debug := urlPolicy{allowHTTP: true, lookup: lookup}
	open := urlPolicy{allowHTTP: true, allowPrivate: true, lookup: lookup}
	for _, c := range []struct {
		p   urlPolicy
		url string
		ok  bool
	}{
		{strict, "https://hooks.example.com/in", true},
		{strict, "https://93.184.216.34/in", true},
		{strict, "http://hooks.example.com/in", false},
		{debug, "http://hooks.example.com/in", true},
		{strict, "ftp://hooks.example.com/", false},
		{strict, "https://user:pw@hooks.example.com/", false},
		{strict, "https://hooks.example.com/#x", false},
		{strict, "https:///path", false},
		{strict, "", false},
		{strict, "https://127.0.0.1/", false},
		{strict, "https://[::1]/", false},
		{strict, "https://10.0.0.1/", false},
		{strict, "https://169.254.169.254/latest/meta-data", false},
		{strict, "https://localhost/", false},
		{strict, "https://rebind.example.com/", false},
		{strict, "https://nowhere.example.com/", false},
		{open, "http://127.0.0.1:8080/hook", true},
		{open, "https://localhost/", true},
	} {
		msg := c.p.check(context.Background(), c.url)
		if (msg == "") != c.ok {
			t.Errorf("check(%q) = %q, want ok %v", c.url, msg, c.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	var total time.Duration
	for attempt := 1; attempt < DefaultMaxAttempts; attempt++ {
		d := Backoff(attempt)
		want := 30 * time.Second << (attempt - 1)
		if d < want*9/10 || d > want*11/10 {
			t.Errorf("Backoff(%d) = %v, want %v ±10%%", attempt, d, want)
		}
		total += d
	}
	if total < 50*time.Minute || total > 75*time.Minute {
		t.Errorf("the attempts span %v, want about an hour", total)
	}
	if d := Backoff(30); d > 66*time.Minute {
		t.Errorf("Backoff(30) = %v, want at most an hour", d)
	}
}

func TestSeal(t *testing.T) {
	s, err := newSealer("a secret key for tests, long enough")
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.seal([]byte("whsec_abc"), 7)
	if bytes.Contains(sealed, []byte("whsec_abc")) {
		t.Fatal("the secret is stored in clear")
	}
	got, err := s.open(sealed, 7)
	if err != nil || string(got) != "whsec_abc" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := s.open(sealed, 8); !errors.Is(err, ErrSealed) {
		t.Errorf("opened as another user's: %v", err)
	}
	other, _ := newSealer("another secret key for tests, long")
	if _, err := other.open(sealed, 7); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another key: %v", err)
	}
}

func TestMatches(t *testing.T) {
	ev := store.LoggedEvent{ID: 1, Topic: "values", Endpoint: "ep-1", SiteID: 7}
	north := auth.Scope{Sites: []int64{7}}
	for _, c := range []struct {
		name  string
		hook  store.Webhook
		scope auth.Scope
		want  bool
	}{
		{"every topic, everything", store.Webhook{}, auth.Everything, true},
		{"its topic", store.Webhook{Topics: []string{"operation", "values"}}, north, true},
		{"another topic", store.Webhook{Topics: []string{"operation"}}, north, false},
		{"its endpoint", store.Webhook{Endpoint: "ep-1"}, north, true},
		{"another endpoint", store.Webhook{Endpoint: "ep-2"}, north, false},
		{"its site", store.Webhook{SiteID: 7}, north, true},
		{"another site", store.Webhook{SiteID: 8}, auth.Everything, false},
		{"owner outside the site", store.Webhook{}, auth.Scope{Sites: []int64{8}}, false},
		{"owner with unassigned devices only", store.Webhook{}, auth.Scope{Unassigned: true}, false},
		{"owner disabled", store.Webhook{}, auth.Scope{}, false},
	} {
		if got := matches(c.hook, c.scope, ev); got != c.want {
			t.Errorf("%s: matches = %v, want %v", c.name, got, c.want)
		}
	}
	unassigned := store.LoggedEvent{ID: 2, Topic: "values", Endpoint: "ep-9"}
	if !matches(store.Webhook{}, auth.Scope{Unassigned: true}, unassigned) || matches(store.Webhook{}, north, unassigned) {
		t.Error("an event of a device in no site goes to owners who see unassigned devices, only")
	}
}
