package web

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/store"
)

// dataFixture stores urn:dev:north (in site north) and urn:dev:other (in
// no site), each with n temperatures (/3303/0/5700, one a minute ending
// at t0) and a manufacturer string.
func dataFixture(t *testing.T, e *env, n int) (north, other store.Endpoint) {
	t.Helper()
	ctx := context.Background()
	var err error
	if north, err = e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: "urn:dev:north", RegistrationID: "r1",
		ObjectLinks: "</3/0>,</3303/0>", Time: t0}); err != nil {
		t.Fatal(err)
	}
	e.intoSite(t)
	if other, err = e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: "urn:dev:other", RegistrationID: "r2", Time: t0}); err != nil {
		t.Fatal(err)
	}
	var vals []store.ResourceValue
	for _, ep := range []store.Endpoint{north, other} {
		for i := range n {
			at := t0.Add(-time.Duration(n-i) * time.Minute)
			vals = append(vals, store.ResourceValue{EndpointID: ep.ID, Path: lwm2m.MustParsePath("/3303/0/5700"),
				Value: lwm2m.Float(20 + float64(i%10)/2), ReceivedAt: at})
		}
		vals = append(vals, store.ResourceValue{EndpointID: ep.ID, Path: lwm2m.MustParsePath("/3/0/0"), Value: lwm2m.String("Acme, \"Inc\""), ReceivedAt: t0.Add(-time.Second)})
	}
	if err := e.st.InsertResources(ctx, vals); err != nil {
		t.Fatal(err)
	}
	return north, other
}

func TestHistoryPage(t *testing.T) {
	e := newEnv(t, nil)
	dataFixture(t, e, 2000)
	b := e.loggedIn(t, "olive")
	r := b.get("/devices/urn:dev:north/history?path=/3303/0/5700&range=24h")
	if r.status != 200 {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	m := regexp.MustCompile(`<polyline class="series"[^>]* points="([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no polyline: %s", r.body)
	}
	if pts := strings.Fields(m[1]); len(pts) != chartPoints {
		t.Errorf("chart has %d points, want %d (downsampled from 1439)", len(pts), chartPoints)
	}
	for _, want := range []string{"1439 values", `id="history-values"`, `rel="next"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("history lacks %q", want)
		}
	}
	if strings.Contains(r.body, `style="`) {
		t.Error("an inline style attribute (the CSP forbids them)")
	}
	// The next page follows the first.
	next := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(r.body)
	r2 := b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	if r2.status != 200 || !strings.Contains(r2.body, "First page") {
		t.Errorf("next page: %d", r2.status)
	}
	for _, c := range []struct{ path string }{
		{"/devices/urn:dev:north/history?path=/3303"},
		{"/devices/urn:dev:north/history?path=/3303/0/5700&range=2y"},
		{"/devices/urn:dev:north/history?path=/3303/0/5700&from=2026-12-01T10:00&to=2026-12-01T09:00"},
		{"/devices/urn:dev:north/history?path=/3303/0/5700&after=x"},
	} {
		if r := b.get(c.path); r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", c.path, r.status)
		}
	}
	// Another site's device is not found.
	if r := b.get("/devices/urn:dev:other/history?path=/3303/0/5700"); r.status != http.StatusNotFound {
		t.Errorf("other site's history: %d", r.status)
	}
	// A custom range with few values.
	r = b.get("/devices/urn:dev:north/history?path=/3303/0/5700&from=2026-12-01T09:55&to=2026-12-01T10:00")
	if !strings.Contains(r.body, "5 values") {
		t.Errorf("custom range: %s", r.body)
	}
}

func TestDataExplorerAndExport(t *testing.T) {
	e := newEnv(t, nil)
	dataFixture(t, e, 300)
	b := e.loggedIn(t, "olive")
	if r := b.get("/data"); r.status != 200 || !strings.Contains(r.body, `id="data-form"`) || strings.Contains(r.body, `id="data-count"`) {
		t.Fatalf("empty explorer: %d", r.status)
	}
	q := "path=3303/*/5700&range=24h"
	r := b.get("/data?" + q)
	if r.status != 200 || !strings.Contains(r.body, `<span id="data-count">300</span>`) {
		t.Fatalf("explorer count (olive sees north's 300): %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, "<polyline") || strings.Contains(r.body, "urn:dev:other") {
		t.Errorf("explorer chart or scope: %s", r.body)
	}
	admin := e.loggedIn(t, "admin")
	if r := admin.get("/data?" + q); !strings.Contains(r.body, `<span id="data-count">600</span>`) || strings.Count(r.body, "<polyline") != 2 {
		t.Errorf("admin sees both: %s", r.body)
	}
	// Keyset pages of the table.
	rows := 0
	page := "/data?" + q
	for page != "" {
		r := b.get(page)
		rows += strings.Count(r.body, `<tr><td><a href="/devices/`)
		m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(r.body)
		page = ""
		if m != nil {
			page = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if rows != 300 {
		t.Errorf("pages listed %d rows", rows)
	}
	// CSV: a header and a row per value counted.
	resp := b.get("/data/export?format=csv&" + q)
	if resp.status != 200 || !strings.HasPrefix(resp.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", resp.status, resp.header)
	}
	recs, err := csv.NewReader(strings.NewReader(resp.body)).ReadAll()
	if err != nil || len(recs) != 301 || strings.Join(recs[0], ",") != "endpoint,path,resource,type,value,device_time,received_at" {
		t.Fatalf("csv: %d records, %v, header %v", len(recs), err, recs[0])
	}
	if recs[1][0] != "urn:dev:north" || recs[1][1] != "/3303/0/5700" || recs[1][4] != "20" {
		t.Errorf("first row %v", recs[1])
	}
	// A string with a comma and quotes survives.
	resp = b.get("/data/export?format=csv&path=/3/0/0&range=1h")
	recs, _ = csv.NewReader(strings.NewReader(resp.body)).ReadAll()
	if len(recs) != 2 || recs[1][4] != `Acme, "Inc"` {
		t.Errorf("string export: %v", recs)
	}
	// XLSX, read back.
	resp = b.get("/data/export?format=xlsx&" + q)
	if resp.status != 200 {
		t.Fatalf("xlsx: %d %s", resp.status, resp.body)
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(resp.body)), int64(len(resp.body)))
	if err != nil {
		t.Fatal(err)
	}
	var sheet []byte
	for _, f := range zr.File {
		if f.Name == "xl/worksheets/sheet1.xml" {
			rc, _ := f.Open()
			sheet, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	var ws struct {
		Rows []struct {
			Cells []struct {
				T  string `xml:"t,attr"`
				V  string `xml:"v"`
				IS string `xml:"is>t"`
			} `xml:"c"`
		} `xml:"sheetData>row"`
	}
	if err := xml.Unmarshal(sheet, &ws); err != nil || len(ws.Rows) != 301 {
		t.Fatalf("xlsx sheet: %d rows, %v", len(ws.Rows), err)
	}
	if c := ws.Rows[1].Cells; c[0].IS != "urn:dev:north" || c[4].V != "20" || c[4].T != "" {
		t.Errorf("xlsx first row %+v", c)
	}
	// Events.
	if _, err := e.st.IngestEvent(context.Background(), store.Event{EndpointID: 1, Kind: "send", Time: t0.Add(-time.Minute), ReceivedAt: t0.Add(-time.Minute)}, nil); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/data?kind=events&range=1h"); !strings.Contains(r.body, `<span id="data-count">1</span>`) || !strings.Contains(r.body, "send") {
		t.Errorf("events: %s", r.body)
	}
	resp = b.get("/data/export?format=csv&kind=events&range=1h")
	if recs, _ := csv.NewReader(strings.NewReader(resp.body)).ReadAll(); len(recs) != 2 || recs[1][2] != "send" {
		t.Errorf("events export: %v", recs)
	}
	// Bad input answers the form with the message.
	for _, bad := range []string{"/data?path=abc", "/data?path=3303&kind=nope", "/data?path=3303/0/1/2/3", "/data?range=1y&path=3"} {
		if r := b.get(bad); r.status != http.StatusBadRequest || !strings.Contains(r.body, `id="data-error"`) || !strings.Contains(r.body, `id="data-form"`) {
			t.Errorf("GET %s: %d", bad, r.status)
		}
	}
	if r := b.get("/data/export?format=pdf&" + q); r.status != http.StatusBadRequest {
		t.Errorf("export pdf: %d", r.status)
	}
}

func TestParsePattern(t *testing.T) {
	for in, want := range map[string][4]any{
		"3303/*/5700":  {3303, -1, 5700, ""},
		"/3303/0/5700": {3303, 0, 5700, ""},
		"3":            {3, -1, -1, ""},
		"3/0/7/1":      {-1, -1, -1, "/3/0/7/1"},
	} {
		q := store.ValueQuery{Object: -1, Instance: -1, Resource: -1}
		if err := parsePattern(in, &q); err != nil || q.Object != want[0] || q.Instance != want[1] || q.Resource != want[2] || q.Path != want[3] {
			t.Errorf("%s: %+v %v", in, q, err)
		}
	}
	for _, bad := range []string{"*", "x/1", "70000", "1/2/3/4/5", ""} {
		q := store.ValueQuery{}
		if err := parsePattern(bad, &q); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRoughSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 999: "999 bytes", 1234: "1.2 kB", 12345678: "12 MB", 720000000: "720 MB"} {
		if got := roughSize(n); got != want {
			t.Errorf("roughSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// liveReader opens /live for b and returns its lines as they come.
func liveReader(t *testing.T, b *browser, path string) (<-chan string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, resp
}

// nextData returns the next data: line, failing after a while.
func nextData(t *testing.T, lines <-chan string) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return ""
			}
			if strings.HasPrefix(l, "data: ") {
				return l
			}
		case <-timeout:
			t.Fatal("no data line")
		}
	}
}

func TestLiveStream(t *testing.T) {
	defer func(d time.Duration) { liveKeepAlive = d }(liveKeepAlive)
	liveKeepAlive = 100 * time.Millisecond
	bus := &events.Bus{}
	e := newEnv(t, func(c *Config) { c.Events = bus })
	dataFixture(t, e, 1)
	b := e.loggedIn(t, "olive")
	lines, resp := liveReader(t, b, "/live")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: %d %v", resp.StatusCode, resp.Header)
	}
	bus.Publish(events.Event{Topic: events.TopicRegistered, Time: t0, Endpoint: "urn:dev:other", Data: events.RegistrationEvent{RegistrationID: "x"}})
	bus.Publish(events.Event{Topic: events.TopicOperation, Time: t0, Endpoint: "urn:dev:north", Data: events.OperationEvent{ID: 7, Status: "CONFIRMED"}})
	if l := nextData(t, lines); !strings.Contains(l, `"endpoint":"urn:dev:north"`) || !strings.Contains(l, `"status":"CONFIRMED"`) {
		t.Errorf("first message (the other site's skipped): %s", l)
	}
	// One device only; another site's device is not found.
	if r := b.get("/live?endpoint=urn:dev:other"); r.status != http.StatusNotFound {
		t.Errorf("live of another site's device: %d", r.status)
	}
	if r := b.get("/live?topic=bogus"); r.status != http.StatusBadRequest {
		t.Errorf("unknown topic: %d", r.status)
	}
	one, _ := liveReader(t, b, "/live?endpoint="+url.QueryEscape("urn:dev:north")+"&topic=values")
	bus.Publish(events.Event{Topic: events.TopicOperation, Time: t0, Endpoint: "urn:dev:north", Data: events.OperationEvent{ID: 8}})
	bus.Publish(events.Event{Topic: events.TopicValues, Time: t0, Endpoint: "urn:dev:north", Data: events.ValuesEvent{Kind: "send"}})
	if l := nextData(t, one); !strings.Contains(l, `"kind":"send"`) {
		t.Errorf("narrowed stream: %s", l)
	}
	// Logging out ends the stream at the next keep-alive.
	tok := b.csrf("/")
	b.do(http.MethodPost, "/logout", url.Values{CSRFField: {tok}}, nil)
	done := time.After(5 * time.Second)
	for closed := false; !closed; {
		select {
		case _, ok := <-lines:
			closed = !ok
		case <-done:
			t.Fatal("the stream outlived its session")
		}
	}
	// CloseStreams ends the others.
	admin := e.loggedIn(t, "admin")
	al, _ := liveReader(t, admin, "/live")
	e.w.CloseStreams()
	done = time.After(5 * time.Second)
	for closed := false; !closed; {
		select {
		case _, ok := <-al:
			closed = !ok
		case <-done:
			t.Fatal("CloseStreams left a stream open")
		}
	}
}

func TestDevicePageTree(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Objects = objects.Default() })
	dataFixture(t, e, 3)
	b := e.loggedIn(t, "olive")
	r := b.get("/devices/urn:dev:north")
	for _, want := range []string{`data-live="/live?endpoint=urn%3Adev%3Anorth"`, `data-value-path="/3303/0/5700"`, `data-value-path="/3/0/0"`,
		"Sensor Value", `/devices/urn:dev:north/history?path=%2f3303%2f0%2f5700`, `id="operations"`, "No queued operations", "Manufacturer"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("device page lacks %q: ", want)
		}
	}
	// Without a device manager there are no actions, and posting one is
	// refused.
	if strings.Contains(r.body, `value="write"`) {
		t.Error("actions shown without a device manager")
	}
	tok := b.csrf("/devices/urn:dev:north")
	res := b.do(http.MethodPost, "/devices/urn:dev:north/operations", url.Values{CSRFField: {tok}, "kind": {"read"}, "path": {"/3/0/0"}}, nil)
	if res.status != http.StatusServiceUnavailable {
		t.Errorf("operation without a manager: %d", res.status)
	}
	res = b.do(http.MethodPost, "/devices/urn:dev:other/operations", url.Values{CSRFField: {tok}, "kind": {"read"}, "path": {"/3/0/0"}}, nil)
	if res.status != http.StatusNotFound {
		t.Errorf("operation on another site's device: %d", res.status)
	}
}

func TestFlash(t *testing.T) {
	e := newEnv(t, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/devices/x/operations", nil)
	e.w.setFlash(rec, req, flash{Error: true, Text: strings.Repeat("é", 2000)})
	c := rec.Result().Cookies()[0]
	req = httptest.NewRequest(http.MethodGet, "/devices/x", nil)
	req.AddCookie(c)
	rec = httptest.NewRecorder()
	f := e.w.takeFlash(rec, req)
	if f == nil || !f.Error || len(f.Text) > maxFlash+4 || !strings.HasSuffix(f.Text, "…") {
		t.Fatalf("flash %+v", f)
	}
	if cl := rec.Result().Cookies(); len(cl) != 1 || cl[0].MaxAge >= 0 {
		t.Errorf("flash not cleared: %+v", cl)
	}
}

func TestParseRange(t *testing.T) {
	now := t0.Add(500 * time.Millisecond)
	for _, c := range []struct {
		q        string
		range_   string
		from, to time.Time
	}{
		{"", "24h", t0.Add(time.Second - 24*time.Hour), t0.Add(time.Second)},
		{"range=1h&from=2026-11-01T00:00&to=2026-11-02T00:00", "1h", t0.Add(time.Second - time.Hour), t0.Add(time.Second)},
		{"from=2026-11-01T00:00&to=2026-11-02T00:00:30", "custom", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 30, 0, time.UTC)},
		{"range=custom&to=2026-11-02T00:00:00Z", "custom", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)},
		{"range=custom", "custom", t0.Add(500*time.Millisecond - 24*time.Hour), now},
	} {
		v, _ := url.ParseQuery(c.q)
		tr, err := parseRange(v, now, "24h")
		if err != nil || tr.Range != c.range_ || !tr.From.Equal(c.from) || !tr.To.Equal(c.to) {
			t.Errorf("%q: %+v %v", c.q, tr, err)
		}
	}
}

func init() {
	for k, sc := range map[string]routeScenario{
		"GET /live": {perm: auth.ViewData, path: "/live?endpoint={dev}", device: true, stream: true},
		"POST /devices/{endpoint}/operations": {perm: auth.PerformOperations, path: "/devices/{dev}/operations", device: true,
			form: url.Values{"kind": {"read"}, "path": {"/3/0/0"}}},
		"POST /devices/{endpoint}/operations/{id}/cancel": {perm: auth.PerformOperations, path: "/devices/{dev}/operations/1/cancel", device: true},
		"GET /devices/{endpoint}/history":                 {perm: auth.ViewData, path: "/devices/{dev}/history?path=/3303/0/5700", device: true},
		"GET /data":                                       {perm: auth.ViewData, path: "/data?path=3303/*/5700"},
		"GET /data/export":                                {perm: auth.ViewData, path: "/data/export?format=csv&path=3303/*/5700"},
	} {
		routeScenarios[k] = sc
	}
}

// streamStatus GETs path and returns the status once the headers came,
// without reading the body.
func (b *browser) streamStatus(path string) int {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.e.srv.URL+path, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
