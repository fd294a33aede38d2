package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set(CSRFField, b.csrf("/profile"))
	return b.do(http.MethodPost, path, form, nil)
}

// TestAdminUsersAndMemberships: an administrator creates a user, makes it
// a Site User of north with flags, and the user then sees north's
// devices only; every change is audited.
func TestAdminUsersAndMemberships(t *testing.T) {
	e := newEnv(t, nil)
	f := newRouteFixture(t, e)
	admin := e.loggedIn(t, "admin")
	if r := admin.get("/"); !strings.Contains(r.body, `href="/admin/users"`) {
		t.Error("no Admin link for a global administrator")
	}
	if r := e.loggedIn(t, "olive").get("/"); strings.Contains(r.body, `href="/admin/users"`) {
		t.Error("Admin link shown to a site user")
	}
	r := admin.post("/admin/users", url.Values{"username": {"nina"}, "password": {password}, "again": {password}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/admin/users/") {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	page := r.header.Get("Location")
	nina, err := e.st.GetUserByName(context.Background(), "nina")
	if err != nil || nina.IsAdmin {
		t.Fatalf("nina: %+v %v", nina, err)
	}
	north := strconv.FormatInt(e.site.ID, 10)
	r = admin.post(page+"/memberships", url.Values{"role_" + north: {"user"},
		"flag_" + north: {string(auth.ViewOverview), string(auth.ViewData)}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("memberships: %d %s", r.status, r.body)
	}
	m, err := e.st.GetMembership(context.Background(), nina.ID, e.site.ID)
	if err != nil || m.Role != auth.SiteUser || !m.Flags.Has(auth.ViewData) || m.Flags.Has(auth.PerformOperations) {
		t.Fatalf("membership: %+v %v", m, err)
	}
	b := e.loggedIn(t, "nina")
	if r := b.get("/devices"); !strings.Contains(r.body, f.north) || strings.Contains(r.body, f.south) {
		t.Errorf("nina's devices: %s", r.body)
	}
	if r := b.get("/devices/" + url.PathEscape(f.south)); r.status != http.StatusNotFound {
		t.Errorf("south's device: %d", r.status)
	}
	if r := b.get("/profile"); !strings.Contains(r.body, "north") || !strings.Contains(r.body, "view_data") {
		t.Errorf("profile: %s", r.body)
	}
	// Disabling ends the user's sessions.
	if r := admin.post(page+"/disable", nil); r.status != http.StatusSeeOther {
		t.Fatalf("disable: %d", r.status)
	}
	if r := b.get("/devices"); r.status != http.StatusSeeOther {
		t.Errorf("disabled user's page: %d", r.status)
	}
	for _, a := range []string{"user.create", "membership.set", "user.disable"} {
		if es := e.audits(t, a); len(es) != 1 || es[0].Actor != "admin" || es[0].RemoteAddr == "" {
			t.Errorf("audit %s: %+v", a, es)
		}
	}
}

// TestAdminAssign: a Site Admin of north moves devices out of north and
// into it, never devices of another site nor into a site it does not
// manage; a global administrator moves a whole site.
func TestAdminAssign(t *testing.T) {
	e := newEnv(t, nil)
	f := newRouteFixture(t, e)
	ctx := context.Background()
	siteOf := func(name string) int64 {
		ep, err := e.st.GetEndpoint(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ep.SiteID
	}
	sa := e.member(t, "sam", e.site.ID, auth.SiteAdmin, 0)
	if r := sa.get("/"); !strings.Contains(r.body, `href="/admin/devices"`) || strings.Contains(r.body, `href="/admin/users"`) {
		t.Error("a Site Admin's navigation: want the device assignment link, not the administration")
	}
	south := strconv.FormatInt(f.southSite.ID, 10)
	north := strconv.FormatInt(e.site.ID, 10)
	if r := sa.post("/admin/devices/assign", url.Values{"mode": {"names"}, "names": {f.north}, "to": {south}}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("into a site not managed: %d", r.status)
	}
	r := sa.post("/admin/devices/assign", url.Values{"mode": {"names"}, "names": {f.north + "\n" + f.south}, "to": {"none"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/devices?moved=1" {
		t.Fatalf("out of north: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if siteOf(f.north) != 0 || siteOf(f.south) != f.southSite.ID {
		t.Errorf("after moving out: north device in %d, south device in %d", siteOf(f.north), siteOf(f.south))
	}
	admin := e.loggedIn(t, "admin")
	if r := admin.post("/admin/devices/assign", url.Values{"mode": {"prefix"}, "prefix": {"urn:dev:"}, "to": {north}}); r.status != http.StatusSeeOther {
		t.Fatalf("admin by prefix: %d", r.status)
	}
	if r := admin.post("/admin/devices/assign", url.Values{"mode": {"site"}, "from": {north}, "to": {south}}); r.header.Get("Location") != "/admin/devices?moved=2" {
		t.Fatalf("admin transfers north: %d %q", r.status, r.header.Get("Location"))
	}
	if siteOf(f.north) != f.southSite.ID {
		t.Errorf("transfer: %d", siteOf(f.north))
	}
	if es := e.audits(t, ActionAssign); len(es) != 3 {
		t.Errorf("assign audits: %+v", es)
	}
}

// TestAdminTokens: a token made on the page is shown once and works as
// its user's; revoking removes it.
func TestAdminTokens(t *testing.T) {
	e := newEnv(t, nil)
	admin := e.loggedIn(t, "admin")
	if r := admin.post("/admin/tokens", url.Values{"user": {"olive"}, "name": {"x"}, "scope": {"all"}}); r.status != http.StatusUnprocessableEntity ||
		!strings.Contains(r.body, "The scope is read or read-write.") {
		t.Errorf("a bad scope: %d", r.status)
	}
	r := admin.post("/admin/tokens", url.Values{"user": {"olive"}, "name": {"script"}, "days": {"30"}, "scope": {"read"}})
	if r.status != http.StatusCreated || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create token: %d %q", r.status, r.header.Get("Cache-Control"))
	}
	i := strings.Index(r.body, auth.TokenPrefix)
	if i < 0 {
		t.Fatalf("no token shown: %s", r.body)
	}
	tok := r.body[i : i+len(auth.TokenPrefix)+43]
	got, u, err := e.st.GetAPITokenByHash(context.Background(), auth.HashToken(tok))
	if err != nil || u.Username != "olive" || got.ExpiresAt.IsZero() || !got.ReadOnly() {
		t.Fatalf("token: %+v %+v %v", got, u, err)
	}
	if r := admin.get("/admin/tokens"); strings.Contains(r.body, tok) || !strings.Contains(r.body, got.Prefix) {
		t.Error("the token list shows the token, or not its prefix")
	}
	if r := admin.post("/admin/tokens/"+strconv.FormatInt(got.ID, 10)+"/revoke", nil); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", r.status)
	}
	if _, _, err := e.st.GetAPITokenByHash(context.Background(), auth.HashToken(tok)); err == nil {
		t.Error("revoked token still stored")
	}
	if r := admin.get("/admin/audit?action=token.create"); !strings.Contains(r.body, "token.create") || strings.Contains(r.body, "token.revoke") {
		t.Errorf("audit filtered by action: %s", r.body)
	}
}

// TestAdminCredentials: a PSK added on the page is listed by identity,
// never with its key.
func TestAdminCredentials(t *testing.T) {
	e := newEnv(t, withCredentials(t))
	admin := e.loggedIn(t, "admin")
	const key = "000102030405060708090a0b0c0d0e0f"
	r := admin.post("/admin/credentials", url.Values{"endpoint": {"urn:dev:x"}, "identity": {"dev-x"}, "key": {key}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	r = admin.get("/admin/credentials")
	if !strings.Contains(r.body, "dev-x") || strings.Contains(r.body, key) {
		t.Errorf("list: %s", r.body)
	}
	if r := admin.post("/admin/credentials/urn:dev:x/delete", nil); r.status != http.StatusSeeOther {
		t.Errorf("remove: %d", r.status)
	}
	if es := e.audits(t, "credential.add"); len(es) != 1 || es[0].Actor != "admin" {
		t.Errorf("audit: %+v", es)
	}
}

// TestSiteSwitcher: the switcher narrows the lists to one site, falls
// back to all for a site the user is no member of, and offers
// unassigned devices to global administrators only.
func TestSiteSwitcher(t *testing.T) {
	e := newEnv(t, nil)
	f := newRouteFixture(t, e)
	ctx := context.Background()
	if err := e.st.SetMembership(ctx, e.users["olive"].ID, f.southSite.ID, auth.SiteUser, auth.FlagOf(auth.ViewOverview)); err != nil {
		t.Fatal(err)
	}
	b := e.loggedIn(t, "olive")
	if r := b.get("/devices"); !strings.Contains(r.body, f.north) || !strings.Contains(r.body, f.south) ||
		strings.Contains(r.body, "Unassigned devices") {
		t.Fatalf("all sites: %s", r.body)
	}
	r := b.post("/site", url.Values{"site": {strconv.FormatInt(f.southSite.ID, 10)}, "next": {"/devices"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/devices" {
		t.Fatalf("switch: %d %q", r.status, r.header.Get("Location"))
	}
	var c *http.Cookie
	for _, x := range (&http.Response{Header: r.header}).Cookies() {
		if x.Name == SiteCookie {
			c = x
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("site cookie %+v", c)
	}
	if r := b.get("/devices"); strings.Contains(r.body, f.north) || !strings.Contains(r.body, f.south) {
		t.Errorf("south only: %s", r.body)
	}
	// A site olive is no member of: all her sites.
	other, err := e.st.CreateSite(ctx, "west")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.srv.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SiteCookie, Value: strconv.FormatInt(other.ID, 10), Path: "/"}})
	if r := b.get("/devices"); !strings.Contains(r.body, f.north) || !strings.Contains(r.body, f.south) {
		t.Errorf("unknown site falls back to all: %s", r.body)
	}
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: SiteCookie, Value: viewUnassigned, Path: "/"}})
	if r := b.get("/devices"); !strings.Contains(r.body, f.north) {
		t.Errorf("unassigned for a site user falls back to all: %s", r.body)
	}
	// The admin sees unassigned devices when it chooses them.
	if _, err := e.st.ProvisionEndpoints(ctx, []string{"urn:dev:loose"}, store.AuditEntry{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	admin := e.loggedIn(t, "admin")
	admin.post("/site", url.Values{"site": {viewUnassigned}})
	if r := admin.get("/devices"); !strings.Contains(r.body, "urn:dev:loose") || strings.Contains(r.body, f.north) ||
		!strings.Contains(r.body, `value="unassigned" selected`) {
		t.Errorf("admin, unassigned: %s", r.body)
	}
}

// TestProfilePassword: changing one's password ends the other sessions
// and keeps this browser logged in.
func TestProfilePassword(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	other := e.loggedIn(t, "olive")
	r := b.post("/profile/password", url.Values{"current": {password}, "new": {"short"}, "again": {"short"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "too short") {
		t.Fatalf("short: %d", r.status)
	}
	r = b.post("/profile/password", url.Values{"current": {password}, "new": {"a new password"}, "again": {"another one!"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "differ") {
		t.Fatalf("differ: %d", r.status)
	}
	r = b.post("/profile/password", url.Values{"current": {password}, "new": {"a new password"}, "again": {"a new password"}})
	if r.status != http.StatusOK || !strings.Contains(r.body, "Password changed") {
		t.Fatalf("change: %d %s", r.status, r.body)
	}
	if r := b.get("/devices"); r.status != http.StatusOK {
		t.Errorf("this browser after the change: %d", r.status)
	}
	if r := other.get("/devices"); r.status != http.StatusSeeOther {
		t.Errorf("other session after the change: %d", r.status)
	}
	if r := e.browser(t).login("olive", "a new password", ""); r.status != http.StatusSeeOther {
		t.Errorf("login with the new password: %d", r.status)
	}
}
