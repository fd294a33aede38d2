package web

import (
	"context"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	w     *Web
	st    *store.Store
	srv   *httptest.Server
	clk   *clock
	users map[string]store.User
	site  store.Site // north: olive's
}

const password = "correct horse battery"

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: t0}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "flownexus.db"), store.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Now: clk.Now, Debug: true}
	if mod != nil {
		mod(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{w: w, st: st, clk: clk, users: map[string]store.User{}}
	hash, err := auth.HashPassword(password, auth.Params{Memory: 1024, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name  string
		admin bool
	}{{"admin", true}, {"olive", false}, {"dora", false}} {
		if e.users[u.name], err = st.CreateUser(ctx, u.name, hash, u.admin); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DisableUser(ctx, e.users["dora"].ID, t0); err != nil {
		t.Fatal(err)
	}
	// olive is a Site User of site north who may see and operate its
	// devices (intoSite puts devices there).
	if e.site, err = st.CreateSite(ctx, "north"); err != nil {
		t.Fatal(err)
	}
	flags, _ := auth.FlagsOf(auth.ViewOverview, auth.ViewData, auth.PerformOperations)
	if err := st.SetMembership(ctx, e.users["olive"].ID, e.site.ID, auth.SiteUser, flags); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range Patterns {
		mux.Handle(p, w.Handler())
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// intoSite puts every endpoint in no site into site north.
func (e *env) intoSite(t testing.TB) {
	t.Helper()
	eps, _, err := e.st.ListEndpoints(context.Background(), store.EndpointFilter{SiteID: new(int64), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if err := e.st.SetEndpointSite(context.Background(), ep.ID, e.site.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// browser is a client with its own cookies that does not follow
// redirects and sends the server's origin on POSTs, as a browser would.
type browser struct {
	t      testing.TB
	e      *env
	c      *http.Client
	origin string
}

func (e *env) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, origin: e.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost && b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	bs, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(bs)}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil, nil) }

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in %s", path, r.status, r.body)
	}
	return m[1]
}

func (b *browser) login(user, pw, next string) response {
	b.t.Helper()
	tok := b.csrf("/login")
	return b.do(http.MethodPost, "/login", url.Values{"username": {user}, "password": {pw}, "next": {next}, CSRFField: {tok}}, nil)
}

// loggedIn returns a browser logged in as user.
func (e *env) loggedIn(t testing.TB, user string) *browser {
	t.Helper()
	b := e.browser(t)
	if r := b.login(user, password, ""); r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("login %s: %d %s %s", user, r.status, r.header.Get("Location"), r.body)
	}
	return b
}

func (e *env) audits(t *testing.T, action string) []store.AuditEntry {
	t.Helper()
	all, err := e.st.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, a := range all {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

func TestLogin(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	r := b.login("olive", password, "/devices?q=x")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/devices?q=x" {
		t.Fatalf("good login: %d %q", r.status, r.header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure || len(sc.Value) < 40 {
		t.Fatalf("session cookie %+v (debug mode over HTTP: not Secure)", sc)
	}
	if r := b.get("/"); r.status != 200 || !strings.Contains(r.body, `class="user">olive<`) {
		t.Fatalf("overview after login: %d %s", r.status, r.body)
	}
	// The stored id is the token's hash, not the token.
	if _, _, err := e.st.GetSession(context.Background(), hashToken(sc.Value)); err != nil {
		t.Errorf("session by hash: %v", err)
	}
	if _, _, err := e.st.GetSession(context.Background(), sc.Value); err == nil {
		t.Error("session stored under the raw token")
	}

	for _, c := range []struct {
		user, pw string
		status   int
		msg      string
	}{
		{"olive", "wrong password!", http.StatusUnauthorized, "Wrong username or password."},
		{"nobody", password, http.StatusUnauthorized, "Wrong username or password."},
		{"dora", password, http.StatusForbidden, "This user is disabled."},
		{"olive", "", http.StatusBadRequest, "Enter a username and a password."},
	} {
		b := e.browser(t)
		r := b.login(c.user, c.pw, "")
		if r.status != c.status || !strings.Contains(r.body, c.msg) || !strings.Contains(r.body, `name="username"`) {
			t.Errorf("login %s/%q: %d, want %d with %q and the form: %s", c.user, c.pw, r.status, c.status, c.msg, r.body)
		}
		if r := b.get("/"); r.status != http.StatusSeeOther {
			t.Errorf("after failed login %s: %d, want a redirect", c.user, r.status)
		}
	}
	if a := e.audits(t, ActionLoginFailed); len(a) != 4 {
		t.Errorf("audited failures: %+v, want 4", a)
	}
}

func TestSecureCookieOutsideDebug(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Debug = false })
	b := e.browser(t)
	r := b.get("/login")
	if !strings.Contains(r.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("login CSRF cookie without Secure outside debug: %q", r.header.Get("Set-Cookie"))
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	for i := range DefaultLoginFailures {
		if r := b.login("olive", "wrong password!", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	// Over the limit, even the right password is refused: per account...
	r := e.browser(t).login("olive", password, "")
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed logins") || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("11th attempt: %d %s", r.status, r.body)
	}
	// ... and per address: another account from the same address.
	if r := e.browser(t).login("admin", password, ""); r.status != http.StatusTooManyRequests {
		t.Errorf("other account, same address: %d, want 429", r.status)
	}
	// Refused attempts are audited up to the limit per address.
	for range 2 * DefaultLoginFailures {
		e.browser(t).login("olive", password, "")
	}
	e.clk.Advance(DefaultLoginWindow)
	if r := e.browser(t).login("olive", password, ""); r.status != http.StatusSeeOther {
		t.Errorf("after the window: %d", r.status)
	}
	var limited int
	for _, a := range e.audits(t, ActionLoginFailed) {
		if strings.Contains(string(a.Detail), "rate_limited") {
			limited++
		}
	}
	if limited != DefaultLoginFailures {
		t.Errorf("rate-limited attempts audited: %d, want %d", limited, DefaultLoginFailures)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	tok := b.csrf("/")
	r := b.do(http.MethodPost, "/logout", url.Values{CSRFField: {tok}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Fatalf("logout: %d %q", r.status, r.header.Get("Location"))
	}
	if r := b.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}
	if l, _ := e.st.ListSessions(context.Background(), e.users["olive"].ID); len(l) != 0 {
		t.Errorf("sessions after logout: %+v", l)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	for name, form := range map[string]url.Values{
		"missing": {},
		"wrong":   {CSRFField: {"x" + b.csrf("/")}},
	} {
		if r := b.do(http.MethodPost, "/logout", form, nil); r.status != http.StatusForbidden || !strings.Contains(r.body, "CSRF token") {
			t.Errorf("logout with %s token: %d %s", name, r.status, r.body)
		}
	}
	if r := b.get("/"); r.status != 200 {
		t.Errorf("still logged in after refused logouts: %d", r.status)
	}
	// The login form's token is bound to its cookie.
	other := e.browser(t)
	tok := other.csrf("/login")
	fresh := e.browser(t)
	if r := fresh.do(http.MethodPost, "/login", url.Values{"username": {"olive"}, "password": {password}, CSRFField: {tok}}, nil); r.status != http.StatusForbidden {
		t.Errorf("login with another browser's token: %d", r.status)
	}
}

func TestOrigin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedOrigins = []string{"https://dash.example.com"} })
	b := e.loggedIn(t, "olive")
	tok := b.csrf("/")
	for _, c := range []struct {
		hdr    map[string]string
		status int
	}{
		{map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{map[string]string{"Origin": "null", "Referer": "https://evil.example/x"}, http.StatusForbidden},
		{map[string]string{"Origin": "https://dash.example.com.evil"}, http.StatusForbidden},
		{map[string]string{"Origin": "https://dash.example.com"}, http.StatusSeeOther},
	} {
		b.origin = ""
		r := b.do(http.MethodPost, "/logout", url.Values{CSRFField: {tok}}, c.hdr)
		if r.status != c.status {
			t.Errorf("%v: %d, want %d: %s", c.hdr, r.status, c.status, r.body)
		}
	}
	// Neither Origin nor Referer.
	b = e.loggedIn(t, "olive")
	b.origin = ""
	if r := b.do(http.MethodPost, "/logout", url.Values{CSRFField: {b.csrf("/")}}, nil); r.status != http.StatusForbidden {
		t.Errorf("no origin: %d", r.status)
	}
	// A same-origin Referer does.
	if r := b.do(http.MethodPost, "/logout", url.Values{CSRFField: {b.csrf("/")}}, map[string]string{"Referer": e.srv.URL + "/devices"}); r.status != http.StatusSeeOther {
		t.Errorf("same-origin referer: %d", r.status)
	}
}

func TestAnonymousRedirect(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	for _, p := range []string{"/", "/devices?q=urn%3Aa&state=online", "/devices/urn:x"} {
		r := b.get(p)
		want := "/login?next=" + url.QueryEscape(p)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("GET %s anonymous: %d %q, want 303 %q", p, r.status, r.header.Get("Location"), want)
		}
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	e := newEnv(t, nil)
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
		"evil.example", "/%0d%0aSet-Cookie:x", "\\\\evil.example"} {
		b := e.browser(t)
		r := b.login("olive", password, next)
		loc := r.header.Get("Location")
		if r.status != http.StatusSeeOther || (loc != "/" && !strings.HasPrefix(loc, "/%")) {
			t.Errorf("next=%q: %d %q, want /", next, r.status, loc)
		}
		// The form carries only a safe next.
		if r := b.get("/login?next=" + url.QueryEscape(next)); strings.Contains(r.body, "evil.example") && r.status != http.StatusSeeOther {
			t.Errorf("login form keeps next=%q", next)
		}
	}
	for _, good := range []string{"/devices?q=a", "/devices/urn:imei:1"} {
		if got := safeNext(good); got != good {
			t.Errorf("safeNext(%q) = %q", good, got)
		}
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	e.clk.Advance(DefaultIdleTimeout - time.Minute)
	if r := b.get("/"); r.status != 200 {
		t.Fatalf("within the idle timeout: %d", r.status)
	}
	// A session left idle is removed at the next login of anyone.
	e.loggedIn(t, "admin")
	e.clk.Advance(DefaultIdleTimeout)
	e.loggedIn(t, "admin")
	if l, _ := e.st.ListSessions(context.Background(), e.users["admin"].ID); len(l) != 1 {
		t.Errorf("admin sessions after an idle one ended: %d, want 1", len(l))
	}
	if r := b.get("/"); r.status != http.StatusSeeOther {
		t.Fatalf("idle past the timeout: %d", r.status)
	}
	if l, _ := e.st.ListSessions(context.Background(), e.users["olive"].ID); len(l) != 0 {
		t.Errorf("idle session kept: %+v", l)
	}

	// Absolute: active every 6 h, still ended after 7 days.
	b = e.loggedIn(t, "olive")
	for range int(DefaultAbsoluteTimeout/(6*time.Hour)) - 1 {
		e.clk.Advance(6 * time.Hour)
		if r := b.get("/"); r.status != 200 {
			t.Fatalf("active session ended early: %d", r.status)
		}
	}
	e.clk.Advance(6 * time.Hour)
	if r := b.get("/"); r.status != http.StatusSeeOther {
		t.Fatalf("past the absolute timeout: %d", r.status)
	}
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	admin := e.loggedIn(t, "admin")
	if err := e.st.SetPassword(context.Background(), e.users["olive"].ID, "new hash"); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("after password change: %d", r.status)
	}
	if r := admin.get("/"); r.status != 200 {
		t.Errorf("other user's session: %d", r.status)
	}
	if err := e.st.DisableUser(context.Background(), e.users["admin"].ID, t0); err != nil {
		t.Fatal(err)
	}
	if r := admin.get("/"); r.status != http.StatusSeeOther {
		t.Errorf("after disable: %d", r.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	b := e.loggedIn(t, "olive")
	css := regexp.MustCompile(`href="(/static/app\.[0-9a-f]{16}\.css)"`).FindStringSubmatch(b.get("/").body)
	if css == nil {
		t.Fatal("no checksum CSS URL in the page")
	}
	for _, p := range []string{"/", "/login", "/devices", "/devices/none", css[1], "/static/nope.css"} {
		r := b.get(p)
		h := r.header
		if h.Get("Content-Security-Policy") != "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("GET %s (%d): headers %v", p, r.status, h)
		}
	}
	if r := e.browser(t).get("/"); r.header.Get("Content-Security-Policy") == "" {
		t.Error("redirect without CSP")
	}
	if r := b.do(http.MethodPost, "/devices", url.Values{}, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Content-Security-Policy") == "" {
		t.Errorf("POST /devices: %d %v", r.status, r.header)
	}
}

func TestAssets(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser(t)
	page := b.get("/login").body
	for _, name := range []string{"app.css", "favicon.svg"} {
		u, err := e.w.assets.url(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page, `"`+u+`"`) {
			t.Errorf("%s: %s not in the page", name, u)
		}
		r := b.get(u)
		want, _ := files.ReadFile("static/" + name)
		if r.status != 200 || r.body != string(want) || r.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: %d %v", u, r.status, r.header)
		}
	}
	if ct := b.get(mustURL(t, e, "app.css")).header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("CSS content type %q", ct)
	}
	for _, p := range []string{"/static/app.css", "/static/app.0000000000000000.css", "/static/"} {
		if r := b.get(p); r.status != http.StatusNotFound || r.header.Get("Cache-Control") == "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: %d %v", p, r.status, r.header)
		}
	}
	if _, err := e.w.assets.url("nope.js"); err == nil {
		t.Error("unknown asset has a URL")
	}
}

func mustURL(t *testing.T, e *env, name string) string {
	u, err := e.w.assets.url(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDevicePages(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	ep, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: "urn:dev:one", RegistrationID: "r1",
		Address: "192.0.2.1:5683", Lifetime: time.Hour, Binding: "UQ", LwM2MVersion: "1.1", QueueMode: true,
		ObjectLinks: "</1/0>,</3/0>,</3303/0>", Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.IngestEvent(ctx, store.Event{EndpointID: ep.ID, Kind: "notify", ReceivedAt: t0}, []store.ResourceValue{
		{Path: lwm2m.MustParsePath("/3303/0/5700"), Value: lwm2m.Float(21.5), ReceivedAt: t0},
	}); err != nil {
		t.Fatal(err)
	}
	e.intoSite(t)
	b := e.loggedIn(t, "olive")
	r := b.get("/devices/urn:dev:one")
	for _, want := range []string{"192.0.2.1:5683", "UQ", "1.1", "&lt;/3303/0&gt;", "/3303/0/5700", "21.5", "notify"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("device page lacks %q: %s", want, r.body)
		}
	}
	// A name with URL metacharacters is linked as one path segment.
	odd := "urn:dev:a?b#c/d e"
	if _, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: odd, RegistrationID: "r2", Time: t0}); err != nil {
		t.Fatal(err)
	}
	e.intoSite(t)
	list := b.get("/devices?q=urn:dev:a")
	m := regexp.MustCompile(`<a href="(/devices/[^"]+)">`).FindStringSubmatch(list.body)
	if m == nil || m[1] != "/devices/"+url.PathEscape(odd) {
		t.Fatalf("link of %q: %v", odd, m)
	}
	if r := b.get(m[1]); r.status != 200 || !strings.Contains(r.body, "urn:dev:a?b#c/d e") {
		t.Errorf("GET %s: %d", m[1], r.status)
	}
	if r := b.get("/devices/urn:dev:none"); r.status != http.StatusNotFound || !strings.Contains(r.body, "no such endpoint: urn:dev:none") {
		t.Errorf("unknown device: %d %s", r.status, r.body)
	}
	r = b.get("/")
	for _, want := range []string{`id="count-total">2<`, `id="count-online">2<`, `id="count-offline">0<`, `id="count-sleeping">1<`, `id="queue-depth">0<`, "urn:dev:one"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if r := b.get("/devices?state=sideways"); r.status != http.StatusBadRequest {
		t.Errorf("bad state filter: %d", r.status)
	}
}

func TestDevicesPaging(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for i := range 120 {
		name := "urn:dev:" + string(rune('a'+i%3)) + "-" + leftPad(i)
		if i%2 == 0 {
			if _, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: name, RegistrationID: "r" + leftPad(i), Time: t0}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := e.st.ProvisionEndpoints(ctx, []string{name}, store.AuditEntry{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	e.intoSite(t)
	b := e.loggedIn(t, "olive")
	rowRE := regexp.MustCompile(`<td><a href="/devices/([^"]+)">`)
	seen := map[string]bool{}
	next := "/devices?q=urn:dev:b"
	pages := 0
	for next != "" {
		r := b.get(next)
		if r.status != 200 {
			t.Fatalf("GET %s: %d", next, r.status)
		}
		for _, m := range rowRE.FindAllStringSubmatch(r.body, -1) {
			if seen[m[1]] || !strings.HasPrefix(m[1], "urn:dev:b-") {
				t.Errorf("row %s twice or outside the prefix", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(r.body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		pages++
	}
	if len(seen) != 40 || pages != 1 {
		t.Errorf("prefix b: %d devices in %d pages, want 40 in 1", len(seen), pages)
	}
	clear(seen)
	next, pages = "/devices?state=online", 0
	for next != "" && pages < 10 {
		r := b.get(next)
		for _, m := range rowRE.FindAllStringSubmatch(r.body, -1) {
			seen[m[1]] = true
		}
		if strings.Contains(r.body, "state-offline") {
			t.Errorf("offline device on the online page")
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(r.body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
		pages++
	}
	if len(seen) != 60 || pages != 2 {
		t.Errorf("online: %d devices in %d pages, want 60 in 2", len(seen), pages)
	}
}

func leftPad(i int) string {
	s := "000" + itoa(i)
	return s[len(s)-3:]
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestEveryRouteIsAuthorized holds the dashboard's route table: each
// route with the permission it needs. A new route must be added here; an
// anonymous request to any route that is not Public is sent to the login
// form, and a user without a route's permission gets 403 (checked on a
// route needing an administrator's permission, registered through the
// same route()).
func TestEveryRouteIsAuthorized(t *testing.T) {
	want := map[string]auth.Permission{
		"GET /static/":                        auth.Public,
		"GET /login":                          auth.Public,
		"POST /login":                         auth.Public,
		"POST /logout":                        auth.Public,
		"GET /{$}":                            auth.ViewOverview,
		"GET /devices":                        auth.ViewOverview,
		"GET /devices/{endpoint}":             auth.ViewData,
		"GET /live":                           auth.ViewData,
		"POST /devices/{endpoint}/operations": auth.PerformOperations,
		"POST /devices/{endpoint}/operations/{id}/cancel": auth.PerformOperations,
		"GET /devices/{endpoint}/history":                 auth.ViewData,
		"GET /data":                                       auth.ViewData,
		"GET /data/export":                                auth.ViewData,
	}
	e := newEnv(t, nil)
	got := map[string]auth.Permission{}
	for _, r := range e.w.Routes() {
		got[r.Method+" "+r.Path] = r.Permission
	}
	for k, sc := range routeScenarios { // routes_test.go: the scenario of every route served
		if _, ok := got[k]; ok {
			want[k] = sc.perm
		}
	}
	for k, p := range want {
		if got[k] != p {
			t.Errorf("route %s: permission %q, want %q", k, got[k], p)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("route %s is not in this test's table", k)
		}
	}
	anon := e.browser(t)
	for _, r := range e.w.Routes() {
		if r.Permission == auth.Public || r.Method != http.MethodGet {
			continue
		}
		p := strings.ReplaceAll(strings.ReplaceAll(r.Path, "{endpoint}", "x"), "{$}", "")
		if resp := anon.get(p); resp.status != http.StatusSeeOther || !strings.HasPrefix(resp.header.Get("Location"), "/login?next=") {
			t.Errorf("anonymous GET %s: %d %q", p, resp.status, resp.header.Get("Location"))
		}
	}

	e.w.route("GET /admin-only", auth.ManageUsers, func(rw http.ResponseWriter, _ *http.Request, _ *session) error {
		_, err := io.WriteString(rw, "secret")
		return err
	})
	mux := http.NewServeMux()
	mux.Handle("/", e.w.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e.srv = srv
	user := e.loggedIn(t, "olive")
	r := user.get("/admin-only")
	if r.status != http.StatusForbidden || strings.Contains(r.body, "secret") || !strings.Contains(r.body, "needs permission manage_users") {
		t.Errorf("user on an admin route: %d %s", r.status, r.body)
	}
	if a := e.audits(t, ActionDenied); len(a) != 1 || a[0].Actor != "olive" || a[0].Target != "GET /admin-only" {
		t.Errorf("audited refusals: %+v", a)
	}
	if r := e.loggedIn(t, "admin").get("/admin-only"); r.status != 200 || r.body != "secret" {
		t.Errorf("admin on an admin route: %d %s", r.status, r.body)
	}
}

func TestTemplatesRender(t *testing.T) {
	e := newEnv(t, nil)
	for _, name := range pageNames {
		if e.w.pages[name] == nil {
			t.Errorf("page %s not parsed", name)
		}
	}
}

// TestImports holds the package's place: it must not import the HTTP
// surfaces beside and above it.
func TestImports(t *testing.T) {
	fset := token.NewFileSet()
	paths, _ := filepath.Glob("*.go")
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			for _, banned := range []string{"/internal/api\"", "/internal/app\"", "/internal/cli\""} {
				if strings.HasSuffix(imp.Path.Value, banned) {
					t.Errorf("%s imports %s", p, imp.Path.Value)
				}
			}
		}
	}
}
