package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// routeScenario is how TestRouteScenarios exercises one route. Paths and
// form values may hold placeholders, replaced before each request:
// {dev} a device (of site north, or of site south for the other-site
// check), {user} the id of a user meant to be acted on, {site} the id of
// site south, {token} the id of an API token of that user; {update},
// {campaign} and {operation} a firmware update, a campaign and a queued
// operation of the {dev} device's site.
type routeScenario struct {
	// perm is the permission the route must be registered with.
	perm auth.Permission
	// path is a request path for the route.
	path string
	// device: the route acts on the device {dev}; one of another site
	// must be 404 for a user who may use the route in its own sites.
	device bool
	// form is a well-formed body of a POST (the CSRF token is added).
	form url.Values
	// bad is a body the route refuses with the form again (400 or 422),
	// showing badMsg; nil when the route takes no form input to judge.
	bad    url.Values
	badMsg string
	// anonForm: the route takes its form from a browser without a
	// session (the login form).
	anonForm bool
	// stream: the route answers a stream that does not end by itself (the
	// live events): a user who may use it gets 200 and the stream is then
	// dropped.
	stream bool
}

// routeScenarios holds a scenario for every route of the dashboard, keyed
// "METHOD /pattern" as Web.Routes gives them; each test file adds those
// of its routes in an init function.
var routeScenarios = map[string]routeScenario{}

func init() {
	for k, sc := range map[string]routeScenario{
		"GET /static/":            {perm: auth.Public, path: "/static/none.css"},
		"GET /login":              {perm: auth.Public, path: "/login"},
		"POST /login":             {perm: auth.Public, path: "/login", anonForm: true, bad: url.Values{"username": {""}}, badMsg: "Enter a username"},
		"POST /logout":            {perm: auth.Public, path: "/logout"},
		"GET /{$}":                {perm: auth.ViewOverview, path: "/"},
		"GET /devices":            {perm: auth.ViewOverview, path: "/devices"},
		"GET /devices/{endpoint}": {perm: auth.ViewData, path: "/devices/{dev}", device: true},

		"GET /profile":           {perm: auth.Public, path: "/profile"},
		"POST /profile/password": {perm: auth.Public, path: "/profile/password", bad: url.Values{"current": {"wrong"}}, badMsg: "current password is wrong"},
		"POST /site":             {perm: auth.ViewOverview, path: "/site", form: url.Values{"site": {""}, "next": {"/devices"}}},

		"GET /admin/users":      {perm: auth.ManageUsers, path: "/admin/users"},
		"POST /admin/users":     {perm: auth.ManageUsers, path: "/admin/users", bad: url.Values{"username": {"bad name!"}, "password": {"long enough pw"}}, badMsg: "use letters, digits"},
		"GET /admin/users/{id}": {perm: auth.ManageUsers, path: "/admin/users/{user}"},
		"POST /admin/users/{id}/password": {perm: auth.ManageUsers, path: "/admin/users/{user}/password",
			bad: url.Values{"password": {"short"}}, badMsg: "at least 8 characters"},
		"POST /admin/users/{id}/disable": {perm: auth.ManageUsers, path: "/admin/users/{user}/disable"},
		"POST /admin/users/{id}/enable":  {perm: auth.ManageUsers, path: "/admin/users/{user}/enable"},
		"POST /admin/users/{id}/delete": {perm: auth.ManageUsers, path: "/admin/users/{user}/delete",
			bad: url.Values{"confirm": {"someone else"}}, badMsg: "Type the username"},
		"POST /admin/users/{id}/memberships": {perm: auth.ManageUsers, path: "/admin/users/{user}/memberships",
			bad: url.Values{"role_{site}": {"owner"}}, badMsg: "unknown role"},
		"GET /admin/sites":  {perm: auth.ManageUsers, path: "/admin/sites"},
		"POST /admin/sites": {perm: auth.ManageUsers, path: "/admin/sites", bad: url.Values{"name": {""}}, badMsg: "1 to 64 characters"},
		"POST /admin/sites/{id}/rename": {perm: auth.ManageUsers, path: "/admin/sites/{site}/rename",
			bad: url.Values{"name": {"no spaces allowed"}}, badMsg: "use letters"},
		"POST /admin/sites/{id}/delete": {perm: auth.ManageUsers, path: "/admin/sites/{site}/delete",
			bad: url.Values{"confirm": {"north"}}, badMsg: "to confirm its deletion"},
		"GET /admin/devices": {perm: auth.ManageDevices, path: "/admin/devices"},
		"POST /admin/devices/assign": {perm: auth.ManageDevices, path: "/admin/devices/assign",
			bad: url.Values{"mode": {"names"}, "names": {""}, "to": {"none"}}, badMsg: "List the devices"},
		"GET /admin/tokens": {perm: auth.ManageUsers, path: "/admin/tokens"},
		"POST /admin/tokens": {perm: auth.ManageUsers, path: "/admin/tokens",
			bad: url.Values{"user": {"nobody"}, "name": {"x"}}, badMsg: "Choose the token"},
		"POST /admin/tokens/{id}/revoke": {perm: auth.ManageUsers, path: "/admin/tokens/{token}/revoke"},
		"GET /admin/audit":               {perm: auth.ManageUsers, path: "/admin/audit"},
		"GET /admin/credentials":         {perm: auth.ManageCredentials, path: "/admin/credentials"},
		"POST /admin/credentials": {perm: auth.ManageCredentials, path: "/admin/credentials",
			bad: url.Values{"endpoint": {"urn:x"}, "identity": {"id"}, "key": {"not hex"}}, badMsg: "not hex"},
		"POST /admin/credentials/{endpoint}/delete": {perm: auth.ManageCredentials, path: "/admin/credentials/{dev}/delete"},
	} {
		routeScenarios[k] = sc
	}
}

// withCredentials gives the dashboard a credential service.
func withCredentials(t *testing.T) func(*Config) {
	return func(c *Config) {
		var err error
		if c.Credentials, err = credential.New(c.Store, "a test secret key of some length"); err != nil {
			t.Fatal(err)
		}
	}
}

// routeFixture is what the scenarios act on.
type routeFixture struct {
	north, south string // a device of each site
	user         store.User
	southSite    store.Site
	token        int64
	// Of each site's device (by its name): a firmware update, a campaign
	// (over another device of the site) and a queued operation.
	update, campaign, operation map[string]int64
}

func newRouteFixture(t *testing.T, e *env) routeFixture {
	t.Helper()
	ctx := context.Background()
	f := routeFixture{north: "urn:dev:north-1", south: "urn:dev:south-1"}
	var err error
	if f.southSite, err = e.st.CreateSite(ctx, "south"); err != nil {
		t.Fatal(err)
	}
	f.update, f.campaign, f.operation = map[string]int64{}, map[string]int64{}, map[string]int64{}
	fleet := e.w.cfg.Updates != nil
	if fleet {
		if _, err := e.w.cfg.Firmware.Upload(ctx, store.Actor{Name: "t"}, "9.0", strings.NewReader("image")); err != nil {
			t.Fatal(err)
		}
	}
	for name, site := range map[string]int64{f.north: e.site.ID, f.south: f.southSite.ID} {
		var eps []store.Endpoint
		names := []string{name}
		if fleet {
			names = append(names, name+"-c") // a campaign's
		}
		for _, n := range names {
			ep, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: n, RegistrationID: "r-" + n,
				Address: "192.0.2.1:5683", Lifetime: 300e9, Binding: "U", LwM2MVersion: "1.1", ObjectLinks: "</1/0>,</3/0>,</5/0>"})
			if err == nil {
				err = e.st.SetEndpointSite(ctx, ep.ID, site)
			}
			if err != nil {
				t.Fatal(err)
			}
			eps = append(eps, ep)
		}
		if !fleet {
			continue
		}
		up, err := e.w.cfg.Updates.Start(ctx, name, "9.0", fwupdate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.w.cfg.Updates.CreateCampaign(ctx, fwupdate.CampaignRequest{Name: name, Version: "9.0", Endpoints: []string{name + "-c"}})
		if err != nil {
			t.Fatal(err)
		}
		op, err := e.st.CreateOperation(ctx, store.Operation{EndpointID: eps[0].ID, Kind: "read",
			Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 0)}, QueuedBy: e.users["admin"].ID})
		if err != nil {
			t.Fatal(err)
		}
		f.update[name], f.campaign[name], f.operation[name] = up.ID, c.ID, op.ID
	}
	hash, _ := auth.HashPassword(password, auth.Params{Memory: 1024, Time: 1, Threads: 1})
	if f.user, err = e.st.CreateUser(ctx, "victor", hash, false); err != nil {
		t.Fatal(err)
	}
	_, th, prefix := auth.NewToken()
	tok, err := e.st.CreateAPIToken(ctx, f.user.ID, "t", th, prefix, t0.Add(48*3600e9))
	if err != nil {
		t.Fatal(err)
	}
	f.token = tok.ID
	return f
}

// member creates a user with role and flags in site and returns it logged in.
func (e *env) member(t *testing.T, name string, site int64, role auth.SiteRole, flags auth.Flags) *browser {
	t.Helper()
	hash, _ := auth.HashPassword(password, auth.Params{Memory: 1024, Time: 1, Threads: 1})
	u, err := e.st.CreateUser(context.Background(), name, hash, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetMembership(context.Background(), u.ID, site, role, flags); err != nil {
		t.Fatal(err)
	}
	return e.loggedIn(t, name)
}

// TestRouteScenarios walks every route of the dashboard and fails for one
// without a scenario. For each: the registered permission; anonymous,
// a GET is sent to the login form (303) and a POST refused (403: no
// session, no CSRF token); a user lacking the route's permission gets
// 403; a device of another site is 404 for a user who may use the route
// in its own site; a POST without, or with a wrong, CSRF token is 403;
// bad form input answers the form again (400 or 422) with the message;
// a GET by a user who may use the route is 200.
func TestRouteScenarios(t *testing.T) {
	e := newEnv(t, func(c *Config) { withCredentials(t)(c); withFleet(t)(c) })
	f := newRouteFixture(t, e)
	admin := e.loggedIn(t, "admin")
	// norma may do everything in north; lacking[p] everything there but p.
	norma := e.member(t, "norma", e.site.ID, auth.SiteAdmin, 0)
	lacking := map[auth.Permission]*browser{}
	for _, p := range auth.SitePermissions() {
		lacking[p] = e.member(t, "no-"+string(p), e.site.ID, auth.SiteUser, auth.AllFlags&^auth.FlagOf(p))
	}
	olive := e.loggedIn(t, "olive")
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	fill := func(s, dev string) string {
		return strings.NewReplacer("{dev}", url.PathEscape(dev), "{user}", id(f.user.ID),
			"{site}", id(f.southSite.ID), "{token}", id(f.token), "{update}", id(f.update[dev]),
			"{campaign}", id(f.campaign[dev]), "{operation}", id(f.operation[dev])).Replace(s)
	}
	// fillForm fills v for the device dev (f.north when "").
	fillForm := func(v url.Values, tok string, dev ...string) url.Values {
		d := f.north
		if len(dev) > 0 {
			d = dev[0]
		}
		out := url.Values{}
		for k, vs := range v {
			for _, x := range vs {
				out.Add(fill(k, d), fill(x, d))
			}
		}
		if tok != "" {
			out.Set(CSRFField, tok)
		}
		return out
	}

	seen := map[string]bool{}
	for _, r := range e.w.Routes() {
		key := r.Method + " " + r.Path
		seen[key] = true
		sc, ok := routeScenarios[key]
		if !ok {
			t.Errorf("route %s has no scenario in routeScenarios: add one", key)
			continue
		}
		t.Run(key, func(t *testing.T) {
			if r.Permission != sc.perm {
				t.Errorf("permission %s, want %s", r.Permission, sc.perm)
			}
			path := fill(sc.path, f.north)
			post := r.Method == http.MethodPost
			// Anonymous.
			anon := e.browser(t)
			if !post {
				got := anon.get(path)
				if sc.perm != auth.Public || path == "/profile" {
					if got.status != http.StatusSeeOther || !strings.HasPrefix(got.header.Get("Location"), "/login?next=") {
						t.Errorf("anonymous GET %s: %d %q, want 303 to the login form", path, got.status, got.header.Get("Location"))
					}
				} else if got.status == http.StatusSeeOther {
					t.Errorf("anonymous GET %s of a public route: sent to %q", path, got.header.Get("Location"))
				}
			} else if got := anon.do(http.MethodPost, path, fillForm(sc.form, ""), nil); got.status != http.StatusForbidden {
				t.Errorf("anonymous POST %s: %d, want 403", path, got.status)
			}
			// The user who may use the route, in north.
			who := admin
			if auth.FlagOf(sc.perm) != 0 {
				who = norma
			}
			// A user lacking the permission.
			if sc.perm != auth.Public {
				lack := olive // a Site User: no global permission
				if auth.FlagOf(sc.perm) != 0 {
					lack = lacking[sc.perm]
				}
				var got response
				if post {
					got = lack.do(http.MethodPost, path, fillForm(sc.form, lack.csrf("/profile")), nil)
				} else {
					got = lack.get(path)
				}
				if got.status != http.StatusForbidden {
					t.Errorf("%s by a user lacking %s: %d, want 403", path, sc.perm, got.status)
				}
			}
			// A device of another site.
			if sc.device {
				other := fill(sc.path, f.south)
				var got response
				if post {
					got = who.do(http.MethodPost, other, fillForm(sc.form, who.csrf("/profile"), f.south), nil)
				} else {
					got = who.get(other)
				}
				if got.status != http.StatusNotFound {
					t.Errorf("%s of another site's device: %d, want 404", other, got.status)
				}
			}
			if !post {
				// The user who may use it gets the page.
				if sc.perm != auth.Public && sc.stream {
					if status := who.streamStatus(path); status != http.StatusOK {
						t.Errorf("GET %s by a user who may: %d", path, status)
					}
				} else if sc.perm != auth.Public {
					if got := who.get(path); got.status != http.StatusOK {
						t.Errorf("GET %s by a user who may: %d", path, got.status)
					}
				}
				return
			}
			// CSRF: none, and a wrong one.
			if sc.anonForm {
				who = e.browser(t)
			}
			for _, tok := range []string{"", "wrong-token-wrong-token-wrong-token"} {
				if got := who.do(http.MethodPost, path, fillForm(sc.form, tok), nil); got.status != http.StatusForbidden {
					t.Errorf("POST %s with CSRF token %q: %d, want 403", path, tok, got.status)
				}
			}
			// Bad input: the form again, with the message.
			if sc.bad != nil {
				page := "/profile"
				if sc.anonForm {
					page = "/login"
				}
				got := who.do(http.MethodPost, path, fillForm(sc.bad, who.csrf(page)), nil)
				if got.status != http.StatusBadRequest && got.status != http.StatusUnprocessableEntity ||
					!strings.Contains(got.body, sc.badMsg) || !strings.Contains(got.body, "<form") {
					t.Errorf("POST %s with bad input: %d, want 400 or 422 with %q and the form: %s", path, got.status, sc.badMsg, got.body)
				}
			}
		})
	}
	for key := range routeScenarios {
		if !seen[key] {
			t.Errorf("scenario %s: no such route", key)
		}
	}
}
