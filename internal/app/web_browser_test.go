package app

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds the Chromium binary of the browser tests: Debian's
// /usr/bin/chromium, or one on PATH.
func chromiumPath() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// pageWatch collects what must not happen on a dashboard page: console
// errors, uncaught exceptions, failed or erroring requests, log entries
// of level error (CSP violations among them), and requests to any origin
// but the server's.
type pageWatch struct {
	origin string
	mu     sync.Mutex
	issues []string // guarded by mu
}

func (p *pageWatch) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issues = append(p.issues, s)
}

func (p *pageWatch) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.issues
	p.issues = nil
	return out
}

func (p *pageWatch) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			p.add("console " + string(ev.Type) + ": " + strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		p.add("exception: " + ev.ExceptionDetails.Text)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			p.add("log: " + ev.Entry.Text + " " + ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		u, err := url.Parse(ev.Request.URL)
		if err != nil || (u.Scheme != "data" && u.Scheme+"://"+u.Host != p.origin) {
			p.add("request to another origin: " + ev.Request.URL)
		}
	case *network.EventLoadingFailed:
		p.add("failed load: " + ev.ErrorText)
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			p.add("HTTP " + ev.Response.StatusText + ": " + ev.Response.URL)
		}
	}
}

// TestDashboardInBrowser drives the real dashboard of a running App in
// headless Chromium: log in through the form, see the simulated devices
// listed, open one, see the overview, log out. Every page must load with
// no console error, no failed asset and no request to another origin.
// Screenshots go to $FLOWNEXUS_SCREENSHOTS (default: a temporary
// directory).
func TestDashboardInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no Chromium binary (/usr/bin/chromium): install Debian's chromium to run the browser test")
	}
	shots := os.Getenv("FLOWNEXUS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 3, nil)
	eps := []string{f.Device(0).Endpoint(), f.Device(1).Endpoint(), f.Device(2).Endpoint()}
	for _, ep := range eps {
		eventually(t, 10*time.Second, ep+" online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+url.PathEscape(ep), nil, &e) == 200 && e.Online
		})
	}

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	watch := &pageWatch{origin: s.base}
	// The first call starts the browser, which lives as long as ctx: no
	// timeout on it; each step below has its own.
	if err := chromedp.Listen(ctx, watch.listen); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := func(page string) {
		t.Helper()
		for _, issue := range watch.take() {
			t.Errorf("%s: %s", page, issue)
		}
	}

	// An anonymous visit to the devices page lands on the login form.
	step("open /devices", chromedp.Navigate(s.base+"/devices"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := get("location", chromedp.Location()); loc != s.base+"/login?next=%2Fdevices" {
		t.Errorf("anonymous /devices went to %s", loc)
	}
	shot("login")
	check("login")

	step("log in",
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "admin-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("devices")))
	if loc := get("location", chromedp.Location()); loc != s.base+"/devices" {
		t.Errorf("after login at %s, want the devices page", loc)
	}
	devices := get("devices table", chromedp.Text(chromedp.ID("devices")))
	for _, ep := range eps {
		if !strings.Contains(devices, ep) {
			t.Errorf("devices page lacks %s: %q", ep, devices)
		}
	}
	if strings.Count(devices, "online") < len(eps) {
		t.Errorf("devices page shows fewer than %d online: %q", len(eps), devices)
	}
	shot("devices")
	check("devices")

	step("open a device", chromedp.Click(chromedp.CSS(`a[href="/devices/`+eps[0]+`"]`)),
		chromedp.WaitVisible(chromedp.ID("registration")))
	facts := get("registration", chromedp.Text(chromedp.ID("registration")))
	if !strings.Contains(facts, "127.0.0.1:") || !strings.Contains(facts, "</3/0>") {
		t.Errorf("device page facts: %q", facts)
	}
	shot("device")
	check("device")

	step("open the overview", chromedp.Click(chromedp.CSS(`nav a[href="/"]`)), chromedp.WaitVisible(chromedp.ID("count-total")))
	if total := get("total", chromedp.Text(chromedp.ID("count-total"))); total != "3" {
		t.Errorf("overview total %q, want 3", total)
	}
	shot("overview")
	check("overview")

	step("log out", chromedp.Click(chromedp.CSS(".who button")), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := get("location", chromedp.Location()); loc != s.base+"/login" {
		t.Errorf("after logout at %s", loc)
	}
	check("logout")
	// The session is gone: the overview sends the browser back to login.
	step("open / after logout", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := get("location", chromedp.Location()); !strings.HasPrefix(loc, s.base+"/login?next=") {
		t.Errorf("after logout / went to %s", loc)
	}
	check("after logout")
	t.Logf("screenshots in %s", shots)
}
