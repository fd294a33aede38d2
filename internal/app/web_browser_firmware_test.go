package app

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// TestFirmwareDashboardInBrowser drives the firmware and operations pages
// of a running App in headless Chromium: log in, upload an image through
// the form (the progress script sends it), update a simulated device to
// it by push and see the update reach succeeded (by reloading the page:
// the live script is not part of this test), start a campaign and open
// its page, then on the operations page see a queued operation of a
// device that never registered and cancel it. The pages' live listeners
// are checked with synthetic events. Every page loads with no console
// error, no failed load and no request to another origin; screenshots of
// /, /firmware, the updates, a campaign and /operations go to
// $FLOWNEXUS_SCREENSHOTS.
func TestFirmwareDashboardInBrowser(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), otaTuning())
	f := startFleet(t, s, 2, func(c *simulator.Config) { c.FirmwareDelay = 100 * time.Millisecond })
	eps := []string{f.Device(0).Endpoint(), f.Device(1).Endpoint()}
	for _, ep := range eps {
		eventually(t, 10*time.Second, ep+" online", func() bool {
			var e struct{ Online bool }
			return s.call(t, "GET", "/api/v1/endpoints/"+url.PathEscape(ep), nil, &e) == 200 && e.Online
		})
	}
	img := simulator.FirmwareImage("4.2.0", 20_000)
	imgPath := filepath.Join(t.TempDir(), "fw-4.2.0.bin")
	if err := os.WriteFile(imgPath, img, 0o644); err != nil {
		t.Fatal(err)
	}
	// A device that never registered: its queued operation stays QUEUED.
	ctx0 := context.Background()
	if _, err := s.Store.ProvisionEndpoints(ctx0, []string{"urn:dev:asleep"}, store.AuditEntry{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	asleep, err := s.Store.GetEndpoint(ctx0, "urn:dev:asleep")
	if err != nil {
		t.Fatal(err)
	}
	op, err := s.Jobs.Enqueue(ctx0, jobs.NewOperation{EndpointID: asleep.ID, Endpoint: asleep.Name,
		Operation: devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.MustParsePath("/3/0/0")}}})
	if err != nil {
		t.Fatal(err)
	}

	b := startBrowser(t, s)
	step, get, shot, check := b.step, b.get, b.shot, b.check
	eval := func(what, js string) { b.eval(what, "String("+js+")") }

	step("log in", chromedp.Navigate(s.base+"/login?next=%2Ffirmware"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "admin-password"),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("upload")))
	check("login")

	// Upload through the form: firmware.js sends it and follows the
	// redirect to the list.
	step("upload",
		chromedp.SendKeys(chromedp.CSS(`#upload input[name=version]`), "4.2.0"),
		chromedp.SetUploadFiles(`#upload input[name=file]`, []string{imgPath}),
		chromedp.Click(chromedp.CSS(`#upload button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-version="4.2.0"]`)))
	row := get("image row", chromedp.Text(chromedp.CSS(`tr[data-version="4.2.0"]`)))
	if !strings.Contains(row, "20000") || !strings.Contains(row, "admin") {
		t.Errorf("image row: %q", row)
	}
	// A refused upload (the version exists) shows the server's message.
	step("upload again",
		chromedp.SendKeys(chromedp.CSS(`#upload input[name=version]`), "4.2.0"),
		chromedp.SetUploadFiles(`#upload input[name=file]`, []string{imgPath}),
		chromedp.Click(chromedp.CSS(`#upload button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#upload-status.error`)))
	if msg := get("refusal", chromedp.Text(chromedp.ID("upload-status"))); !strings.Contains(msg, "4.2.0") {
		t.Errorf("refused upload says %q", msg)
	}
	// The refusal's 422 is the one failed request expected here.
	check("firmware upload", "Unprocessable")
	shot("firmware")

	// Start an update of device 0 by push; reload until it succeeded.
	step("open updates", chromedp.Navigate(s.base+"/firmware/updates"), chromedp.WaitVisible(chromedp.ID("start-update")),
		chromedp.SendKeys(chromedp.CSS(`#start-update input[name=endpoint]`), eps[0]),
		chromedp.SetValue(chromedp.CSS(`#start-update select[name=method]`), "push"),
		chromedp.Submit(chromedp.CSS(`#start-update input[name=endpoint]`)),
		chromedp.WaitVisible(chromedp.ID("updates")))
	check("start update")
	deadline := time.Now().Add(60 * time.Second)
	for {
		state := get("update state", chromedp.Text(chromedp.CSS(`#updates tbody tr td.state`)))
		if state == "succeeded" {
			break
		}
		if state == "failed" || state == "cancelled" || time.Now().After(deadline) {
			t.Fatalf("update state %q", state)
		}
		time.Sleep(500 * time.Millisecond)
		step("reload updates", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("updates")))
	}
	if v, _ := f.Device(0).Value(lwm2m.MustParsePath("/3/0/3")); v.StringValue() != "4.2.0" {
		t.Errorf("device 0 runs %v", v)
	}
	// The live listener: a synthetic firmware event changes the row.
	sctx, scancel := context.WithTimeout(b.ctx, 20*time.Second)
	attr, err := chromedp.Run(sctx, chromedp.AttributeValue(chromedp.CSS(`#updates tbody tr`), "data-update-id"))
	scancel()
	if err != nil || !attr.Exists {
		t.Fatalf("update id: %+v %v", attr, err)
	}
	id := attr.Value
	eval("synthetic firmware event", `document.dispatchEvent(new CustomEvent("flownexus:firmware",
		{detail: {endpoint: "x", data: {id: `+id+`, version: "4.2.0", state: "failed", method: "push", result: "synthetic"}}}))`)
	if state := get("live state", chromedp.Text(chromedp.CSS(`#updates tbody tr td.state`))); state != "failed" {
		t.Errorf("after a synthetic event the row says %q", state)
	}
	step("reload updates", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("updates")))
	shot("firmware-updates")
	check("updates")

	// A campaign for device 1, by name prefix.
	step("create campaign", chromedp.Navigate(s.base+"/firmware/campaigns"), chromedp.WaitVisible(chromedp.ID("create-campaign")),
		chromedp.SendKeys(chromedp.CSS(`#create-campaign input[name=name]`), "browser rollout"),
		chromedp.Click(chromedp.CSS(`#create-campaign input[value=prefix]`)),
		chromedp.SendKeys(chromedp.CSS(`#create-campaign input[name=prefix]`), eps[1]),
		chromedp.SetValue(chromedp.CSS(`#create-campaign select[name=method]`), "push"),
		chromedp.Submit(chromedp.CSS(`#create-campaign input[name=name]`)),
		chromedp.WaitVisible(chromedp.ID("campaign-devices")))
	if devs := get("campaign devices", chromedp.Text(chromedp.ID("campaign-devices"))); !strings.Contains(devs, eps[1]) ||
		strings.Contains(devs, eps[0]) {
		t.Errorf("campaign devices: %q", devs)
	}
	shot("firmware-campaign")
	check("campaign")

	// The operations page lists the queued operation; cancel it.
	opRow := `tr[data-operation-id="` + fwItoa(op.ID) + `"]`
	step("open operations", chromedp.Navigate(s.base+"/operations"), chromedp.WaitVisible(chromedp.CSS(opRow)))
	if r := get("operation row", chromedp.Text(chromedp.CSS(opRow))); !strings.Contains(r, "QUEUED") ||
		!strings.Contains(r, "urn:dev:asleep") || !strings.Contains(r, "/3/0/0") {
		t.Errorf("operation row: %q", r)
	}
	shot("operations")
	step("cancel", chromedp.Click(chromedp.CSS(opRow+` form.cancel button`)), chromedp.WaitVisible(chromedp.CSS(opRow+` td.op-CANCELLED`)))
	check("operations")
	// The live listener: a synthetic operation event changes a row.
	eval("synthetic operation event", `document.dispatchEvent(new CustomEvent("flownexus:operation",
		{detail: {endpoint: "urn:dev:asleep", data: {id: `+fwItoa(op.ID)+`, kind: "read", status: "FAILED", attempts: 3, result_error: "synthetic"}}}))`)
	if r := get("live row", chromedp.Text(chromedp.CSS(opRow))); !strings.Contains(r, "FAILED") || !strings.Contains(r, "synthetic") {
		t.Errorf("after a synthetic event the row says %q", r)
	}

	step("open the overview", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.CSS(`#values-5m svg`)))
	// The live stream refreshes the page's parts once it opens: read them after.
	b.until("the live stream open", `document.documentElement.hasAttribute("data-live-open")`, 10*time.Second)
	if v := get("versions", chromedp.Text(chromedp.ID("firmware-versions"))); !strings.Contains(v, "4.2.0") {
		t.Errorf("overview firmware versions: %q", v)
	}
	shot("overview-charts")
	check("overview")
	t.Logf("screenshots in %s", b.shots)
}

func fwItoa(n int64) string { return strconv.FormatInt(n, 10) }
