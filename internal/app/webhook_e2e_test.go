package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/webhook"
)

// hookSecret is the secret of the tests' webhooks.
const hookSecret = "test-secret-0123456789"

// hookDelivery is one request a receiver got, verified.
type hookDelivery struct {
	id      string // X-Flownexus-Delivery
	payload webhook.Payload
	status  int // what the receiver answered
}

// receiver is a webhook receiver: it checks every request's signature,
// answers with status (nil: 204) and records what it got.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	status func(attempt int) int // by the attempt of this delivery id, from 1

	mu       sync.Mutex
	got      []hookDelivery
	ok       int // requests answered 2xx
	attempts map[string]int
	bad      int // requests with a bad signature or body
}

func newReceiver(t testing.TB, status func(attempt int) int) *receiver {
	r := &receiver{t: t, status: status, attempts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p webhook.Payload
	ok := webhook.Verify([]byte(hookSecret), req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature),
		body, time.Now(), 5*time.Minute) && json.Unmarshal(body, &p) == nil && req.Header.Get(webhook.HeaderEvent) == p.Topic &&
		req.Method == http.MethodPost && req.Header.Get("Content-Type") == "application/json"
	id := req.Header.Get(webhook.HeaderDelivery)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok {
		r.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.attempts[id]++
	code := http.StatusNoContent
	if r.status != nil {
		code = r.status(r.attempts[id])
	}
	r.got = append(r.got, hookDelivery{id: id, payload: p, status: code})
	if code/100 == 2 {
		r.ok++
	}
	w.WriteHeader(code)
}

// delivered returns the deliveries answered 2xx.
func (r *receiver) delivered() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookDelivery
	for _, d := range r.got {
		if d.status/100 == 2 {
			out = append(out, d)
		}
	}
	return out
}

// okCount is len(r.delivered()) without the copy.
func (r *receiver) okCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) badRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// webhookServer starts a server whose webhooks may reach the tests'
// loopback receivers and retry fast.
func webhookServer(t testing.TB, tune WebhookTuning) *server {
	return webhookServerOn(t, "", tune)
}

// webhookServerOn is webhookServer on the database at url ("": a fresh
// SQLite file).
func webhookServerOn(t testing.TB, url string, tune WebhookTuning) *server {
	cfg := testConfig(t, t.TempDir())
	cfg.DatabaseURL = url
	cfg.WebhookAllowPrivate = true
	if tune.Backoff == nil {
		tune.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	}
	return startServer(t, cfg, Tuning{Webhooks: tune})
}

type webhookJSON struct {
	ID       int64    `json:"id"`
	URL      string   `json:"url"`
	Topics   []string `json:"topics"`
	Enabled  bool     `json:"enabled"`
	Failures int      `json:"failures"`
	Secret   string   `json:"secret"`
	Site     string   `json:"site"`
}

// subscribe creates a webhook to r with token.
func (s *server) subscribe(t *testing.T, token string, r *receiver, body map[string]any) webhookJSON {
	t.Helper()
	body["url"], body["secret"] = r.srv.URL+"/hook", hookSecret
	res := s.do(t, token, "POST", "/api/v1/webhooks", body)
	var w webhookJSON
	if res.code != http.StatusCreated || json.Unmarshal(res.body, &w) != nil || w.ID == 0 || !w.Enabled || w.Secret != "" {
		t.Fatalf("create webhook: %d %s", res.code, res.body)
	}
	return w
}

func TestWebhookDeliversValuesAndOperations(t *testing.T) {
	s := webhookServer(t, WebhookTuning{})
	r := newReceiver(t, nil)
	w := s.subscribe(t, s.token, r, map[string]any{"topics": []string{"values", "operation"}})
	f := startFleet(t, s, 1, nil)
	ep := f.Device(0).Endpoint()

	eventually(t, 15*time.Second, "values delivered", func() bool {
		for _, d := range r.delivered() {
			if d.payload.Topic == "values" && d.payload.Endpoint == ep && d.payload.ID > 0 {
				return true
			}
		}
		return false
	})
	op := s.enqueue(t, ep, map[string]any{"kind": "read", "path": "/3/0/0"})
	eventually(t, 15*time.Second, "the operation's status changes delivered", func() bool {
		seen := map[string]bool{}
		for _, d := range r.delivered() {
			var data struct {
				ID     int64  `json:"id"`
				Status string `json:"status"`
			}
			if d.payload.Topic == "operation" && json.Unmarshal(d.payload.Data, &data) == nil && data.ID == op.ID {
				seen[data.Status] = true
			}
		}
		return seen["QUEUED"] && seen["SENDING"] && seen["CONFIRMED"]
	})
	if n := r.badRequests(); n != 0 {
		t.Fatalf("%d deliveries with a bad signature", n)
	}
	m := s.metrics(t)
	for _, name := range []string{"flownexus_event_log_appended_total", "flownexus_event_log_dropped_total 0",
		"flownexus_webhook_deliveries_total", "flownexus_webhook_delivery_failures_total 0"} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// A ping is sent now and its outcome returned.
	var ping struct {
		OK         bool   `json:"ok"`
		StatusCode int    `json:"status_code"`
		Topic      string `json:"topic"`
	}
	if code := s.call(t, "POST", fmt.Sprintf("/api/v1/webhooks/%d/ping", w.ID), nil, &ping); code != 200 ||
		!ping.OK || ping.StatusCode != http.StatusNoContent || ping.Topic != "ping" {
		t.Fatalf("ping: %d %+v", code, ping)
	}
	type deliveriesJSON struct {
		Items []struct {
			ID      int64 `json:"id"`
			EventID int64 `json:"event_id"`
			OK      bool  `json:"ok"`
		} `json:"items"`
		NextBefore int64 `json:"next_before"`
	}
	var page, next, all deliveriesJSON
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=2", w.ID), nil, &page); code != 200 ||
		len(page.Items) != 2 || page.NextBefore != page.Items[1].ID || page.Items[0].ID <= page.Items[1].ID {
		t.Fatalf("deliveries: %d %+v", code, page)
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=2&before=%d", w.ID, page.NextBefore), nil, &next); code != 200 ||
		len(next.Items) == 0 || next.Items[0].ID >= page.NextBefore {
		t.Fatalf("next page: %d %+v", code, next)
	}
	s.call(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d/deliveries?limit=500", w.ID), nil, &all)
	pinged := false
	for _, d := range all.Items {
		pinged = pinged || (d.EventID == 0 && d.OK)
		if !d.OK {
			t.Errorf("a failed attempt logged: %+v", d)
		}
	}
	if !pinged {
		t.Errorf("the ping is not in the delivery log: %+v", all)
	}

	// Changes: topics, a new secret (shown once), then gone.
	var changed webhookJSON
	if code := s.call(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", w.ID),
		map[string]any{"topics": []string{"firmware"}, "rotate_secret": true}, &changed); code != 200 ||
		len(changed.Topics) != 1 || changed.Topics[0] != "firmware" || !strings.HasPrefix(changed.Secret, "whsec_") {
		t.Fatalf("change: %d %+v", code, changed)
	}
	var list struct {
		Items []webhookJSON `json:"items"`
	}
	if code := s.call(t, "GET", "/api/v1/webhooks", nil, &list); code != 200 || len(list.Items) != 1 || list.Items[0].Secret != "" {
		t.Fatalf("list: %d %+v", code, list)
	}
	if code := s.call(t, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", w.ID), nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d", w.ID), nil, nil); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}

	// Field errors name the field.
	var p struct {
		Status int `json:"status"`
		Errors []struct {
			Location string `json:"location"`
		} `json:"errors"`
	}
	code := s.call(t, "POST", "/api/v1/webhooks", map[string]any{"url": "gopher://x", "topics": []string{"nope"}}, &p)
	if code != 400 || len(p.Errors) != 2 || p.Errors[0].Location != "body.url" || p.Errors[1].Location != "body.topics" {
		t.Fatalf("invalid webhook: %d %+v", code, p)
	}
}

// TestWebhookRetriesUntilDelivered: a receiver failing each delivery
// twice gets every event once more, on the third attempt.
func TestWebhookRetriesUntilDelivered(t *testing.T) {
	s := webhookServer(t, WebhookTuning{DisableAfter: 100})
	r := newReceiver(t, func(attempt int) int {
		if attempt <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	w := s.subscribe(t, s.token, r, map[string]any{"topics": []string{"operation"}})
	f := startFleet(t, s, 1, nil)
	ep := f.Device(0).Endpoint()
	op := s.enqueue(t, ep, map[string]any{"kind": "read", "path": "/3/0/0"})
	s.waitQueued(t, ep, op.ID, "CONFIRMED")

	eventually(t, 15*time.Second, "three events delivered", func() bool { return len(r.delivered()) >= 3 })
	time.Sleep(500 * time.Millisecond) // room for a duplicate, were there one
	perEvent := map[int64]int{}
	for _, d := range r.delivered() {
		perEvent[d.payload.ID]++
	}
	if len(perEvent) != 3 {
		t.Fatalf("delivered events %v, want the operation's 3 status changes", perEvent)
	}
	for id, n := range perEvent {
		if n != 1 {
			t.Errorf("event %d delivered %d times", id, n)
		}
	}
	r.mu.Lock()
	for id, n := range r.attempts {
		if n != 3 {
			t.Errorf("delivery %s: %d attempts, want 3", id, n)
		}
	}
	r.mu.Unlock()
	hook, err := s.Store.GetWebhook(context.Background(), w.ID)
	if err != nil || !hook.Enabled || hook.Failures != 0 {
		t.Fatalf("webhook after the retries: %+v, %v", hook, err)
	}
}

// TestWebhookDisabledWhenReceiverDown: a receiver that never answers 2xx
// has its webhook disabled after the policy's failures in a row, with an
// audit entry; deliveries stop.
func TestWebhookDisabledWhenReceiverDown(t *testing.T) {
	s := webhookServer(t, WebhookTuning{DisableAfter: 4, MaxAttempts: 3})
	r := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	w := s.subscribe(t, s.token, r, map[string]any{"topics": []string{"values"}})
	startFleet(t, s, 2, nil)

	var got webhookJSON
	eventually(t, 20*time.Second, "the webhook disabled", func() bool {
		return s.call(t, "GET", fmt.Sprintf("/api/v1/webhooks/%d", w.ID), nil, &got) == 200 && !got.Enabled
	})
	if got.Failures < 4 {
		t.Fatalf("disabled after %d failures, want 4", got.Failures)
	}
	entries, err := s.Store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	disabled := 0
	for _, e := range entries {
		if e.Action == webhook.ActionDisable && e.Target == w.URL {
			disabled++
		}
	}
	if disabled != 1 {
		t.Fatalf("%d audit entries %s, want 1", disabled, webhook.ActionDisable)
	}
	time.Sleep(300 * time.Millisecond) // attempts in flight end
	n := r.requests()
	time.Sleep(time.Second)
	if m := r.requests(); m != n {
		t.Fatalf("%d more deliveries after the webhook was disabled", m-n)
	}
	// Enabling it again resets the failures.
	if code := s.call(t, "PATCH", fmt.Sprintf("/api/v1/webhooks/%d", w.ID), map[string]any{"enabled": true}, &got); code != 200 ||
		!got.Enabled || got.Failures != 0 {
		t.Fatalf("enable: %d %+v", code, got)
	}
}

// TestWebhookSiteScope: a site user's webhook gets the events of its
// site's devices and none of another site's, while an administrator's
// gets both.
func TestWebhookSiteScope(t *testing.T) {
	s := webhookServer(t, WebhookTuning{})
	ctx := context.Background()
	f := newFleet(t, s, 2, nil)
	north, south := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	if _, err := s.Store.ProvisionEndpoints(ctx, []string{north, south}, store.AuditEntry{Actor: "test", Action: "endpoint.provision"}); err != nil {
		t.Fatal(err)
	}
	for ep, name := range map[string]string{north: "north", south: "south"} {
		site, err := s.Store.CreateSite(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Store.GetEndpoint(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Store.SetEndpointSite(ctx, e.ID, site.ID); err != nil {
			t.Fatal(err)
		}
		if name == "north" {
			olive, err := s.Store.CreateUser(ctx, "olive", "x", false)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Store.SetMembership(ctx, olive.ID, site.ID, auth.SiteUser, auth.FlagOf(auth.ViewData)); err != nil {
				t.Fatal(err)
			}
		}
	}
	olive, err := s.Store.GetUserByName(ctx, "olive")
	if err != nil {
		t.Fatal(err)
	}
	tok, th, prefix := auth.NewToken()
	if _, err := s.Store.CreateAPIToken(ctx, olive.ID, "test", th, prefix, time.Time{}); err != nil {
		t.Fatal(err)
	}
	mine := newReceiver(t, nil)
	all := newReceiver(t, nil)
	s.subscribe(t, tok, mine, map[string]any{"topics": []string{"values", "registered"}})
	adminHook := s.subscribe(t, s.token, all, map[string]any{"topics": []string{"values", "registered"}})
	// A user sees its own webhooks only; an administrator sees all.
	if res := s.do(t, tok, "GET", fmt.Sprintf("/api/v1/webhooks/%d", adminHook.ID), nil); res.code != 404 {
		t.Fatalf("the site user got the admin's webhook: %d %s", res.code, res.body)
	}
	if res := s.do(t, tok, "DELETE", fmt.Sprintf("/api/v1/webhooks/%d", adminHook.ID), nil); res.code != 404 {
		t.Fatalf("the site user deleted the admin's webhook: %d %s", res.code, res.body)
	}
	for who, want := range map[string]int{tok: 1, s.token: 2} {
		var list struct {
			Items []webhookJSON `json:"items"`
		}
		res := s.do(t, who, "GET", "/api/v1/webhooks", nil)
		if json.Unmarshal(res.body, &list); len(list.Items) != want {
			t.Fatalf("list: %d webhooks, want %d: %s", len(list.Items), want, res.body)
		}
	}
	// Olive may not filter by a site it cannot see: it is unknown to it.
	if res := s.do(t, tok, "POST", "/api/v1/webhooks", map[string]any{"url": mine.srv.URL, "site": "south"}); res.code != 400 {
		t.Fatalf("a webhook on another site: %d %s", res.code, res.body)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.Start(fctx); err != nil {
		t.Fatal(err)
	}
	count := func(r *receiver) map[string]int {
		n := map[string]int{}
		for _, d := range r.delivered() {
			n[d.payload.Endpoint]++
		}
		return n
	}
	eventually(t, 20*time.Second, "values of both sites delivered to the admin", func() bool {
		n := count(all)
		return n[north] >= 5 && n[south] >= 5
	})
	n := count(mine)
	if n[north] == 0 || n[south] != 0 {
		t.Fatalf("the site user's webhook got %v; want %s's events only", n, north)
	}
}

// TestWebhookRefusesInternalAddresses: without --webhook-allow-private a
// webhook may point to no loopback, private or link-local address, by
// address or by a name resolving to one.
func TestWebhookRefusesInternalAddresses(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	for _, url := range []string{"http://127.0.0.1:9/hook", "https://[::1]/", "https://10.0.0.8/", "https://192.168.0.1/",
		"https://169.254.169.254/latest/meta-data/", "https://localhost/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/"} {
		var p struct {
			Errors []struct {
				Location string `json:"location"`
			} `json:"errors"`
		}
		if code := s.call(t, "POST", "/api/v1/webhooks", map[string]any{"url": url}, &p); code != 400 ||
			len(p.Errors) != 1 || p.Errors[0].Location != "body.url" {
			t.Errorf("%s: %d %+v, want 400 naming body.url", url, code, p)
		}
	}
}
