package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// adminProblem is a problem answer with its field errors.
type adminProblem struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

// wantStatus checks r's status and decodes its body into out (nil: not).
func wantStatus(t *testing.T, what string, r response, code int, out any) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: %d %s, want %d", what, r.code, r.body, code)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s: %v in %s", what, err, r.body)
		}
	}
}

// wantField checks that r is a 400 problem with a field error at
// location.
func wantField(t *testing.T, what string, r response, location string) {
	t.Helper()
	var p adminProblem
	wantStatus(t, what, r, http.StatusBadRequest, &p)
	for _, e := range p.Errors {
		if e.Location == location {
			return
		}
	}
	t.Errorf("%s: errors %+v, want one at %s", what, p.Errors, location)
}

// TestAPIAdministration runs the administration resources (tokens,
// users, memberships, sites, assignment, audit log), the operation queue
// across devices and the object definitions on SQLite and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, PostgreSQL.
func TestAPIAdministration(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { runAPIAdministration(t, "") })
	t.Run("postgres", func(t *testing.T) { runAPIAdministration(t, storetest.PostgresURL(t)) })
}

func runAPIAdministration(t *testing.T, dbURL string) {
	cfg := testConfig(t, t.TempDir())
	cfg.DatabaseURL = dbURL
	s := startServer(t, cfg, Tuning{})
	ctx := context.Background()

	// No token: 401 everywhere.
	for _, r := range []string{"GET /api/v1/tokens", "POST /api/v1/tokens", "GET /api/v1/users", "POST /api/v1/sites",
		"GET /api/v1/audit", "GET /api/v1/operations", "DELETE /api/v1/operations/1", "GET /api/v1/objects"} {
		m, p, _ := strings.Cut(r, " ")
		if got := s.do(t, "", m, p, nil); got.code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", r, got.code)
		}
	}

	// Sites and users.
	var north, south struct{ ID int64 }
	wantStatus(t, "create site north", s.do(t, s.token, "POST", "/api/v1/sites", map[string]any{"name": "north"}), 201, &north)
	wantStatus(t, "create site south", s.do(t, s.token, "POST", "/api/v1/sites", map[string]any{"name": "south"}), 201, &south)
	wantField(t, "bad site name", s.do(t, s.token, "POST", "/api/v1/sites", map[string]any{"name": "no spaces"}), "body.name")
	if r := s.do(t, s.token, "POST", "/api/v1/sites", map[string]any{"name": "north"}); r.code != http.StatusConflict {
		t.Errorf("site name taken: %d %s, want 409", r.code, r.body)
	}
	var renamed struct{ Name string }
	wantStatus(t, "rename south", s.do(t, s.token, "PATCH", fmt.Sprintf("/api/v1/sites/%d", south.ID), map[string]any{"name": "sud"}), 200, &renamed)
	if renamed.Name != "sud" {
		t.Errorf("renamed site: %+v", renamed)
	}
	var olive struct {
		ID       int64
		Username string
		Admin    bool
		Disabled bool
	}
	wantField(t, "short password", s.do(t, s.token, "POST", "/api/v1/users", map[string]any{"username": "olive", "password": "short"}), "body.password")
	wantField(t, "bad user name", s.do(t, s.token, "POST", "/api/v1/users", map[string]any{"username": "o live", "password": "a-password"}), "body.username")
	wantStatus(t, "create olive", s.do(t, s.token, "POST", "/api/v1/users", map[string]any{"username": "olive", "password": "a-password"}), 201, &olive)
	if olive.Username != "olive" || olive.Admin || olive.Disabled {
		t.Errorf("olive: %+v", olive)
	}
	base := fmt.Sprintf("/api/v1/users/%d/memberships/", olive.ID)
	wantField(t, "unknown flag", s.do(t, s.token, "PUT", base+strconv.FormatInt(north.ID, 10),
		map[string]any{"role": "user", "flags": []string{"launch_missiles"}}), "body.flags")
	wantField(t, "unknown role", s.do(t, s.token, "PUT", base+strconv.FormatInt(north.ID, 10),
		map[string]any{"role": "owner"}), "body.role")
	var m struct {
		Site  string
		Role  string
		Flags []string
	}
	wantStatus(t, "olive in north", s.do(t, s.token, "PUT", base+strconv.FormatInt(north.ID, 10),
		map[string]any{"role": "user", "flags": []string{"view_overview", "view_data", "perform_operations"}}), 200, &m)
	if m.Site != "north" || m.Role != "user" || len(m.Flags) != 3 {
		t.Errorf("membership: %+v", m)
	}
	if r := s.do(t, s.token, "PUT", base+"999999", map[string]any{"role": "admin"}); r.code != http.StatusNotFound {
		t.Errorf("membership in no site: %d", r.code)
	}
	wantStatus(t, "olive in sud", s.do(t, s.token, "PUT", base+strconv.FormatInt(south.ID, 10), map[string]any{"role": "admin"}), 200, nil)
	wantStatus(t, "olive out of sud", s.do(t, s.token, "DELETE", base+strconv.FormatInt(south.ID, 10), nil), 204, nil)
	var ms struct{ Items []struct{ Site string } }
	wantStatus(t, "olive's memberships", s.do(t, s.token, "GET", fmt.Sprintf("/api/v1/users/%d/memberships", olive.ID), nil), 200, &ms)
	if len(ms.Items) != 1 || ms.Items[0].Site != "north" {
		t.Errorf("olive's memberships: %+v", ms)
	}

	// Tokens: the admin makes one for olive; olive makes a read token.
	var oliveTok struct {
		ID    int64
		Token string
		Scope string
		User  string
	}
	wantField(t, "bad scope", s.do(t, s.token, "POST", "/api/v1/tokens", map[string]any{"name": "x", "scope": "write"}), "body.scope")
	wantField(t, "no name", s.do(t, s.token, "POST", "/api/v1/tokens", map[string]any{"name": ""}), "body.name")
	wantField(t, "expired already", s.do(t, s.token, "POST", "/api/v1/tokens",
		map[string]any{"name": "x", "expires_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}), "body.expires_at")
	wantField(t, "no such user", s.do(t, s.token, "POST", "/api/v1/tokens", map[string]any{"name": "x", "user": "nobody"}), "body.user")
	wantStatus(t, "token for olive", s.do(t, s.token, "POST", "/api/v1/tokens",
		map[string]any{"name": "ci", "user": "olive", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}), 201, &oliveTok)
	if !strings.HasPrefix(oliveTok.Token, auth.TokenPrefix) || oliveTok.Scope != "read-write" || oliveTok.User != "olive" {
		t.Fatalf("olive's token: %+v", oliveTok)
	}
	var readTok struct {
		ID    int64
		Token string
		Scope string
	}
	wantStatus(t, "olive's read token", s.do(t, oliveTok.Token, "POST", "/api/v1/tokens", map[string]any{"name": "dash", "scope": "read"}), 201, &readTok)
	if readTok.Scope != "read" || readTok.Token == "" {
		t.Fatalf("read token: %+v", readTok)
	}
	var toks struct {
		Items []struct {
			ID         int64
			User       string
			Scope      string
			Token      string
			LastUsedAt *time.Time `json:"last_used_at"`
		}
	}
	wantStatus(t, "olive's tokens", s.do(t, oliveTok.Token, "GET", "/api/v1/tokens", nil), 200, &toks)
	if len(toks.Items) != 2 || toks.Items[0].Scope != "read" || toks.Items[1].Token != "" || toks.Items[1].LastUsedAt == nil {
		t.Errorf("olive's tokens: %+v", toks)
	}
	forbidden(t, "olive lists every token", s.do(t, oliveTok.Token, "GET", "/api/v1/tokens?user=*", nil))
	forbidden(t, "olive makes admin's token", s.do(t, oliveTok.Token, "POST", "/api/v1/tokens", map[string]any{"name": "x", "user": "admin"}))
	wantStatus(t, "every token", s.do(t, s.token, "GET", "/api/v1/tokens?user=*", nil), 200, &toks)
	if len(toks.Items) != 3 {
		t.Errorf("every token: %+v", toks)
	}
	wantStatus(t, "olive's tokens for the admin", s.do(t, s.token, "GET", "/api/v1/tokens?user=olive", nil), 200, &toks)
	if len(toks.Items) != 2 || toks.Items[0].User != "olive" {
		t.Errorf("olive's tokens for the admin: %+v", toks)
	}
	admins, err := s.Store.ListAllAPITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminTokID := admins[len(admins)-1].ID // the oldest: the admin's
	if r := s.do(t, oliveTok.Token, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", adminTokID), nil); r.code != http.StatusNotFound {
		t.Errorf("olive revokes the admin's token: %d, want 404", r.code)
	}

	// The read token reads, and may not write: 403 token_scope, audited.
	wantStatus(t, "read token reads", s.do(t, readTok.Token, "GET", "/api/v1/tokens", nil), 200, nil)
	if r := s.streamHeaders(t, readTok.Token, "/api/v1/events/stream"); r.code != http.StatusOK {
		t.Errorf("read token's event stream: %d %s", r.code, r.body)
	}
	for _, r := range []struct{ method, path string }{{"POST", "/api/v1/tokens"}, {"DELETE", fmt.Sprintf("/api/v1/tokens/%d", readTok.ID)}} {
		var p adminProblem
		wantStatus(t, "read token "+r.method, s.do(t, readTok.Token, r.method, r.path, map[string]any{"name": "x"}), 403, &p)
		if p.Code != "token_scope" || p.Detail != "this token is read-only" {
			t.Errorf("read token %s: %+v", r.method, p)
		}
	}
	denied, err := s.Store.ListAudit(ctx, store.AuditFilter{UserID: olive.ID, Action: "access.denied"})
	if err != nil || len(denied) != 2 || denied[0].Target != fmt.Sprintf("DELETE /api/v1/tokens/%d", readTok.ID) {
		t.Errorf("refusals of the read token: %+v %v", denied, err)
	}

	// Devices: two provisioned endpoints, one per site; olive reaches
	// north's only.
	if _, err := s.Store.ProvisionEndpoints(ctx, []string{"dev-n1", "dev-s1", "other-1"}, store.AuditEntry{Actor: "test", Action: "endpoint.create"}); err != nil {
		t.Fatal(err)
	}
	var moved struct{ Moved int64 }
	wantField(t, "assign nothing", s.do(t, s.token, "POST", fmt.Sprintf("/api/v1/sites/%d/endpoints", north.ID), map[string]any{}), "body.endpoints")
	wantStatus(t, "assign dev-n1", s.do(t, s.token, "POST", fmt.Sprintf("/api/v1/sites/%d/endpoints", north.ID),
		map[string]any{"endpoints": []string{"dev-n1"}}), 200, &moved)
	if moved.Moved != 1 {
		t.Errorf("moved %d, want 1", moved.Moved)
	}
	wantStatus(t, "assign dev-s*", s.do(t, s.token, "POST", fmt.Sprintf("/api/v1/sites/%d/endpoints", south.ID),
		map[string]any{"prefix": "dev-s"}), 200, &moved)
	if moved.Moved != 1 {
		t.Errorf("moved %d, want 1", moved.Moved)
	}
	forbidden(t, "olive assigns (no manage_devices)", s.do(t, oliveTok.Token, "POST", fmt.Sprintf("/api/v1/sites/%d/endpoints", north.ID),
		map[string]any{"prefix": "dev"}))

	// Queued operations across devices.
	var opN, opS struct{ ID int64 }
	wantStatus(t, "queue on dev-n1", s.do(t, s.token, "POST", "/api/v1/endpoints/dev-n1/operations", map[string]any{"kind": "read", "path": "/3/0"}), 202, &opN)
	wantStatus(t, "queue on dev-s1", s.do(t, s.token, "POST", "/api/v1/endpoints/dev-s1/operations", map[string]any{"kind": "read", "path": "/3/0"}), 202, &opS)
	for range 3 {
		wantStatus(t, "queue more on dev-s1", s.do(t, s.token, "POST", "/api/v1/endpoints/dev-s1/operations", map[string]any{"kind": "read", "path": "/3/0/0"}), 202, nil)
	}
	var ops struct {
		Items []struct {
			ID       int64
			Endpoint string
			Status   string
		}
		NextBefore int64 `json:"next_before"`
		Next       string
	}
	wantStatus(t, "olive's operations", s.do(t, oliveTok.Token, "GET", "/api/v1/operations", nil), 200, &ops)
	if len(ops.Items) != 1 || ops.Items[0].Endpoint != "dev-n1" {
		t.Errorf("olive's operations: %+v", ops)
	}
	if r := s.do(t, oliveTok.Token, "DELETE", fmt.Sprintf("/api/v1/operations/%d", opS.ID), nil); r.code != http.StatusNotFound {
		t.Errorf("olive cancels sud's operation: %d %s, want 404", r.code, r.body)
	}
	var cancelled struct{ Status string }
	wantStatus(t, "olive cancels north's", s.do(t, oliveTok.Token, "DELETE", fmt.Sprintf("/api/v1/operations/%d", opN.ID), nil), 200, &cancelled)
	if cancelled.Status != "CANCELLED" {
		t.Errorf("cancelled operation: %+v", cancelled)
	}
	r := s.do(t, s.token, "GET", "/api/v1/operations?prefix=dev-s&limit=2", nil)
	wantStatus(t, "admin's first page", r, 200, &ops)
	if len(ops.Items) != 2 || ops.Next == "" || !strings.Contains(r.header.Get("Link"), `rel="next"`) {
		t.Fatalf("first page: %+v %q", ops, r.header.Get("Link"))
	}
	seen := map[int64]bool{}
	for _, o := range ops.Items {
		seen[o.ID] = true
	}
	next := ops.Next
	ops.Next = ""
	wantStatus(t, "admin's second page", s.do(t, s.token, "GET", next, nil), 200, &ops)
	for _, o := range ops.Items {
		if seen[o.ID] || o.Endpoint != "dev-s1" {
			t.Errorf("second page: %+v", ops.Items)
		}
	}
	if len(ops.Items) != 2 || ops.Next != "" {
		t.Errorf("second page: %+v", ops)
	}
	wantStatus(t, "cancelled ones", s.do(t, s.token, "GET", "/api/v1/operations?status=CANCELLED", nil), 200, &ops)
	if len(ops.Items) != 1 || ops.Items[0].ID != opN.ID {
		t.Errorf("cancelled: %+v", ops)
	}

	// Object definitions.
	var objs struct{ Items []struct{ ID int } }
	wantStatus(t, "objects", s.do(t, oliveTok.Token, "GET", "/api/v1/objects", nil), 200, &objs)
	if len(objs.Items) < 5 {
		t.Errorf("objects: %+v", objs)
	}
	var temp struct {
		Name      string
		Multiple  bool
		Resources []struct {
			ID         int
			Type       string
			Units      string
			Operations string
		}
	}
	wantStatus(t, "object 3303", s.do(t, oliveTok.Token, "GET", "/api/v1/objects/3303", nil), 200, &temp)
	found := false
	for _, r := range temp.Resources {
		if r.ID == 5700 {
			found = r.Type == "float" && r.Operations == "R"
		}
	}
	if !found || !temp.Multiple {
		t.Errorf("object 3303: %+v", temp)
	}
	if r := s.do(t, oliveTok.Token, "GET", "/api/v1/objects/65000", nil); r.code != http.StatusNotFound {
		t.Errorf("unknown object: %d", r.code)
	}

	// Users: disable, admin flag, password; not oneself.
	var me struct{ ID int64 }
	wantStatus(t, "users", s.do(t, s.token, "GET", "/api/v1/users", nil), 200, nil)
	users, _ := s.Store.ListUsers(ctx)
	for _, u := range users {
		if u.IsAdmin {
			me.ID = u.ID
		}
	}
	wantField(t, "disable oneself", s.do(t, s.token, "PATCH", fmt.Sprintf("/api/v1/users/%d", me.ID), map[string]any{"disabled": true}), "body.disabled")
	if r := s.do(t, s.token, "DELETE", fmt.Sprintf("/api/v1/users/%d", me.ID), nil); r.code != http.StatusConflict {
		t.Errorf("delete oneself: %d", r.code)
	}
	wantStatus(t, "disable olive", s.do(t, s.token, "PATCH", fmt.Sprintf("/api/v1/users/%d", olive.ID),
		map[string]any{"disabled": true, "password": "another-password"}), 200, &olive)
	if !olive.Disabled {
		t.Errorf("olive: %+v", olive)
	}
	if r := s.do(t, oliveTok.Token, "GET", "/api/v1/tokens", nil); r.code != http.StatusUnauthorized {
		t.Errorf("disabled olive's token: %d, want 401", r.code)
	}

	// The audit log: filters and paging.
	var audit struct {
		Items []struct {
			ID     int64
			Action string
			Actor  string
			Target string
		}
		NextBefore int64 `json:"next_before"`
		Next       string
	}
	wantStatus(t, "audit", s.do(t, s.token, "GET", "/api/v1/audit?action=site.create&limit=1", nil), 200, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Target != "sud" && audit.Items[0].Target != "south" || audit.Next == "" {
		t.Fatalf("audit page 1: %+v", audit)
	}
	first := audit.Items[0].ID
	next = audit.Next
	audit.Next = ""
	wantStatus(t, "audit page 2", s.do(t, s.token, "GET", next, nil), 200, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Target != "north" || audit.Items[0].ID >= first || audit.Next != "" {
		t.Errorf("audit page 2: %+v", audit)
	}
	wantStatus(t, "olive's audit", s.do(t, s.token, "GET", "/api/v1/audit?user=olive&action=token.create", nil), 200, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != "olive" {
		t.Errorf("olive's audit: %+v", audit)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	wantStatus(t, "audit since", s.do(t, s.token, "GET", "/api/v1/audit?since="+future, nil), 200, &audit)
	if len(audit.Items) != 0 {
		t.Errorf("audit since an hour ahead: %+v", audit)
	}
	wantStatus(t, "audit until", s.do(t, s.token, "GET", "/api/v1/audit?action=user.create&until="+future, nil), 200, &audit)
	if len(audit.Items) != 1 {
		t.Errorf("audit until an hour ahead: %+v", audit)
	}
	wantField(t, "audit of nobody", s.do(t, s.token, "GET", "/api/v1/audit?user=nobody", nil), "query.user")
	for _, action := range []string{"site.create", "site.rename", "user.create", "membership.set", "membership.delete",
		"token.create", "endpoint.assign", "user.disable", "user.passwd"} {
		es, err := s.Store.ListAudit(ctx, store.AuditFilter{Action: action})
		if err != nil || len(es) == 0 || !strings.Contains(string(es[0].Detail), `"surface":"api"`) {
			t.Errorf("audit of %s: %+v %v", action, es, err)
		}
	}

	// Deletions.
	wantStatus(t, "delete olive", s.do(t, s.token, "DELETE", fmt.Sprintf("/api/v1/users/%d", olive.ID), nil), 204, nil)
	if r := s.do(t, s.token, "GET", fmt.Sprintf("/api/v1/users/%d", olive.ID), nil); r.code != http.StatusNotFound {
		t.Errorf("deleted user: %d", r.code)
	}
	wantStatus(t, "delete sud", s.do(t, s.token, "DELETE", fmt.Sprintf("/api/v1/sites/%d", south.ID), nil), 204, nil)
	var sites struct{ Items []struct{ Name string } }
	wantStatus(t, "sites", s.do(t, s.token, "GET", "/api/v1/sites", nil), 200, &sites)
	if len(sites.Items) != 1 || sites.Items[0].Name != "north" {
		t.Errorf("sites: %+v", sites)
	}

	// A body over the limit: 413.
	big := map[string]any{"name": strings.Repeat("x", 2<<20)}
	if r := s.do(t, s.token, "POST", "/api/v1/sites", big); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d %s, want 413", r.code, r.body)
	} else if p := r.problem(t); p.Code != "too_large" {
		t.Errorf("2 MiB body: %+v", p)
	}
}

// TestAPIRateLimit checks that a token over its request rate gets 429
// with Retry-After, and that another token is not held back by it.
func TestAPIRateLimit(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.APIRate = 1 // bursts of 2
	s := startServer(t, cfg, Tuning{})
	_, other := s.userToken(t, "other", true)
	var limited response
	for range 5 {
		if r := s.do(t, s.token, "GET", "/api/v1/objects", nil); r.code == http.StatusTooManyRequests {
			limited = r
			break
		}
	}
	if limited.code != http.StatusTooManyRequests {
		t.Fatal("5 requests at once at 1/s, bursts of 2: none refused")
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	if p := limited.problem(t); p.Code != "rate_limited" || p.Status != 429 {
		t.Errorf("429 problem: %+v", p)
	}
	if r := s.do(t, other, "GET", "/api/v1/objects", nil); r.code != http.StatusOK {
		t.Errorf("another token: %d", r.code)
	}
}

// TestAPIEndpointFilters checks the endpoint list's filters and cursor,
// and the downsampled history, on SQLite and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, PostgreSQL.
func TestAPIEndpointFilters(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { runAPIEndpointFilters(t, "") })
	t.Run("postgres", func(t *testing.T) { runAPIEndpointFilters(t, storetest.PostgresURL(t)) })
}

func runAPIEndpointFilters(t *testing.T, dbURL string) {
	cfg := testConfig(t, t.TempDir())
	cfg.DatabaseURL = dbURL
	s := startServer(t, cfg, Tuning{})
	f := startFleet(t, s, 3, nil)
	eps := []string{f.Device(0).Endpoint(), f.Device(1).Endpoint(), f.Device(2).Endpoint()}
	var first struct {
		FirmwareVersion string `json:"firmware_version"`
		Transport       string
	}
	eventually(t, 5*time.Second, "the devices online", func() bool {
		var l struct{ Total int }
		return s.call(t, "GET", "/api/v1/endpoints?online=true", nil, &l) == 200 && l.Total == 3
	})
	wantStatus(t, "device 0", s.do(t, s.token, "GET", "/api/v1/endpoints/"+eps[0], nil), 200, &first)
	s.assign(t, eps[1], s.site(t, "east"))
	if _, err := s.Store.ProvisionEndpoints(context.Background(), []string{"zz-offline"}, store.AuditEntry{Actor: "test", Action: "endpoint.create"}); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Items []struct{ Name string }
		Total int
		Next  string
		After string `json:"next_after"`
	}
	names := func(q string) []string {
		t.Helper()
		var p page
		wantStatus(t, q, s.do(t, s.token, "GET", "/api/v1/endpoints"+q, nil), 200, &p)
		var out []string
		for _, it := range p.Items {
			out = append(out, it.Name)
		}
		return out
	}
	for q, want := range map[string]int{
		"":                       4,
		"?object=3303":           3,
		"?object=3":              3,
		"?object=33":             0,
		"?transport=udp":         4, // provisioned: udp until it talks
		"?transport=dtls":        0,
		"?site=east":             1,
		"?prefix=zz-":            1,
		"?online=false":          1,
		"?firmware_version=none": 0,
	} {
		if got := names(q); len(got) != want {
			t.Errorf("endpoints%s: %v, want %d", q, got, want)
		}
	}
	if first.FirmwareVersion != "" {
		if got := names("?firmware_version=" + url.QueryEscape(first.FirmwareVersion)); len(got) != 3 {
			t.Errorf("endpoints of firmware %s: %v", first.FirmwareVersion, got)
		}
	}
	if got := names("?site=east"); len(got) != 1 || got[0] != eps[1] {
		t.Errorf("east's endpoints: %v", got)
	}
	wantField(t, "unknown site", s.do(t, s.token, "GET", "/api/v1/endpoints?site=west", nil), "query.site")
	wantField(t, "bad object", s.do(t, s.token, "GET", "/api/v1/endpoints?object=70000", nil), "query.object")

	// The cursor walks every endpoint once, in name order; offset paging
	// still works.
	var walked []string
	next := "/api/v1/endpoints?limit=1"
	for next != "" {
		var p page
		wantStatus(t, next, s.do(t, s.token, "GET", next, nil), 200, &p)
		if p.Total != 4 || len(p.Items) != 1 {
			t.Fatalf("%s: %+v", next, p)
		}
		walked = append(walked, p.Items[0].Name)
		next = p.Next
		if len(walked) > 4 {
			t.Fatalf("cursor walk does not end: %v", walked)
		}
	}
	all := names("")
	if strings.Join(walked, " ") != strings.Join(all, " ") {
		t.Errorf("cursor walk %v, want %v", walked, all)
	}
	if got := names("?limit=2&offset=2"); strings.Join(got, " ") != strings.Join(all[2:], " ") {
		t.Errorf("offset page %v, want %v", got, all[2:])
	}

	// A downsampled history: at most N points, oldest first.
	path := "/api/v1/endpoints/" + eps[0] + "/history?path=/3303/0/5700"
	eventually(t, 10*time.Second, "12 temperatures", func() bool {
		var h struct{ Values []any }
		return s.call(t, "GET", path, nil, &h) == 200 && len(h.Values) >= 12
	})
	for _, n := range []int{1, 2, 5} {
		var h struct {
			Values []any
			Points []struct {
				Time  time.Time
				Value float64
			}
		}
		wantStatus(t, "history points", s.do(t, s.token, "GET", path+"&points="+strconv.Itoa(n), nil), 200, &h)
		if len(h.Points) != n || len(h.Values) != 0 {
			t.Errorf("points=%d: %d points, %d values", n, len(h.Points), len(h.Values))
		}
		for i := 1; i < len(h.Points); i++ {
			if h.Points[i].Time.Before(h.Points[i-1].Time) {
				t.Errorf("points=%d: not oldest first: %+v", n, h.Points)
			}
		}
	}
}
