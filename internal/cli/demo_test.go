package cli

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/config"
)

// TestDemoMixedFleet runs the demo with its default split: a quarter of
// the devices talk DTLS-PSK with credentials the demo made, the rest plain
// CoAP, and the API shows them all online, each with its transport. The
// CoAP listeners are on all addresses, as by default.
func TestDemoMixedFleet(t *testing.T) {
	env := serverEnv(t)
	env["FLOWNEXUS_COAP_LISTEN"] = ":0"
	env["FLOWNEXUS_COAPS_LISTEN"] = ":0"
	env["FLOWNEXUS_LOG_LEVEL"] = "warn"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)}, []string{"demo", "--devices", "8"})
	}()
	intro := regexp.MustCompile(`curl -s -H "Authorization: Bearer (\S+)" (http://localhost:\d+)/api/v1/endpoints\n`)
	var token, base string
	eventually(t, 20*time.Second, "the demo's instructions", done, &out, &errb, func() bool {
		m := intro.FindStringSubmatch(out.String())
		if m != nil {
			token, base = m[1], m[2]
		}
		return m != nil
	})
	// The dashboard's URL and login come first, and the login works.
	first := regexp.MustCompile(`^Dashboard  (http://localhost:\d+)/   log in as admin / (\S+)\n`).FindStringSubmatch(out.String())
	if first == nil || first[1] != base {
		t.Fatalf("the demo's output does not start with the dashboard's URL and login:\n%s", out.String())
	}
	demoDashboardLogin(t, base, first[2])
	for _, want := range []string{
		"8 simulated LwM2M devices register with the server: 6 on CoAP [::]:",
		"2 on CoAP/DTLS [::]:",
		"/api/v1/credentials   (the DTLS devices' PSK identities, never their keys)",
		`curl -N -H "Authorization: Bearer ` + token + `" ` + base + `/api/v1/events/stream`,
		filepath.Join(env["FLOWNEXUS_DATA_DIR"], "demo"),
		"Auto-observe writes pmin=5 before observing, the devices' value interval",
		"/api/v1/firmware   (firmware image 1.1.0 is ready; coap://localhost:",
		"/fw/1.1.0.bin; coaps://localhost:",
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the demo's instructions lack %q:\n%s", want, out.String())
		}
	}
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(v) != nil {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
	}
	var online struct {
		Items []struct {
			Name      string `json:"name"`
			Transport string `json:"transport"`
		} `json:"items"`
	}
	eventually(t, 20*time.Second, "8 devices online", done, &out, &errb, func() bool {
		get("/api/v1/endpoints?online=true", &online)
		return len(online.Items) == 8
	})
	wantDTLS := []string{"urn:imei:350000000000063", "urn:imei:350000000000071"} // devices 6 and 7
	var gotDTLS []string
	for _, e := range online.Items {
		if e.Transport == "dtls" {
			gotDTLS = append(gotDTLS, e.Name)
		} else if e.Transport != "udp" {
			t.Fatalf("endpoint %+v: want transport udp or dtls", e)
		}
	}
	slices.Sort(gotDTLS)
	if !slices.Equal(gotDTLS, wantDTLS) {
		t.Fatalf("endpoints over DTLS %v, want %v", gotDTLS, wantDTLS)
	}
	// The site user, printed second, sees north's half of the fleet only.
	op := regexp.MustCompile(`\n           or as north-operator / (\S+) \(a Site User of "north"`).FindStringSubmatch(out.String())
	if op == nil {
		t.Fatalf("no site user's login printed:\n%s", out.String())
	}
	resp, err := demoLogin(t, base, "north-operator", op[1]).Get(base + "/devices")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(page), `<a href="/devices/urn`); n != 4 || !strings.Contains(string(page), "urn:imei:350000000000006") ||
		strings.Contains(string(page), wantDTLS[0]) {
		t.Fatalf("the site user's devices (%d): %s", n, page)
	}
	// The demo made their credentials: PSKs with their names as identities.
	var creds struct {
		Items []struct {
			Endpoint    string `json:"endpoint"`
			Kind        string `json:"kind"`
			PSKIdentity string `json:"psk_identity"`
		} `json:"items"`
	}
	get("/api/v1/credentials", &creds)
	if len(creds.Items) != 2 {
		t.Fatalf("credentials %+v, want 2", creds.Items)
	}
	for i, c := range creds.Items {
		if c.Endpoint != wantDTLS[i] || c.Kind != "psk" || c.PSKIdentity != c.Endpoint {
			t.Fatalf("credential %+v, want a PSK for %s with its name as identity", c, wantDTLS[i])
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exit %d:\n%s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
	if !strings.Contains(out.String(), "(0/2 over DTLS)") || !strings.Contains(out.String(), "handshakes 2") {
		t.Fatalf("final progress line:\n%s", out.String())
	}
}

// TestDemoAutoObserveAttrs: the demo's devices are observed with a pmin of
// their value interval, unless the attributes were set.
func TestDemoAutoObserveAttrs(t *testing.T) {
	for _, c := range []struct {
		env    map[string]string
		args   []string
		values time.Duration
		want   string
	}{
		{nil, nil, 5 * time.Second, "pmin=5"},
		{nil, nil, 1500 * time.Millisecond, "pmin=2"},
		{nil, nil, 10 * time.Millisecond, "pmin=1"},
		{nil, []string{"--auto-observe-attrs", "pmin=60"}, 5 * time.Second, "pmin=60"},
		{map[string]string{"FLOWNEXUS_AUTO_OBSERVE_ATTRS": ""}, nil, 5 * time.Second, ""},
	} {
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		cfg, err := config.Load(fs, c.args, config.MapEnv(c.env))
		if err != nil {
			t.Fatal(err)
		}
		demoAutoObserveAttrs(&cfg, fs, config.MapEnv(c.env), c.values)
		if cfg.AutoObserveAttrs != c.want {
			t.Errorf("env %v, args %v, values %v: attributes %q, want %q", c.env, c.args, c.values, cfg.AutoObserveAttrs, c.want)
		}
	}
}

// eventually waits until cond holds, failing when the command (done)
// ended or timeout passed.
func eventually(t *testing.T, timeout time.Duration, what string, done chan int, out, errb *syncBuffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case code := <-done:
			t.Fatalf("the command ended (exit %d) before %s:\n%s%s", code, what, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v:\n%s%s", what, timeout, out.String(), errb.String())
		}
	}
}

func TestDemoDTLSDevices(t *testing.T) {
	both := config.Config{CoAPListen: ":5683", CoAPSListen: ":5684"}
	plainOnly := config.Config{CoAPListen: ":5683"}
	dtlsOnly := config.Config{CoAPSListen: ":5684"}
	for _, c := range []struct {
		name          string
		cfg           config.Config
		devices, want int
		got           int
		err           string
	}{
		{"default quarter", both, 25, -1, 6, ""},
		{"default one device", both, 1, -1, 0, ""},
		{"given", both, 25, 25, 25, ""},
		{"none", both, 25, 0, 0, ""},
		{"default without DTLS", plainOnly, 25, -1, 0, ""},
		{"default DTLS only", dtlsOnly, 25, -1, 25, ""},
		{"too many", both, 25, 26, 0, "want 0 to --devices (25)"},
		{"DTLS off", plainOnly, 25, 3, 0, "--coaps-listen is empty"},
		{"plain off", dtlsOnly, 25, 3, 0, "every device must talk DTLS"},
		{"both off", config.Config{}, 25, -1, 0, "needs --coap-listen or --coaps-listen"},
	} {
		got, err := demoDTLSDevices(c.cfg, c.devices, c.want)
		if got != c.got || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %d, %v; want %d, %q", c.name, got, err, c.got, c.err)
		}
	}
}

// demoDashboardLogin logs in to the dashboard at base as admin with
// password, through the login form, and sees the overview.
func demoDashboardLogin(t *testing.T, base, password string) {
	t.Helper()
	demoLogin(t, base, "admin", password)
}

// demoLogin logs user in on the dashboard and returns the browser.
func demoLogin(t *testing.T, base, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("login form without a CSRF token: %s", page)
	}
	form := url.Values{"username": {user}, "password": {password}, "csrf_token": {string(m[1])}}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" || !strings.Contains(string(page), `class="user">`+user+`<`) {
		t.Fatalf("dashboard login of %s with the printed password: %d at %s: %s", user, resp.StatusCode, resp.Request.URL, page)
	}
	return c
}
