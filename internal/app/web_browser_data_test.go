package app

import (
	"context"
	"encoding/csv"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flownexus/flownexus/internal/simulator"
)

func atoi(s string) int { n, _ := strconv.Atoi(strings.TrimSpace(s)); return n }

// TestDataPagesInBrowser drives the live updates, the device page's
// actions, a history chart and the data explorer's export in headless
// Chromium against a running App and a simulated fleet.
func TestDataPagesInBrowser(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 2, nil)
	ep := f.Device(0).Endpoint()
	eventually(t, 10*time.Second, ep+" online", func() bool {
		var e struct{ Online bool }
		return s.call(t, "GET", "/api/v1/endpoints/"+url.PathEscape(ep), nil, &e) == 200 && e.Online
	})
	b := startBrowser(t, s)

	b.step("log in", chromedp.Navigate(s.base+"/login?next=%2Fdevices"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "admin-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("devices")))
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	b.check("devices")

	// A device that starts now appears in the open list, without a reload.
	b.eval("mark the page", `window.flownexusMark = 1; "ok"`)
	late := newFleet(t, s, 1, func(c *simulator.Config) {
		c.Endpoint = func(i int) string { return "urn:dev:late-" + strconv.Itoa(i) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := late.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	b.until("the new device listed", `!!document.querySelector('tr[data-endpoint="urn:dev:late-0"]')`, 15*time.Second)
	if b.eval("same page", `String(window.flownexusMark)`) != "1" {
		t.Error("the page was reloaded")
	}
	b.shot("data-devices-live")
	b.check("devices, live")

	// The overview's counts follow registrations, without a reload.
	b.step("open the overview", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.ID("count-total")))
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	before := b.get("total", chromedp.Text(chromedp.ID("count-total")))
	b.eval("mark the page", `window.flownexusMark = 2; "ok"`)
	later := newFleet(t, s, 1, func(c *simulator.Config) {
		c.Endpoint = func(i int) string { return "urn:dev:later-" + strconv.Itoa(i) }
	})
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	if err := later.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	b.until("the overview counting the new device", `document.getElementById("count-total").textContent === "`+
		strconv.Itoa(atoi(before)+1)+`"`, 20*time.Second)
	if b.eval("same page", `String(window.flownexusMark)`) != "2" {
		t.Error("the overview was reloaded")
	}
	b.check("overview, live")

	// The device page: write the lifetime through the queue and watch it
	// reach CONFIRMED.
	b.step("open the device", chromedp.Navigate(s.base+"/devices/"+url.PathEscape(ep)), chromedp.WaitVisible(chromedp.ID("objects")))
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	b.eval("open every object", `document.querySelectorAll("details.object").forEach(d => { d.open = true; }); "ok"`)
	row := `tr[data-path="/1/0/1"]`
	b.step("write the lifetime",
		chromedp.SetValue(chromedp.CSS(row+` input[name=value]`), "290"),
		chromedp.Click(chromedp.CSS(row+` input[name=queue]`)),
		chromedp.Click(chromedp.CSS(row+` button[value=write]`)),
		chromedp.WaitVisible(chromedp.ID("flash")))
	if msg := b.get("flash", chromedp.Text(chromedp.ID("flash"))); !strings.Contains(msg, "queued as operation") {
		t.Fatalf("write flash: %q", msg)
	}
	defer func() {
		if t.Failed() {
			op, err := s.Store.GetOperation(context.Background(), 1)
			t.Logf("operation 1: %+v %v", op, err)
		}
	}()
	b.until("the write CONFIRMED", `(() => { const c = document.querySelector('#operation-list tr[data-op-id] td[data-field=status]');
		return !!c && c.textContent === "CONFIRMED"; })()`, 20*time.Second, `document.getElementById("operation-list").outerHTML`)
	b.check("device, write")

	// A value that is not of the resource's type: the page again (400)
	// with the message, nothing queued.
	b.eval("open every object", `document.querySelectorAll("details.object").forEach(d => { d.open = true; }); "ok"`)
	b.step("write a bad lifetime",
		chromedp.SetValue(chromedp.CSS(row+` input[name=value]`), "99999999999999999999"),
		chromedp.Click(chromedp.CSS(row+` button[value=write]`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash.flash-error`)))
	if msg := b.get("flash", chromedp.Text(chromedp.ID("flash"))); !strings.Contains(msg, "want integer") {
		t.Errorf("bad write flash: %q", msg)
	}
	for _, issue := range b.watch.take() { // the 400 answer itself, reported twice
		if !strings.Contains(issue, "Bad Request") || !strings.HasSuffix(issue, "/operations") {
			t.Errorf("bad write: %s", issue)
		}
	}
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	if n := b.eval("operations", `String(document.querySelectorAll("#operation-list tr[data-op-id]").length)`); n != "1" {
		t.Errorf("%s operations listed after a bad write, want 1", n)
	}

	// Execute now: the registration update trigger.
	b.step("reopen the device", chromedp.Navigate(s.base+"/devices/"+url.PathEscape(ep)), chromedp.WaitVisible(chromedp.ID("objects")))
	b.eval("open every object", `document.querySelectorAll("details.object").forEach(d => { d.open = true; }); "ok"`)
	b.step("execute", chromedp.Click(chromedp.CSS(`tr[data-path="/1/0/8"] button[value=execute]`)), chromedp.WaitVisible(chromedp.ID("flash")))
	if msg := b.get("flash", chromedp.Text(chromedp.ID("flash"))); !strings.Contains(msg, "execute /1/0/8: done") {
		t.Errorf("execute flash: %q", msg)
	}
	b.until("a temperature shown", `(() => { const c = document.querySelector('[data-value-path="/3303/0/5700"]'); return !!c && c.textContent !== ""; })()`, 10*time.Second)
	// Values follow the device's notifications without a reload.
	b.eval("mark the page", `window.flownexusMark = 2; window.flownexusTemp = document.querySelector('[data-value-path="/3303/0/5700"]').textContent; "ok"`)
	b.until("the temperature updated live", `document.querySelector('[data-value-path="/3303/0/5700"]').textContent !== window.flownexusTemp`, 15*time.Second)
	if b.eval("same page", `String(window.flownexusMark)`) != "2" {
		t.Error("the device page was reloaded")
	}

	// Again as it opens (objects with values unfolded), for its picture.
	b.step("reopen the device", chromedp.Navigate(s.base+"/devices/"+url.PathEscape(ep)), chromedp.WaitVisible(chromedp.ID("objects")))
	b.shot("data-device")
	b.check("device, execute")

	// The history chart of the temperature.
	hist := s.base + "/devices/" + url.PathEscape(ep) + "/history?path=/3303/0/5700&range=1h"
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.step("open the history", chromedp.Navigate(hist), chromedp.WaitVisible(chromedp.ID("history-summary")))
		n := b.eval("chart points", `(() => { const p = document.querySelector('#history-chart polyline'); return p ? String(p.getAttribute("points").trim().split(/\s+/).length) : "0"; })()`)
		if k, _ := strconv.Atoi(n); k >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the history chart has %s points", n)
		}
		time.Sleep(time.Second)
	}
	b.shot("data-history")
	b.check("history")

	// The data explorer over a range that has ended: the export holds
	// exactly the rows counted.
	to := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	time.Sleep(1500 * time.Millisecond)
	q := url.Values{"path": {"3303/*/5700"}, "from": {time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)}, "to": {to}}
	b.step("open the data page", chromedp.Navigate(s.base+"/data?"+q.Encode()), chromedp.WaitVisible(chromedp.ID("data-count")))
	count, err := strconv.Atoi(b.get("count", chromedp.Text(chromedp.ID("data-count"))))
	if err != nil || count < 3 {
		t.Fatalf("data count %d %v", count, err)
	}
	if b.eval("chart", `String(document.querySelectorAll('#data-chart polyline').length)`) == "0" {
		t.Error("the data page has no chart")
	}
	b.shot("data-explorer")
	b.check("data")
	body := b.eval("export CSV", `fetch(document.getElementById("export-csv").href).then(r => r.ok ? r.text() : "HTTP " + r.status)`)
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v: %.200s", err, body)
	}
	if len(recs) != count+1 || strings.Join(recs[0], ",") != "endpoint,path,resource,type,value,device_time,received_at" {
		t.Errorf("CSV has %d records (header %v), the page counted %d", len(recs), recs[0], count)
	}
	for _, r := range recs[1:] {
		if r[1] != "/3303/0/5700" || r[3] != "float" {
			t.Errorf("CSV row %v", r)
			break
		}
	}
	b.check("export")
	t.Logf("screenshots in %s", b.shots)
}
