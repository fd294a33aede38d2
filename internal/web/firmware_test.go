package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// fleetEnv is an env whose dashboard has the firmware images (at most
// 4 KiB each), the updater and the operation queue (over a registry whose
// devices are never reached), a site south besides north, and the user
// fern: a Site User of north with view_firmware and manage_firmware.
type fleetEnv struct {
	*env
	south                      store.Site
	north, southDev, northBare store.Endpoint
}

// withFleet gives the dashboard the firmware images (at most 4 KiB each),
// the updater and the operation queue, over a registry whose devices are
// never reached and a job engine that is not started.
func withFleet(t *testing.T) func(*Config) {
	return func(c *Config) {
		st := c.Store
		reg := registry.New(st, registry.Config{})
		dm := devmgmt.New(devmgmt.Config{Registry: reg, Dial: func(context.Context, registry.Registration) (*udpclient.Conn, error) {
			return nil, errors.New("no devices in this test")
		}})
		eng, err := jobs.NewEngine(jobs.EngineConfig{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		if c.Jobs, err = jobs.New(jobs.Config{Engine: eng, Store: st, Registry: reg, Devices: dm}); err != nil {
			t.Fatal(err)
		}
		if c.Firmware, err = firmware.New(firmware.Config{Store: st, Dir: t.TempDir(), MaxSize: 4096}); err != nil {
			t.Fatal(err)
		}
		if c.Updates, err = fwupdate.New(fwupdate.Config{Store: st, Engine: eng, Queue: c.Jobs, Registry: reg, Devices: dm,
			FirmwareDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
	}
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	e := newEnv(t, withFleet(t))
	ctx := context.Background()
	fe := &fleetEnv{env: e}
	var err error
	if fe.south, err = e.st.CreateSite(ctx, "south"); err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword(password, auth.Params{Memory: 1024, Time: 1, Threads: 1})
	for _, u := range []struct {
		name  string
		perms []auth.Permission
	}{{"fern", []auth.Permission{auth.ViewOverview, auth.ViewFirmware, auth.ManageFirmware}},
		{"vera", []auth.Permission{auth.ViewOverview}}} {
		if e.users[u.name], err = e.st.CreateUser(ctx, u.name, hash, false); err != nil {
			t.Fatal(err)
		}
		flags, _ := auth.FlagsOf(u.perms...)
		if err := e.st.SetMembership(ctx, e.users[u.name].ID, e.site.ID, auth.SiteUser, flags); err != nil {
			t.Fatal(err)
		}
	}
	reg := func(name, links string, site int64) store.Endpoint {
		ep, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: name, RegistrationID: "r-" + name,
			Address: "192.0.2.1:5683", Lifetime: 300e9, Binding: "U", LwM2MVersion: "1.1", ObjectLinks: links})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetEndpointSite(ctx, ep.ID, site); err != nil {
			t.Fatal(err)
		}
		return ep
	}
	fe.north = reg("urn:dev:north", "</1/0>,</3/0>,</5/0>", e.site.ID)
	fe.northBare = reg("urn:dev:north-bare", "</1/0>,</3/0>", e.site.ID)
	fe.southDev = reg("urn:dev:south", "</1/0>,</3/0>,</5/0>", fe.south.ID)
	return fe
}

// upload posts the upload form: the CSRF token first (unless csrf is
// ""), then version, then the file.
func (b *browser) upload(csrf, version string, file []byte) response {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField(CSRFField, csrf)
	}
	mw.WriteField("version", version)
	fw, _ := mw.CreateFormFile("file", "image.bin")
	fw.Write(file)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+"/firmware", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.origin)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	bs, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(bs)}
}

// postForm sends the form as it is (the caller sets its CSRF token, or not).
func (b *browser) postForm(path string, form url.Values) response {
	b.t.Helper()
	return b.do(http.MethodPost, path, form, nil)
}

func expect(t *testing.T, what string, r response, status int, subs ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d\n%s", what, r.status, status, r.body)
		return
	}
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s: no %q in\n%s", what, s, r.body)
		}
	}
}

func TestFirmwareRoutesAccess(t *testing.T) {
	e := newFleetEnv(t)
	anon := e.browser(t)
	for _, p := range []string{"/firmware", "/firmware/updates", "/firmware/campaigns", "/firmware/campaigns/1", "/operations"} {
		if r := anon.get(p); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login?next=") {
			t.Errorf("anonymous GET %s: %d %s", p, r.status, r.header.Get("Location"))
		}
	}
	olive := e.loggedIn(t, "olive")
	for _, p := range []string{"/firmware", "/firmware/updates", "/firmware/campaigns", "/firmware/campaigns/1"} {
		if r := olive.get(p); r.status != http.StatusForbidden {
			t.Errorf("olive GET %s: %d, want 403", p, r.status)
		}
	}
	tok := olive.csrf("/")
	for _, p := range []string{"/firmware/updates", "/firmware/campaigns", "/firmware/updates/1/cancel", "/firmware/campaigns/1/pause",
		"/firmware/images/1.0/delete"} {
		if r := olive.postForm(p, url.Values{CSRFField: {tok}}); r.status != http.StatusForbidden {
			t.Errorf("olive POST %s: %d, want 403", p, r.status)
		}
	}
	if r := olive.upload(tok, "1.0", []byte("x")); r.status != http.StatusForbidden {
		t.Errorf("olive upload: %d", r.status)
	}
	if r := e.loggedIn(t, "vera").get("/operations"); r.status != http.StatusForbidden {
		t.Errorf("vera (no view_data) GET /operations: %d", r.status)
	}
}

func TestFirmwareUploadAndRemove(t *testing.T) {
	e := newFleetEnv(t)
	admin := e.loggedIn(t, "admin")
	tok := admin.csrf("/firmware")
	expect(t, "upload", admin.upload(tok, "1.0.0", []byte("image one")), http.StatusSeeOther)
	expect(t, "list", admin.get("/firmware"), http.StatusOK, `data-version="1.0.0"`,
		fmt.Sprintf("%x", sha256.Sum256([]byte("image one"))), "<td>admin</td>", `id="upload"`)
	expect(t, "duplicate", admin.upload(tok, "1.0.0", []byte("again")), http.StatusUnprocessableEntity, "form-error", "1.0.0", `id="upload"`)
	expect(t, "no version", admin.upload(tok, "", []byte("x")), http.StatusBadRequest, "a version is required")
	expect(t, "bad version", admin.upload(tok, "../x", []byte("x")), http.StatusBadRequest, "form-error")
	expect(t, "empty", admin.upload(tok, "2.0", nil), http.StatusBadRequest, "empty")
	expect(t, "too large", admin.upload(tok, "2.0", bytes.Repeat([]byte("x"), 5000)), http.StatusUnprocessableEntity,
		"larger than")
	big := bytes.Repeat([]byte("x"), 200<<10)
	expect(t, "far too large", admin.upload(tok, "2.0", big), http.StatusUnprocessableEntity, "larger than")
	expect(t, "no CSRF", admin.upload("", "2.0", []byte("x")), http.StatusForbidden)
	expect(t, "wrong CSRF", admin.upload("nope", "2.0", []byte("x")), http.StatusForbidden)
	if list, _ := e.w.cfg.Firmware.List(context.Background()); len(list) != 1 {
		t.Fatalf("images after refusals: %+v", list)
	}

	// fern (Site User with manage_firmware) may upload, not remove.
	fern := e.loggedIn(t, "fern")
	ftok := fern.csrf("/firmware")
	expect(t, "fern upload", fern.upload(ftok, "1.1", []byte("image two")), http.StatusSeeOther)
	expect(t, "fern remove", fern.postForm("/firmware/images/1.1/delete", url.Values{CSRFField: {ftok}}), http.StatusForbidden)

	// In use: refused with the message.
	if _, err := e.w.cfg.Updates.Start(context.Background(), e.north.Name, "1.0.0", fwupdate.Options{}); err != nil {
		t.Fatal(err)
	}
	expect(t, "remove in use", admin.postForm("/firmware/images/1.0.0/delete", url.Values{CSRFField: {tok}}),
		http.StatusUnprocessableEntity, "form-error", "uses")
	expect(t, "remove", admin.postForm("/firmware/images/1.1/delete", url.Values{CSRFField: {tok}}), http.StatusSeeOther)
	expect(t, "remove unknown", admin.postForm("/firmware/images/9.9/delete", url.Values{CSRFField: {tok}}), http.StatusNotFound)
	expect(t, "remove without CSRF", admin.postForm("/firmware/images/1.0.0/delete", url.Values{}), http.StatusForbidden)
}

var updateIDRE = regexp.MustCompile(`data-update-id="(\d+)"`)

func TestFirmwareUpdatesScope(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	if _, err := e.w.cfg.Firmware.Upload(ctx, store.Actor{Name: "t"}, "2.0", strings.NewReader("image")); err != nil {
		t.Fatal(err)
	}
	southUp, err := e.w.cfg.Updates.Start(ctx, e.southDev.Name, "2.0", fwupdate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fern := e.loggedIn(t, "fern")
	tok := fern.csrf("/firmware/updates")
	start := func(ep, method, protocol string) response {
		return fern.postForm("/firmware/updates", url.Values{CSRFField: {tok}, "endpoint": {ep}, "version": {"2.0"},
			"method": {method}, "protocol": {protocol}})
	}
	expect(t, "start north", start(e.north.Name, "pull", "auto"), http.StatusSeeOther)
	expect(t, "start south", start(e.southDev.Name, "auto", "auto"), http.StatusNotFound, "form-error", "no such endpoint", `id="start-update"`)
	expect(t, "start without object 5", start(e.northBare.Name, "auto", "auto"), http.StatusUnprocessableEntity, "Firmware Update object")
	expect(t, "start again", start(e.north.Name, "auto", "auto"), http.StatusUnprocessableEntity, "active firmware update")
	expect(t, "bad method", start(e.north.Name, "teleport", "auto"), http.StatusBadRequest, "unknown method")
	expect(t, "no endpoint", start("", "auto", "auto"), http.StatusBadRequest, "required")
	expect(t, "no CSRF", fern.postForm("/firmware/updates", url.Values{"endpoint": {e.north.Name}}), http.StatusForbidden)

	r := fern.get("/firmware/updates")
	ids := updateIDRE.FindAllStringSubmatch(r.body, -1)
	if r.status != 200 || len(ids) != 1 || strings.Contains(r.body, e.southDev.Name) || !strings.Contains(r.body, e.north.Name) {
		t.Fatalf("fern's updates: %d %v\n%s", r.status, ids, r.body)
	}
	expect(t, "cancel south", fern.postForm(fmt.Sprintf("/firmware/updates/%d/cancel", southUp.ID), url.Values{CSRFField: {tok}}),
		http.StatusNotFound)
	expect(t, "cancel unknown", fern.postForm("/firmware/updates/99999/cancel", url.Values{CSRFField: {tok}}), http.StatusNotFound)
	expect(t, "cancel north", fern.postForm("/firmware/updates/"+ids[0][1]+"/cancel", url.Values{CSRFField: {tok}}), http.StatusSeeOther)
	expect(t, "cancelled", fern.get("/firmware/updates"), http.StatusOK, "fw-cancelled")
	expect(t, "cancel again", fern.postForm("/firmware/updates/"+ids[0][1]+"/cancel", url.Values{CSRFField: {tok}}), http.StatusConflict)
	expect(t, "admin sees both", e.loggedIn(t, "admin").get("/firmware/updates"), http.StatusOK, e.southDev.Name, e.north.Name)
}

func TestFirmwareCampaigns(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	if _, err := e.w.cfg.Firmware.Upload(ctx, store.Actor{Name: "t"}, "3.0", strings.NewReader("image")); err != nil {
		t.Fatal(err)
	}
	admin := e.loggedIn(t, "admin")
	tok := admin.csrf("/firmware/campaigns")
	create := func(b *browser, tok string, v url.Values) response {
		v.Set(CSRFField, tok)
		return b.postForm("/firmware/campaigns", v)
	}
	r := create(admin, tok, url.Values{"name": {"everyone"}, "version": {"3.0"}, "target": {"all"}, "concurrency": {"2"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/firmware/campaigns/") {
		t.Fatalf("create: %d %s %s", r.status, r.header.Get("Location"), r.body)
	}
	all := r.header.Get("Location")
	expect(t, "campaign page", admin.get(all), http.StatusOK, e.north.Name, e.southDev.Name, "Pause", "0 of 2 devices")
	expect(t, "bad concurrency", create(admin, tok, url.Values{"version": {"3.0"}, "target": {"all"}, "concurrency": {"x"}}),
		http.StatusBadRequest, "concurrency", `id="create-campaign"`)
	expect(t, "no version", create(admin, tok, url.Values{"target": {"all"}}), http.StatusBadRequest, "version")
	expect(t, "no match", create(admin, tok, url.Values{"version": {"3.0"}, "target": {"prefix"}, "prefix": {"urn:none"}}),
		http.StatusBadRequest, "no device")
	expect(t, "no CSRF", admin.postForm("/firmware/campaigns", url.Values{"version": {"3.0"}}), http.StatusForbidden)
	r = create(admin, tok, url.Values{"name": {"south only"}, "version": {"3.0"}, "target": {"site"},
		"site": {fmt.Sprint(e.south.ID)}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create for south: %d %s", r.status, r.body)
	}
	southOnly := r.header.Get("Location")

	fern := e.loggedIn(t, "fern")
	ftok := fern.csrf("/firmware/campaigns")
	expect(t, "fern's list", fern.get("/firmware/campaigns"), http.StatusOK, "everyone")
	if r := fern.get("/firmware/campaigns"); strings.Contains(r.body, "south only") {
		t.Error("fern sees the south campaign")
	}
	r = fern.get(all)
	expect(t, "fern's view", r, http.StatusOK, e.north.Name, "1 more outside your sites")
	if strings.Contains(r.body, e.southDev.Name) || strings.Contains(r.body, "/pause") {
		t.Errorf("fern sees south's device or may pause:\n%s", r.body)
	}
	expect(t, "fern: south campaign", fern.get(southOnly), http.StatusNotFound)
	expect(t, "fern pauses a mixed campaign", fern.postForm(all+"/pause", url.Values{CSRFField: {ftok}}), http.StatusForbidden)
	expect(t, "fern pauses south's", fern.postForm(southOnly+"/pause", url.Values{CSRFField: {ftok}}), http.StatusNotFound)
	expect(t, "fern: other site", create(fern, ftok, url.Values{"version": {"3.0"}, "target": {"site"}, "site": {fmt.Sprint(e.south.ID)}}),
		http.StatusBadRequest, "choose one of your sites")
	r = create(fern, ftok, url.Values{"version": {"3.0"}, "target": {"prefix"}, "prefix": {"urn:dev:"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("fern's prefix campaign: %d %s", r.status, r.body)
	}
	mine := r.header.Get("Location")
	expect(t, "fern's campaign", fern.get(mine), http.StatusOK, e.north.Name, "0 of 1 devices")
	if c := fern.get(mine); strings.Contains(c.body, e.southDev.Name) || strings.Contains(c.body, e.northBare.Name) {
		t.Errorf("fern's campaign holds other devices:\n%s", c.body)
	}
	expect(t, "pause", fern.postForm(mine+"/pause", url.Values{CSRFField: {ftok}}), http.StatusSeeOther)
	expect(t, "paused", fern.get(mine), http.StatusOK, "paused", "Resume")
	expect(t, "resume", fern.postForm(mine+"/resume", url.Values{CSRFField: {ftok}}), http.StatusSeeOther)
	expect(t, "cancel", fern.postForm(mine+"/cancel", url.Values{CSRFField: {ftok}}), http.StatusSeeOther)
	expect(t, "resume cancelled", fern.postForm(mine+"/resume", url.Values{CSRFField: {ftok}}), http.StatusConflict)
	expect(t, "unknown action", fern.postForm(mine+"/explode", url.Values{CSRFField: {ftok}}), http.StatusNotFound)
	expect(t, "unknown campaign", fern.get("/firmware/campaigns/99999"), http.StatusNotFound)
}
