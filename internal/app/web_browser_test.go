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
		// A request the browser cancelled (a live page's stream or
		// refresh when the test navigates away) is no defect of the page.
		if !ev.Canceled {
			p.add("failed load: " + ev.ErrorText)
		}
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			p.add("HTTP " + ev.Response.StatusText + ": " + ev.Response.URL)
		}
	}
}

// chromeBrowser is a headless Chromium on a running App's dashboard for
// the browser tests: every page is watched (pageWatch), and each method
// fails the test on error.
type chromeBrowser struct {
	t     *testing.T
	ctx   context.Context
	watch *pageWatch
	shots string // where screenshots go: $FLOWNEXUS_SCREENSHOTS or a temporary directory
}

// startBrowser starts Chromium for s's dashboard, or skips the test
// when there is none; it stops with the test.
func startBrowser(t *testing.T, s *server) *chromeBrowser {
	t.Helper()
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
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	b := &chromeBrowser{t: t, ctx: ctx, watch: &pageWatch{origin: s.base}, shots: shots}
	// The first call starts the browser, which lives as long as ctx: no
	// timeout on it; each step has its own.
	if err := chromedp.Listen(ctx, b.watch.listen); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return b
}

func (b *chromeBrowser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *chromeBrowser) get(what string, a chromedp.Action[string]) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval runs a JavaScript expression (a promise is awaited) and returns
// its string result.
func (b *chromeBrowser) eval(what, js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return out
}

// until evaluates the JavaScript condition every 100 ms until it is true;
// on timeout it logs the expressions of show.
func (b *chromeBrowser) until(what, js string, d time.Duration, show ...string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			for _, s := range show {
				b.t.Logf("%s: %s", s, b.eval("show", s))
			}
			b.t.Fatalf("timed out after %v waiting for %s (%v)", d, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as name.png.
func (b *chromeBrowser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// check fails for every issue the pages had since the last check, except
// those containing one of expected.
func (b *chromeBrowser) check(page string, expected ...string) {
	b.t.Helper()
	for _, issue := range b.watch.take() {
		ok := false
		for _, e := range expected {
			ok = ok || strings.Contains(issue, e)
		}
		if !ok {
			b.t.Errorf("%s: %s", page, issue)
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
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 3, nil)
	eps := []string{f.Device(0).Endpoint(), f.Device(1).Endpoint(), f.Device(2).Endpoint()}
	for _, ep := range eps {
		eventually(t, 10*time.Second, ep+" online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+url.PathEscape(ep), nil, &e) == 200 && e.Online
		})
	}

	b := startBrowser(t, s)
	step, get, shot, check := b.step, b.get, b.shot, b.check

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
	// The live stream refreshes the page's parts once it opens: read them after.
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
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
	t.Logf("screenshots in %s", b.shots)
}
