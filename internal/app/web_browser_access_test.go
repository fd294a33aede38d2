package app

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flownexus/flownexus/internal/auth"
)

// TestSiteUserInBrowser: a Site User of north and east logs in, sees the
// devices of its sites and not south's; south's device page is 404; the
// site switcher narrows the list to north; the user logs out.
func TestSiteUserInBrowser(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 3, nil)
	eps := []string{f.Device(0).Endpoint(), f.Device(1).Endpoint(), f.Device(2).Endpoint()}
	for _, ep := range eps {
		eventually(t, 10*time.Second, ep+" online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+url.PathEscape(ep), nil, &e) == 200 && e.Online
		})
	}
	north, south, east := s.site(t, "north"), s.site(t, "south"), s.site(t, "east")
	s.assign(t, eps[0], north)
	s.assign(t, eps[1], south)
	s.assign(t, eps[2], east)
	ctx := context.Background()
	hash, _ := auth.HashPassword("nora-password", auth.Params{Memory: 1024, Time: 1, Threads: 1})
	nora, err := s.Store.CreateUser(ctx, "nora", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	flags, _ := auth.FlagsOf(auth.ViewOverview, auth.ViewData)
	for _, site := range []int64{north.ID, east.ID} {
		if err := s.Store.SetMembership(ctx, nora.ID, site, auth.SiteUser, flags); err != nil {
			t.Fatal(err)
		}
	}

	b := startBrowser(t, s)
	b.step("open /devices", chromedp.Navigate(s.base+"/devices"), chromedp.WaitVisible(chromedp.ID("username")))
	b.step("log in",
		chromedp.SendKeys(chromedp.ID("username"), "nora"),
		chromedp.SendKeys(chromedp.ID("password"), "nora-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("devices")))
	devices := b.get("devices table", chromedp.Text(chromedp.ID("devices")))
	if !strings.Contains(devices, eps[0]) || !strings.Contains(devices, eps[2]) || strings.Contains(devices, eps[1]) {
		t.Errorf("the site user's devices: %q, want %s and %s, not %s", devices, eps[0], eps[2], eps[1])
	}
	if nav := b.get("nav", chromedp.Text(chromedp.CSS("header.top"))); strings.Contains(nav, "Admin") {
		t.Errorf("a site user sees the Admin link: %q", nav)
	}
	b.shot("access-devices")
	b.check("devices")

	b.step("open south's device", chromedp.Navigate(s.base+"/devices/"+url.PathEscape(eps[1])), chromedp.WaitVisible(chromedp.CSS("section.problem")))
	if msg := b.get("problem", chromedp.Text(chromedp.CSS("section.problem h1"))); !strings.HasPrefix(msg, "404") {
		t.Errorf("south's device page: %q, want 404", msg)
	}
	b.shot("access-404")
	b.check("south's device", "HTTP Not Found", "404")

	b.step("choose north in the site switcher",
		chromedp.Navigate(s.base+"/devices"), chromedp.WaitVisible(chromedp.ID("site-switcher")),
		chromedp.SetValue(chromedp.ID("site-switcher"), strconv.FormatInt(north.ID, 10)),
		chromedp.Click(chromedp.CSS(".site-switcher button")),
		chromedp.WaitVisible(chromedp.ID("devices")))
	devices = b.get("devices table", chromedp.Text(chromedp.ID("devices")))
	if !strings.Contains(devices, eps[0]) || strings.Contains(devices, eps[2]) || strings.Contains(devices, eps[1]) {
		t.Errorf("north's devices: %q, want %s only", devices, eps[0])
	}
	if sel := b.get("switcher", chromedp.Value(chromedp.ID("site-switcher"))); sel != strconv.FormatInt(north.ID, 10) {
		t.Errorf("the switcher shows %q, want north (%d)", sel, north.ID)
	}
	b.shot("access-switched")
	b.check("switched to north")

	b.step("open the profile", chromedp.Click(chromedp.CSS(`a.user`)), chromedp.WaitVisible(chromedp.ID("memberships")))
	if ms := b.get("memberships", chromedp.Text(chromedp.ID("memberships"))); !strings.Contains(ms, "north") || !strings.Contains(ms, "east") {
		t.Errorf("profile memberships: %q", ms)
	}
	b.shot("access-profile")
	b.check("profile")

	b.step("log out", chromedp.Click(chromedp.CSS(".who button")), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := b.get("location", chromedp.Location()); loc != s.base+"/login" {
		t.Errorf("after logout at %s", loc)
	}
	b.check("logout")
	t.Logf("screenshots in %s", b.shots)
}

// TestAdminPagesInBrowser: a global administrator opens every
// administration page without a console error or failed load, and makes
// a site.
func TestAdminPagesInBrowser(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	b := startBrowser(t, s)
	b.step("log in", chromedp.Navigate(s.base+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "admin-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("count-total")))
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	b.step("open Admin", chromedp.Click(chromedp.CSS(`nav a[href="/admin/users"]`)), chromedp.WaitVisible(chromedp.ID("users")))
	b.shot("admin-users")
	b.check("admin users")
	b.step("make a site", chromedp.Navigate(s.base+"/admin/sites"), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "harbour"),
		chromedp.Submit(chromedp.ID("name")),
		chromedp.WaitVisible(chromedp.ID("sites")))
	if sites := b.get("sites", chromedp.Text(chromedp.ID("sites"))); !strings.Contains(sites, "harbour") {
		t.Errorf("sites: %q", sites)
	}
	b.shot("admin-sites")
	b.check("admin sites")
	for _, p := range []string{"/admin/devices", "/admin/tokens", "/admin/audit", "/admin/credentials", "/admin/users/1"} {
		b.step("open "+p, chromedp.Navigate(s.base+p), chromedp.WaitVisible(chromedp.CSS("nav.admin-nav")))
		b.shot("admin-" + strings.ReplaceAll(strings.TrimPrefix(p, "/admin/"), "/", "-"))
		b.check(p)
	}
}
