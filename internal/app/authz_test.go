package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/api"
	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// userToken creates a user and returns an API token of it: a global
// administrator with admin, else a Site User with every flag in the site
// "home" (made on first use).
func (s *server) userToken(t *testing.T, name string, admin bool) (store.User, string) {
	t.Helper()
	if admin {
		return s.memberToken(t, name, true, "", auth.SiteUser, 0)
	}
	return s.memberToken(t, name, false, "home", auth.SiteUser, auth.AllFlags)
}

// memberToken creates a user (a global administrator with admin), gives
// it role with flags in site (made on first use; "" for none), and
// returns an API token of it.
func (s *server) memberToken(t *testing.T, name string, admin bool, site string, role auth.SiteRole, flags auth.Flags) (store.User, string) {
	t.Helper()
	ctx := context.Background()
	hash, _ := auth.HashPassword("a-password", auth.Params{Memory: 1024, Time: 1, Threads: 1})
	u, err := s.Store.CreateUser(ctx, name, hash, admin)
	if err != nil {
		t.Fatal(err)
	}
	if site != "" {
		if err := s.Store.SetMembership(ctx, u.ID, s.site(t, site).ID, role, flags); err != nil {
			t.Fatal(err)
		}
	}
	tok, th, prefix := auth.NewToken()
	if _, err := s.Store.CreateAPIToken(ctx, u.ID, "test", th, prefix, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return u, tok
}

// site returns the site of the name, made on first use.
func (s *server) site(t *testing.T, name string) store.Site {
	t.Helper()
	ctx := context.Background()
	st, err := s.Store.GetSiteByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		st, err = s.Store.CreateSite(ctx, name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// assign moves the endpoint to the site.
func (s *server) assign(t *testing.T, endpoint string, site store.Site) {
	t.Helper()
	ctx := context.Background()
	e, err := s.Store.GetEndpoint(ctx, endpoint)
	if err == nil {
		err = s.Store.SetEndpointSite(ctx, e.ID, site.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// response is an API answer as the tests check it.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) problemJSON {
	t.Helper()
	var p problemJSON
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("%d %s: not a problem: %v", r.code, r.body, err)
	}
	return p
}

// do sends an API request with token ("" for none) and returns the whole
// answer.
func (s *server) do(t *testing.T, token, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// forbidden checks that r is a 403 problem with code forbidden.
func forbidden(t *testing.T, what string, r response) {
	t.Helper()
	if r.code != http.StatusForbidden || r.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: %d %s %s, want 403 problem+json", what, r.code, r.header.Get("Content-Type"), r.body)
		return
	}
	if p := r.problem(t); p.Code != "forbidden" || p.Status != 403 {
		t.Errorf("%s: problem %+v, want code forbidden", what, p)
	}
}

// TestNonAdminCannotTakeOverADevice guards against a takeover: a user
// without the administrator flag must not remove a device's credential,
// bind their own PSK to it and connect as the device.
func TestNonAdminCannotTakeOverADevice(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	ctx := context.Background()
	const ep = "urn:imei:356938035643809"
	if code := s.call(t, "POST", "/api/v1/credentials", map[string]string{
		"endpoint": ep, "psk_identity": "device-identity", "psk_key": "000102030405060708090a0b0c0d0e0f",
	}, nil); code != http.StatusCreated {
		t.Fatalf("admin creates the credential: %d", code)
	}
	before, err := s.Store.GetCredentialByEndpoint(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	mallory, tok := s.userToken(t, "mallory", false)

	forbidden(t, "non-admin DELETE credential", s.do(t, tok, "DELETE", "/api/v1/credentials/"+ep, nil))
	forbidden(t, "non-admin POST credential", s.do(t, tok, "POST", "/api/v1/credentials", map[string]string{
		"endpoint": ep, "psk_identity": "mallory", "psk_key": "ffffffffffffffffffffffffffffffff",
	}))
	forbidden(t, "non-admin GET credentials", s.do(t, tok, "GET", "/api/v1/credentials", nil))

	after, err := s.Store.GetCredentialByEndpoint(ctx, ep)
	if err != nil || after.ID != before.ID || after.PSKIdentity != "device-identity" || !bytes.Equal(after.PSKKeyEnc, before.PSKKeyEnc) {
		t.Fatalf("credential changed: %+v (%v), was %+v", after, err, before)
	}
	if _, err := s.Store.GetCredentialByPSKIdentity(ctx, "mallory"); err == nil {
		t.Fatal("mallory's PSK identity was stored")
	}

	entries, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: mallory.ID})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /api/v1/credentials", "POST /api/v1/credentials", "DELETE /api/v1/credentials/" + ep}
	if len(entries) != len(want) {
		t.Fatalf("audit entries of mallory: %+v, want %d", entries, len(want))
	}
	for i, e := range entries {
		if e.Action != "access.denied" || e.Actor != "mallory" || e.Target != want[i] || e.RemoteAddr == "" {
			t.Errorf("audit entry %d: %+v, want access.denied of %q by mallory with a remote address", i, e, want[i])
		}
		var d map[string]any
		if err := json.Unmarshal(e.Detail, &d); err != nil || d["permission"] != string(auth.ManageCredentials) {
			t.Errorf("audit entry %d detail: %s", i, e.Detail)
		}
	}
}

// routeCase is how TestEveryRouteIsAuthorized calls one route and what it
// expects.
type routeCase struct {
	// perm is the permission the route must declare.
	perm auth.Permission
	// query is appended to the path.
	query string
	// body returns the request body for a caller (nil: none); st holds
	// values earlier calls saved. "{ep}" anywhere in the body is replaced
	// by the device the call is about.
	body func(who string, st map[string]string) any
	// want are the statuses accepted when the caller may use the route on
	// a device in its scope.
	want []int
	// save is called with an accepted answer.
	save func(who string, r response, st map[string]string)
	// stream: the answer is an event stream; only its headers are read.
	stream bool
	// device: the route acts on the device named by {ep} in the path or
	// the body, so a device outside the caller's scope is 404.
	device bool
	// idKey names the saved value {id} stands for ("" means "op", the
	// operation queued by the caller).
	idKey string
}

func body(v any) func(string, map[string]string) any {
	return func(string, map[string]string) any { return v }
}

// TestEveryRouteIsAuthorized walks every route the API serves (its route
// table, checked against the OpenAPI document) as: a global administrator
// on a device of site A; a Site User of A with every flag on that device
// (allowed for site permissions, 403 for global ones) and on a device of
// site B (404 for per-device routes, absent from the endpoint list); for
// each site permission a Site User of A with every flag but that one
// (403); a global administrator's read-only token on every route but GET
// and HEAD (403 token_scope); and no token (401), on SQLite and on
// PostgreSQL. A route added without a case here fails the test. Every
// 403 is audited, up to the limit; a 404 is not.
func TestEveryRouteIsAuthorized(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { walkRoutes(t, "") })
	t.Run("postgres", func(t *testing.T) { walkRoutes(t, storetest.PostgresURL(t)) })
}

// walkRoutes is TestEveryRouteIsAuthorized on the database at dbURL ("":
// SQLite).
func walkRoutes(t *testing.T, dbURL string) {
	cfg := testConfig(t, t.TempDir())
	cfg.DatabaseURL = dbURL
	s := startServer(t, cfg, Tuning{})
	f := startFleet(t, s, 2, nil)
	epA, epB := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	for _, ep := range []string{epA, epB} {
		eventually(t, 5*time.Second, "the device online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+ep, nil, &e) == 200 && e.Online
		})
	}
	s.assign(t, epA, s.site(t, "a"))
	s.assign(t, epB, s.site(t, "b"))
	walker, walkerTok := s.memberToken(t, "walker", false, "a", auth.SiteUser, auth.AllFlags)
	// lacking[p] is a Site User of A with every flag but p's.
	lacking := map[auth.Permission]string{}
	lackingUser := map[auth.Permission]store.User{}
	for _, p := range auth.SitePermissions() {
		lackingUser[p], lacking[p] = s.memberToken(t, "no-"+string(p), false, "a", auth.SiteUser, auth.AllFlags&^auth.FlagOf(p))
	}
	const credEP = "urn:imei:000000000000042"

	saveID := func(key string) func(string, response, map[string]string) {
		return func(who string, r response, st map[string]string) {
			var v struct {
				ID       int64  `json:"id"`
				Location string `json:"location"`
			}
			json.Unmarshal(r.body, &v)
			val := v.Location
			if v.ID != 0 {
				val = strconv.FormatInt(v.ID, 10)
			}
			st[key+who] = val
		}
	}
	pick := func(key string) func(string, map[string]string) any {
		return func(who string, st map[string]string) any {
			return map[string]any{"path": st[key+who]}
		}
	}
	byCaller := func(user, admin any) func(string, map[string]string) any {
		return func(who string, _ map[string]string) any {
			if who == "admin" {
				return admin
			}
			return user
		}
	}
	ok := []int{http.StatusOK}
	// Keyed by operation id, or method and path for the document routes.
	// Ordered: cases run in this order, the site user's call before the
	// admin's.
	type keyed struct {
		key string
		routeCase
	}
	dev := func(c routeCase) routeCase { c.device = true; return c }
	cases := []keyed{
		{"GET /api/v1/openapi.json", routeCase{perm: auth.Public, want: ok}},
		{"GET /api/v1/openapi-3.0.json", routeCase{perm: auth.Public, want: ok}},
		{"GET /api/v1/openapi.yaml", routeCase{perm: auth.Public, want: ok}},
		{"GET /api/v1/openapi-3.0.yaml", routeCase{perm: auth.Public, want: ok}},
		{"GET /api/v1/schemas/{schema}", routeCase{perm: auth.Public, want: ok}},
		{"api-docs", routeCase{perm: auth.Public, want: ok}},
		{"api-docs-asset", routeCase{perm: auth.Public, want: ok}},
		{"list-endpoints", routeCase{perm: auth.ViewOverview, want: ok}},
		{"get-endpoint", dev(routeCase{perm: auth.ViewData, want: ok})},
		{"get-history", dev(routeCase{perm: auth.ViewData, query: "?path=/3303/0/5700", want: ok})},
		{"list-events", dev(routeCase{perm: auth.ViewData, want: ok})},
		{"read", dev(routeCase{perm: auth.PerformOperations, body: body(map[string]any{"path": "/3/0"}), want: ok})},
		{"discover", dev(routeCase{perm: auth.PerformOperations, body: body(map[string]any{"path": "/3303/0"}), want: ok})},
		{"write", dev(routeCase{perm: auth.PerformOperations, body: body(map[string]any{"path": "/1/0/1", "value": 300}), want: ok})},
		{"execute", dev(routeCase{perm: auth.PerformOperations, body: body(map[string]any{"path": "/3303/0/5605"}), want: ok})},
		{"write-attributes", dev(routeCase{perm: auth.PerformOperations,
			body: body(map[string]any{"path": "/3303/0/5700", "attributes": map[string]any{"pmin": 5}}), want: ok})},
		{"create", dev(routeCase{perm: auth.PerformOperations,
			body: byCaller(map[string]any{"path": "/3303", "instance": 10, "values": map[string]any{"5700": 21.5}},
				map[string]any{"path": "/3303", "instance": 11, "values": map[string]any{"5700": 22.5}}), want: ok,
			save: saveID("instance")})},
		{"delete", dev(routeCase{perm: auth.PerformOperations, body: pick("instance"), want: ok})},
		{"observe", dev(routeCase{perm: auth.PerformOperations,
			body: byCaller(map[string]any{"path": "/3303/0/5700"}, map[string]any{"path": "/3304/0/5700"}), want: ok})},
		{"list-observations", dev(routeCase{perm: auth.ViewData, want: ok})},
		{"cancel-observe", dev(routeCase{perm: auth.PerformOperations,
			body: byCaller(map[string]any{"path": "/3303/0/5700"}, map[string]any{"path": "/3304/0/5700"}), want: ok})},
		{"queue-operation", dev(routeCase{perm: auth.PerformOperations,
			body: body(map[string]any{"kind": "read", "path": "/3/0/0"}), want: []int{http.StatusAccepted}, save: saveID("op")})},
		{"list-operations", dev(routeCase{perm: auth.ViewData, want: ok})},
		{"get-operation", dev(routeCase{perm: auth.ViewData, want: ok})},
		// The device is online: the operation may be delivered already (409).
		{"cancel-operation", dev(routeCase{perm: auth.PerformOperations, want: []int{http.StatusOK, http.StatusConflict}})},
		{"list-credentials", routeCase{perm: auth.ManageCredentials, want: ok}},
		{"create-credential", routeCase{perm: auth.ManageCredentials, want: []int{http.StatusCreated},
			body: body(map[string]any{"endpoint": credEP, "psk_identity": "walker", "psk_key": "000102030405060708090a0b0c0d0e0f"})}},
		{"delete-credential", routeCase{perm: auth.ManageCredentials, want: []int{http.StatusNoContent}}},
		{"stream-events", routeCase{perm: auth.ViewData, want: ok, stream: true}},
		// No image is uploaded here: the update cannot start, and there is
		// no update to get or cancel.
		{"start-firmware-update", dev(routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound},
			body: body(map[string]any{"endpoint": "{ep}", "version": "9.9.9"})})},
		{"list-firmware-updates", routeCase{perm: auth.ViewFirmware, want: ok}},
		{"get-firmware-update", routeCase{perm: auth.ViewFirmware, want: []int{http.StatusNotFound}}},
		{"cancel-firmware-update", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound}}},
		{"create-firmware-campaign", dev(routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound},
			body: body(map[string]any{"version": "9.9.9", "endpoints": []string{"{ep}"}})})},
		{"list-firmware-campaigns", routeCase{perm: auth.ViewFirmware, want: ok}},
		{"get-firmware-campaign", routeCase{perm: auth.ViewFirmware, want: []int{http.StatusNotFound}}},
		{"list-firmware-campaign-devices", routeCase{perm: auth.ViewFirmware, want: []int{http.StatusNotFound}}},
		{"pause-firmware-campaign", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound}}},
		{"resume-firmware-campaign", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound}}},
		{"cancel-firmware-campaign", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound}}},
		// A JSON body is no image: refused after the permission passed.
		{"upload-firmware", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusBadRequest},
			body: body(map[string]any{"version": "1.0"})}},
		{"list-firmware", routeCase{perm: auth.ViewFirmware, want: ok}},
		{"get-firmware", routeCase{perm: auth.ViewFirmware, want: []int{http.StatusNotFound}}},
		{"delete-firmware", routeCase{perm: auth.ManageFirmware, want: []int{http.StatusNotFound}}},
		// An invalid URL: refused after the permission passed, so no
		// webhook exists and {id} (an operation's id) names none.
		{"create-webhook", routeCase{perm: auth.ViewData, want: []int{http.StatusBadRequest},
			body: body(map[string]any{"url": "ftp://example.com/"})}},
		{"list-webhooks", routeCase{perm: auth.ViewData, want: ok}},
		{"get-webhook", routeCase{perm: auth.ViewData, want: []int{http.StatusNotFound}}},
		{"update-webhook", routeCase{perm: auth.ViewData, want: []int{http.StatusNotFound}, body: body(map[string]any{"enabled": false})}},
		{"delete-webhook", routeCase{perm: auth.ViewData, want: []int{http.StatusNotFound}}},
		{"list-webhook-deliveries", routeCase{perm: auth.ViewData, want: []int{http.StatusNotFound}}},
		{"ping-webhook", routeCase{perm: auth.ViewData, want: []int{http.StatusNotFound}}},
		// The operation queue across devices: {id} is the caller's queued
		// operation, on the device of its site.
		{"list-all-operations", routeCase{perm: auth.ViewData, want: ok}},
		{"cancel-operation-by-id", routeCase{perm: auth.PerformOperations, want: []int{http.StatusOK, http.StatusConflict}}},
		{"list-objects", routeCase{perm: auth.ViewData, want: ok}},
		{"get-object", routeCase{perm: auth.ViewData, want: ok, idKey: "object"}},
		// Each caller makes a token, then revokes it.
		{"list-tokens", routeCase{perm: auth.OwnTokens, want: ok}},
		{"create-token", routeCase{perm: auth.OwnTokens, want: []int{http.StatusCreated},
			body: body(map[string]any{"name": "walked", "scope": "read"}), save: saveID("token")}},
		{"delete-token", routeCase{perm: auth.OwnTokens, want: []int{http.StatusNoContent}, idKey: "token"}},
		// The admin makes a user, changes it, gives it and takes away a
		// membership, and deletes it.
		{"list-users", routeCase{perm: auth.ManageUsers, want: ok}},
		{"create-user", routeCase{perm: auth.ManageUsers, want: []int{http.StatusCreated},
			body: body(map[string]any{"username": "walked", "password": "a-password"}), save: saveID("user")}},
		{"get-user", routeCase{perm: auth.ManageUsers, want: ok, idKey: "user"}},
		{"update-user", routeCase{perm: auth.ManageUsers, want: ok, idKey: "user", body: body(map[string]any{"disabled": true})}},
		{"list-memberships", routeCase{perm: auth.ManageUsers, want: ok, idKey: "user"}},
		{"set-membership", routeCase{perm: auth.ManageUsers, want: ok, idKey: "user",
			body: body(map[string]any{"role": "user", "flags": []string{"view_data"}})}},
		{"delete-membership", routeCase{perm: auth.ManageUsers, want: []int{http.StatusNoContent}, idKey: "user"}},
		{"delete-user", routeCase{perm: auth.ManageUsers, want: []int{http.StatusNoContent}, idKey: "user"}},
		// The admin makes a site, renames and deletes it; {site} is site A,
		// where the walker moves its own device.
		{"list-sites", routeCase{perm: auth.ManageUsers, want: ok}},
		{"create-site", routeCase{perm: auth.ManageUsers, want: []int{http.StatusCreated},
			body: body(map[string]any{"name": "walked"}), save: saveID("newsite")}},
		{"get-site", routeCase{perm: auth.ManageUsers, want: ok, idKey: "newsite"}},
		{"update-site", routeCase{perm: auth.ManageUsers, want: ok, idKey: "newsite", body: body(map[string]any{"name": "walked-2"})}},
		{"delete-site", routeCase{perm: auth.ManageUsers, want: []int{http.StatusNoContent}, idKey: "newsite"}},
		{"assign-endpoints", routeCase{perm: auth.ManageDevices, want: ok, idKey: "site",
			body: body(map[string]any{"endpoints": []string{"{ep}"}})}},
		{"list-audit", routeCase{perm: auth.ManageUsers, want: ok}},
	}

	routes := map[string]api.Route{}
	for _, r := range s.API.Routes() {
		key := r.OperationID
		if key == "" {
			key = r.Method + " " + r.Path
		}
		if _, dup := routes[key]; dup {
			t.Errorf("route %s twice", key)
		}
		routes[key] = r
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.key] = true
		if _, ok := routes[c.key]; !ok {
			t.Errorf("case %s: no such route", c.key)
		}
	}
	for key, r := range routes {
		if !seen[key] {
			t.Errorf("route %s %s (%s, permission %s) has no case here: add one", r.Method, r.Path, key, r.Permission)
		}
	}
	checkOpenAPI(t, s, routes)

	st := map[string]string{}
	// {site} is site A, where the walker and the users lacking a flag
	// are members.
	for _, who := range []string{"walker", "admin", "lacking"} {
		st["site"+who] = strconv.FormatInt(s.site(t, "a").ID, 10)
		st["object"+who] = "3303"
	}
	fill := func(path, who, ep, idKey string) string {
		if idKey == "" {
			idKey = "op"
		}
		id := st[idKey+who]
		if id == "" {
			id = "1"
		}
		return strings.NewReplacer("{ep}", ep, "{endpoint}", credEP, "{schema}", "Credential.json",
			"{id}", id, "{version}", "9.9", "{site}", st["site"+who],
			"{asset}", strings.TrimPrefix(api.DocsStylesheetPath, api.DocsPath+"/")).Replace(path)
	}
	// bodyFor returns c's body for who about the device ep.
	bodyFor := func(c routeCase, who, ep string) any {
		if c.body == nil {
			return nil
		}
		b, _ := json.Marshal(c.body(who, st))
		return json.RawMessage(strings.ReplaceAll(string(b), "{ep}", ep))
	}
	call := func(c routeCase, r api.Route, who, tok, ep string) (response, string) {
		path := fill(r.Path, who, ep, c.idKey) + c.query
		what := fmt.Sprintf("%s %s as %s", r.Method, path, who)
		if c.stream {
			return s.streamHeaders(t, tok, path), what
		}
		return s.do(t, tok, r.Method, path, bodyFor(c, who, ep)), what
	}
	refusals := map[int64]int{} // by user: the refusals the walk caused
	// reader is a global administrator whose token is read-only: every
	// route but GET and HEAD refuses it.
	reader, _ := s.memberToken(t, "reader", true, "", auth.SiteUser, 0)
	readTok, th, prefix := auth.NewToken()
	if _, err := s.Store.CreateScopedAPIToken(context.Background(), reader.ID, "read", th, prefix, store.TokenRead, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		r, ok := routes[c.key]
		if !ok {
			continue
		}
		if r.Permission != c.perm {
			t.Errorf("%s: permission %s, want %s", c.key, r.Permission, c.perm)
		}
		// No token.
		if c.perm == auth.Public {
			if got := s.do(t, "", r.Method, fill(r.Path, "admin", epA, c.idKey), nil); got.code != http.StatusOK {
				t.Errorf("%s without a token: %d, want 200", c.key, got.code)
			}
		} else if got := s.do(t, "", r.Method, fill(r.Path, "admin", epA, c.idKey)+c.query, nil); got.code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", c.key, got.code)
		}
		// A read-only token writing.
		if c.perm != auth.Public && r.Method != http.MethodGet && r.Method != http.MethodHead {
			got, what := call(c.routeCase, r, "admin", readTok, epA)
			if p := got.problem(t); got.code != http.StatusForbidden || p.Code != "token_scope" {
				t.Errorf("%s with a read-only token: %d %s, want 403 token_scope", what, got.code, got.body)
			}
			refusals[reader.ID]++
		}
		site := auth.FlagOf(c.perm) != 0
		// A site user lacking the route's flag: refused before the body
		// is even looked at.
		if site {
			got, what := call(c.routeCase, r, "lacking", lacking[c.perm], epA)
			forbidden(t, c.key+" "+what, got)
			forbidden(t, c.key+" "+what+" with a bad body", s.do(t, lacking[c.perm], r.Method, fill(r.Path, "lacking", epA, c.idKey), "not an object"))
			refusals[lackingUser[c.perm].ID] += 2
		}
		// The site user with every flag, on the device of the other site:
		// absent.
		if site && c.device {
			got, what := call(c.routeCase, r, "walker", walkerTok, epB)
			if got.code != http.StatusNotFound || got.problem(t).Code != "not_found" {
				t.Errorf("%s %s, device of another site: %d %s, want 404", c.key, what, got.code, got.body)
			}
		}
		// The site user on the device of its site, then the admin.
		for _, who := range []string{"walker", "admin"} {
			tok := walkerTok
			if who == "admin" {
				tok = s.token
			}
			got, what := call(c.routeCase, r, who, tok, epA)
			what = c.key + " " + what
			// Global permissions are the administrators', but for one's
			// own tokens (any site member's).
			if who == "walker" && c.perm != auth.Public && c.perm != auth.OwnTokens && !site {
				forbidden(t, what, got)
				forbidden(t, what+" with a bad body", s.do(t, tok, r.Method, fill(r.Path, who, epA, c.idKey), "not an object"))
				refusals[walker.ID] += 2
				continue
			}
			if !slices.Contains(c.want, got.code) {
				t.Errorf("%s: %d %s, want %v", what, got.code, got.body, c.want)
				continue
			}
			if c.save != nil {
				c.save(who, got, st)
			}
		}
	}
	// Lists hold only the devices in the caller's scope.
	var list struct{ Items []struct{ Name string } }
	if r := s.do(t, walkerTok, "GET", "/api/v1/endpoints", nil); r.code != 200 || json.Unmarshal(r.body, &list) != nil ||
		len(list.Items) != 1 || list.Items[0].Name != epA {
		t.Errorf("endpoints the site user lists: %d %s, want only %s", r.code, r.body, epA)
	}
	if r := s.do(t, s.token, "GET", "/api/v1/endpoints", nil); r.code != 200 || json.Unmarshal(r.body, &list) != nil || len(list.Items) != 2 {
		t.Errorf("endpoints the admin lists: %d %s, want both", r.code, r.body)
	}
	// Every refusal of the walk is in the audit log, up to the limit per
	// user; the 404s are not refusals.
	for id, n := range refusals {
		// The walk's changes (tokens, assignments) are audited too.
		entries, err := s.Store.ListAudit(context.Background(), store.AuditFilter{UserID: id, Action: api.ActionDenied, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if want := min(n, api.DenialBurst); len(entries) != want {
			t.Errorf("audit entries of user %d: %d, want %d (each refused route twice, up to the limit)", id, len(entries), want)
		}
		for _, e := range entries {
			if e.Action != api.ActionDenied {
				t.Errorf("audit entry of user %d: %+v, want %s", id, e, api.ActionDenied)
			}
		}
	}
	needed := map[auth.Permission]bool{}
	for _, r := range routes {
		needed[r.Permission] = true
	}
	for p, u := range lackingUser {
		if needed[p] && refusals[u.ID] == 0 {
			t.Errorf("no refusal of the user lacking %s", p)
		}
	}
	if refusals[walker.ID] == 0 {
		t.Error("no refusal of the site user")
	}
	if refusals[reader.ID] == 0 {
		t.Error("no refusal of the read-only token")
	}
}

// TestStreamScope checks that an event stream of a site user carries the
// events of its sites' devices only, and the admin's carries all.
func TestStreamScope(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 2, nil)
	epA, epB := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	s.assign(t, epA, s.site(t, "a"))
	s.assign(t, epB, s.site(t, "b"))
	_, tok := s.memberToken(t, "viewer", false, "a", auth.SiteUser, auth.FlagOf(auth.ViewData))
	got := map[string]chan string{}
	for who, token := range map[string]string{"viewer": tok, "admin": s.token} {
		ch := make(chan string, 1024)
		got[who] = ch
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/v1/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream of %s: %v %v", who, resp, err)
		}
		go func() {
			defer resp.Body.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 {
					ch <- string(buf[:n])
				}
				if err != nil {
					close(ch)
					return
				}
			}
		}()
	}
	// Both devices report: read each one's device object.
	for _, ep := range []string{epA, epB} {
		if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/3/0"}, nil); code != 200 {
			t.Fatalf("read %s: %d", ep, code)
		}
	}
	seen := func(who string) (a, b bool) {
		var all strings.Builder
		deadline := time.After(3 * time.Second)
		for {
			select {
			case s, ok := <-got[who]:
				if !ok {
					return
				}
				all.WriteString(s)
				if who == "admin" && strings.Contains(all.String(), epA) && strings.Contains(all.String(), epB) {
					return true, true
				}
			case <-deadline:
				return strings.Contains(all.String(), epA), strings.Contains(all.String(), epB)
			}
		}
	}
	if a, b := seen("admin"); !a || !b {
		t.Fatalf("admin's stream: device A %v, device B %v; want both", a, b)
	}
	if a, b := seen("viewer"); !a || b {
		t.Errorf("site user's stream: device A %v, device B %v; want A only", a, b)
	}
}

// streamHeaders opens an event stream and returns its status and headers
// without waiting for events.
func (s *server) streamHeaders(t *testing.T, token, path string) response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, b}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("stream %s: Content-Type %q", path, ct)
	}
	return response{resp.StatusCode, resp.Header, nil}
}

// checkOpenAPI checks that the OpenAPI document lists exactly the
// operations of the route table, each with its permission.
func checkOpenAPI(t *testing.T, s *server, routes map[string]api.Route) {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Permission  string `json:"x-permission"`
		} `json:"paths"`
	}
	if r := s.do(t, "", "GET", "/api/v1/openapi.json", nil); r.code != 200 || json.Unmarshal(r.body, &doc) != nil {
		t.Fatalf("OpenAPI document: %d", r.code)
	}
	documented := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented++
			r, ok := routes[op.OperationID]
			if !ok || r.Path != path || !strings.EqualFold(r.Method, method) || string(r.Permission) != op.Permission {
				t.Errorf("OpenAPI %s %s (%s, x-permission %q) does not match the route table: %+v", method, path, op.OperationID, op.Permission, r)
			}
		}
	}
	operations := 0
	for _, r := range routes {
		if r.OperationID != "" {
			operations++
		}
	}
	if documented != operations {
		t.Errorf("OpenAPI documents %d operations, the route table has %d", documented, operations)
	}
}

// TestRefusalsAreRateLimited checks that a client looping on a refused
// request gets 403 every time but writes at most api.DenialBurst audit
// entries a window, and that another user's refusals are still recorded.
func TestRefusalsAreRateLimited(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	looper, tok := s.userToken(t, "looper", false)
	other, otherTok := s.userToken(t, "other", false)
	for i := range 3 * api.DenialBurst {
		if r := s.do(t, tok, "GET", "/api/v1/credentials", nil); r.code != http.StatusForbidden {
			t.Fatalf("refusal %d: %d", i+1, r.code)
		}
	}
	forbidden(t, "other user", s.do(t, otherTok, "DELETE", "/api/v1/credentials/x", nil))
	ctx := context.Background()
	if es, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: looper.ID, Limit: 1000}); err != nil || len(es) != api.DenialBurst {
		t.Errorf("audit entries of the looping user: %d (%v), want %d", len(es), err, api.DenialBurst)
	}
	if es, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: other.ID}); err != nil || len(es) != 1 {
		t.Errorf("audit entries of the other user: %d (%v), want 1", len(es), err)
	}
}

// TestDisabledAndDeletedUsers checks that disabling a user refuses its
// tokens at once, enabling accepts them again, and deleting it removes
// them while its audit entries keep its name.
func TestDisabledAndDeletedUsers(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	ctx := context.Background()
	for _, admin := range []bool{false, true} {
		name := "judy" + strconv.FormatBool(admin)
		u, tok := s.userToken(t, name, admin)
		if r := s.do(t, tok, "GET", "/api/v1/endpoints", nil); r.code != http.StatusOK {
			t.Fatalf("%s enabled: %d", name, r.code)
		}
		if !admin {
			forbidden(t, "refused while enabled", s.do(t, tok, "GET", "/api/v1/credentials", nil))
		}
		if err := s.Store.DisableUser(ctx, u.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/api/v1/endpoints", "/api/v1/credentials"} {
			r := s.do(t, tok, "GET", path, nil)
			if p := r.problem(t); r.code != http.StatusUnauthorized || p.Code != "unauthorized" || !strings.Contains(p.Detail, "disabled") {
				t.Errorf("%s disabled, GET %s: %d %+v", name, path, r.code, p)
			}
		}
		if err := s.Store.EnableUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if r := s.do(t, tok, "GET", "/api/v1/endpoints", nil); r.code != http.StatusOK {
			t.Fatalf("%s enabled again: %d", name, r.code)
		}
		if err := s.Store.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if r := s.do(t, tok, "GET", "/api/v1/endpoints", nil); r.code != http.StatusUnauthorized {
			t.Errorf("%s deleted: %d", name, r.code)
		}
		if !admin {
			es, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: u.ID})
			if err != nil || len(es) != 1 || es[0].Actor != name || es[0].Action != api.ActionDenied {
				t.Errorf("audit of the deleted user: %+v %v", es, err)
			}
		}
	}
}

// TestMethodNotAllowedAndHeaders checks 405 with Allow on known API paths,
// 404 on unknown ones, and the security headers on API answers.
func TestMethodNotAllowedAndHeaders(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	for _, c := range []struct {
		method, path, allow string
	}{
		{"PUT", "/api/v1/endpoints", "GET, HEAD"},
		{"DELETE", "/api/v1/endpoints/urn:imei:1", "GET, HEAD"},
		{"DELETE", "/api/v1/credentials", "GET, HEAD, POST"},
		{"GET", "/api/v1/credentials/urn:imei:1", "DELETE"},
		{"GET", "/api/v1/endpoints/urn:imei:1/read", "POST"},
		{"PATCH", "/api/v1/endpoints/urn:imei:1/operations/7", "GET, HEAD, DELETE"},
		{"POST", "/api/v1/openapi.json", "GET, HEAD"},
	} {
		r := s.do(t, s.token, c.method, c.path, nil)
		if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow ||
			r.header.Get("Content-Type") != "application/problem+json" || r.problem(t).Code != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", c.method, c.path, r.code, r.header.Get("Allow"), r.body, c.allow)
		}
		// Without a token too: the method is wrong whoever asks.
		if r := s.do(t, "", c.method, c.path, nil); r.code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s without a token: %d", c.method, c.path, r.code)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/nope"}, {"PUT", "/api/v1/nope"}, {"GET", "/api/v1/endpoints/x/nope"}, {"DELETE", "/api/v1/"},
	} {
		r := s.do(t, s.token, c.method, c.path, nil)
		if r.code != http.StatusNotFound || r.problem(t).Code != "not_found" || r.header.Get("Allow") != "" {
			t.Errorf("%s %s: %d Allow %q, want 404", c.method, c.path, r.code, r.header.Get("Allow"))
		}
	}

	_, userTok := s.userToken(t, "kim", false)
	answers := map[string]response{
		"200":         s.do(t, s.token, "GET", "/api/v1/endpoints", nil),
		"401":         s.do(t, "", "GET", "/api/v1/endpoints", nil),
		"403":         s.do(t, userTok, "GET", "/api/v1/credentials", nil),
		"404":         s.do(t, s.token, "GET", "/api/v1/nope", nil),
		"405":         s.do(t, s.token, "PUT", "/api/v1/endpoints", nil),
		"openapi":     s.do(t, "", "GET", "/api/v1/openapi.json", nil),
		"stream":      s.streamHeaders(t, s.token, "/api/v1/events/stream"),
		"healthz":     s.do(t, "", "GET", "/healthz", nil),
		"metrics":     s.do(t, "", "GET", "/metrics", nil),
		"healthz 405": s.do(t, "", "POST", "/healthz", nil),
	}
	for name, r := range answers {
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", name, got)
		}
		if got := r.header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", name, got)
		}
		csp := r.header.Get("Content-Security-Policy")
		if isAPI := !strings.HasPrefix(name, "healthz") && name != "metrics"; isAPI && csp != api.APICSP {
			t.Errorf("%s: Content-Security-Policy %q, want %q", name, csp, api.APICSP)
		}
	}
	if answers["405"].code != 405 || answers["healthz 405"].code != 405 || answers["healthz 405"].header.Get("Allow") != "GET, HEAD" {
		t.Errorf("405s: %d, %d %q", answers["405"].code, answers["healthz 405"].code, answers["healthz 405"].header.Get("Allow"))
	}
}

// TestStreamEndsWhenAccessEnds checks that an open event stream ends at
// its next keep-alive once its user is disabled or its token revoked,
// while other streams go on.
func TestStreamEndsWhenAccessEnds(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 50 * time.Millisecond})
	ctx := context.Background()
	// open returns a channel closed when the stream ends, after its first
	// keep-alive arrived.
	open := func(token string) <-chan struct{} {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(rctx, "GET", s.base+"/api/v1/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open stream: %v %v", resp, err)
		}
		alive, ended := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(ended)
			defer resp.Body.Close()
			buf := make([]byte, 256)
			first := true
			for {
				n, err := resp.Body.Read(buf)
				if first && strings.Contains(string(buf[:n]), "keep-alive") {
					close(alive)
					first = false
				}
				if err != nil {
					return
				}
			}
		}()
		select {
		case <-alive:
		case <-time.After(5 * time.Second):
			t.Fatal("no keep-alive on a new stream")
		}
		return ended
	}
	endsSoon := func(what string, ended <-chan struct{}) {
		t.Helper()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: stream still open", what)
		}
	}
	u, tok := s.userToken(t, "lena", false)
	_, tok2 := s.userToken(t, "max", false)
	adminStream := open(s.token)
	userStream := open(tok)
	if err := s.Store.DisableUser(ctx, u.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	endsSoon("user disabled", userStream)

	other := open(tok2)
	toks, err := s.Store.ListAllAPITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.TokenHash == auth.HashToken(tok2) {
			if err := s.Store.DeleteAPIToken(ctx, tk.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	endsSoon("token revoked", other)

	select {
	case <-adminStream:
		t.Fatal("the admin's stream ended too")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestTokenLastUse: a token's use is recorded, at most once a minute.
func TestTokenLastUse(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	u, tok := s.userToken(t, "reader", false)
	ctx := context.Background()
	lastUse := func() time.Time {
		toks, err := s.Store.ListAPITokens(ctx, u.ID)
		if err != nil || len(toks) != 1 {
			t.Fatalf("tokens of %s: %v, %v", u.Username, toks, err)
		}
		return toks[0].LastUsedAt
	}
	if !lastUse().IsZero() {
		t.Fatal("a new token was used")
	}
	s.do(t, tok, "GET", "/api/v1/endpoints", nil)
	first := lastUse()
	if first.IsZero() {
		t.Fatal("use not recorded")
	}
	s.do(t, tok, "GET", "/api/v1/endpoints", nil)
	if again := lastUse(); !again.Equal(first) {
		t.Fatalf("use recorded again within a minute: %v, then %v", first, again)
	}
}

// TestFirmwareScope: firmware updates and campaigns follow their devices.
// A Site User of site A sees and cancels the updates of A's device only
// (B's is 404), creates campaigns over devices it names in A (a filter
// is 400, a device of B 404), and sees only the campaigns whose
// devices are all in A.
func TestFirmwareScope(t *testing.T) {
	is := startImageServer(t)
	s := startServer(t, testConfig(t, t.TempDir()), fwTuning(is))
	f := startFleet(t, s, 2, func(c *simulator.Config) { c.FirmwareDelay = time.Hour })
	epA, epB := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	for _, ep := range []string{epA, epB} {
		eventually(t, 5*time.Second, "the device online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+ep, nil, &e) == 200 && e.Online
		})
	}
	s.assign(t, epA, s.site(t, "a"))
	s.assign(t, epB, s.site(t, "b"))
	_, tok := s.memberToken(t, "fwuser", false, "a", auth.SiteUser, auth.AllFlags)
	addImage(t, s, is, "8.0.0", fwImage("8.0.0", 2000))
	upA := s.startUpdate(t, map[string]any{"endpoint": epA, "version": "8.0.0"})
	upB := s.startUpdate(t, map[string]any{"endpoint": epB, "version": "8.0.0"})

	var list struct{ Items []updateJSON }
	if r := s.do(t, tok, "GET", "/api/v1/firmware/updates", nil); r.code != 200 || json.Unmarshal(r.body, &list) != nil ||
		len(list.Items) != 1 || list.Items[0].ID != upA.ID {
		t.Errorf("the site user's updates: %d %s, want only %d", r.code, r.body, upA.ID)
	}
	if r := s.do(t, tok, "GET", fmt.Sprintf("/api/v1/firmware/updates/%d", upA.ID), nil); r.code != 200 {
		t.Errorf("update of A: %d", r.code)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := s.do(t, tok, m, fmt.Sprintf("/api/v1/firmware/updates/%d", upB.ID), nil); r.code != 404 {
			t.Errorf("%s update of B: %d %s, want 404", m, r.code, r.body)
		}
	}
	if r := s.do(t, tok, "GET", "/api/v1/firmware/updates?endpoint="+epB, nil); r.code != 404 {
		t.Errorf("updates of B by endpoint: %d, want 404", r.code)
	}
	if u, err := s.Updates.Get(context.Background(), upB.ID); err != nil || !u.Active {
		t.Errorf("B's update after the refused cancel: %+v %v", u, err)
	}

	create := func(tok string, body map[string]any) (response, campaignJSON) {
		var c campaignJSON
		r := s.do(t, tok, "POST", "/api/v1/firmware/campaigns", body)
		json.Unmarshal(r.body, &c)
		return r, c
	}
	if r, _ := create(tok, map[string]any{"version": "8.0.0"}); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "endpoints_required") {
		t.Errorf("a site user's campaign by filter: %d %s, want 400 endpoints_required", r.code, r.body)
	}
	if r, _ := create(tok, map[string]any{"version": "8.0.0", "endpoints": []string{epA, epB}}); r.code != 404 {
		t.Errorf("a site user's campaign over B: %d %s, want 404", r.code, r.body)
	}
	r, own := create(tok, map[string]any{"version": "8.0.0", "endpoints": []string{epA}})
	if r.code != http.StatusCreated || own.Devices != 1 {
		t.Fatalf("a site user's campaign over A: %d %s", r.code, r.body)
	}
	r, both := create(s.token, map[string]any{"version": "8.0.0", "endpoints": []string{epA, epB}})
	if r.code != http.StatusCreated {
		t.Fatalf("the admin's campaign: %d %s", r.code, r.body)
	}
	var cs struct{ Items []campaignJSON }
	if r := s.do(t, tok, "GET", "/api/v1/firmware/campaigns", nil); r.code != 200 || json.Unmarshal(r.body, &cs) != nil ||
		len(cs.Items) != 1 || cs.Items[0].ID != own.ID {
		t.Errorf("the site user's campaigns: %s, want only %d", r.body, own.ID)
	}
	for _, p := range []string{"", "/devices"} {
		if r := s.do(t, tok, "GET", fmt.Sprintf("/api/v1/firmware/campaigns/%d%s", both.ID, p), nil); r.code != 404 {
			t.Errorf("GET the admin's campaign%s: %d, want 404", p, r.code)
		}
	}
	if r := s.do(t, tok, "POST", fmt.Sprintf("/api/v1/firmware/campaigns/%d/cancel", both.ID), nil); r.code != 404 {
		t.Errorf("cancel the admin's campaign: %d, want 404", r.code)
	}
	if r := s.do(t, s.token, "GET", "/api/v1/firmware/campaigns", nil); r.code != 200 || json.Unmarshal(r.body, &cs) != nil || len(cs.Items) != 2 {
		t.Errorf("the admin's campaigns: %s, want both", r.body)
	}
}
