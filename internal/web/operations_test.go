package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

func init() {
	for k, sc := range map[string]routeScenario{
		"GET /firmware":                          {perm: auth.ViewFirmware, path: "/firmware"},
		"POST /firmware":                         {perm: auth.ManageFirmware, path: "/firmware"},
		"POST /firmware/images/{version}/delete": {perm: auth.ManageFirmware, path: "/firmware/images/9.0/delete"},
		"GET /firmware/updates":                  {perm: auth.ViewFirmware, path: "/firmware/updates"},
		"POST /firmware/updates/{id}/cancel":     {perm: auth.ManageFirmware, path: "/firmware/updates/{update}/cancel", device: true},
		"GET /firmware/campaigns":                {perm: auth.ViewFirmware, path: "/firmware/campaigns"},
		"GET /firmware/campaigns/{id}":           {perm: auth.ViewFirmware, path: "/firmware/campaigns/{campaign}", device: true},
		"POST /firmware/campaigns/{id}/{action}": {perm: auth.ManageFirmware, path: "/firmware/campaigns/{campaign}/pause", device: true},
		"GET /operations":                        {perm: auth.ViewData, path: "/operations"},
		"POST /operations/{id}/cancel":           {perm: auth.PerformOperations, path: "/operations/{operation}/cancel", device: true},
		"POST /firmware/updates": {perm: auth.ManageFirmware, path: "/firmware/updates", device: true,
			form: url.Values{"endpoint": {"{dev}"}, "version": {"9.0"}},
			bad:  url.Values{"endpoint": {"{dev}"}, "version": {""}}, badMsg: "version"},
		"POST /firmware/campaigns": {perm: auth.ManageFirmware, path: "/firmware/campaigns",
			bad: url.Values{"name": {"x"}, "version": {""}, "target": {"all"}}, badMsg: "a version is required"},
	} {
		routeScenarios[k] = sc
	}
}

func TestOperationsPage(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	var north, south []store.Operation
	for i := range 3 {
		for _, ep := range []store.Endpoint{e.north, e.southDev} {
			o, err := e.st.CreateOperation(ctx, store.Operation{EndpointID: ep.ID, Kind: "read",
				Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, uint16(i))}, QueuedBy: e.users["admin"].ID})
			if err != nil {
				t.Fatal(err)
			}
			if ep.ID == e.north.ID {
				north = append(north, o)
			} else {
				south = append(south, o)
			}
		}
	}
	olive := e.loggedIn(t, "olive")
	r := olive.get("/operations")
	expect(t, "olive's operations", r, http.StatusOK, fmt.Sprintf(`data-operation-id="%d"`, north[0].ID), "/3/0/2", "QUEUED",
		"<td>admin</td>", `action="/operations/`)
	if strings.Contains(r.body, e.southDev.Name) {
		t.Errorf("olive sees south's operations:\n%s", r.body)
	}
	if i, j := strings.Index(r.body, fmt.Sprintf(`data-operation-id="%d"`, north[2].ID)),
		strings.Index(r.body, fmt.Sprintf(`data-operation-id="%d"`, north[0].ID)); i < 0 || i > j {
		t.Error("not newest first")
	}
	tok := olive.csrf("/operations")
	expect(t, "cancel north", olive.postForm(fmt.Sprintf("/operations/%d/cancel", north[1].ID),
		url.Values{CSRFField: {tok}, "next": {"/operations?status=QUEUED"}}), http.StatusSeeOther)
	if op, _ := e.st.GetOperation(ctx, north[1].ID); op.Status != store.OperationCancelled {
		t.Errorf("after cancel: %s", op.Status)
	}
	expect(t, "cancel again", olive.postForm(fmt.Sprintf("/operations/%d/cancel", north[1].ID), url.Values{CSRFField: {tok}}),
		http.StatusConflict)
	expect(t, "cancel south", olive.postForm(fmt.Sprintf("/operations/%d/cancel", south[0].ID), url.Values{CSRFField: {tok}}),
		http.StatusNotFound)
	expect(t, "cancel unknown", olive.postForm("/operations/999999/cancel", url.Values{CSRFField: {tok}}), http.StatusNotFound)
	expect(t, "cancel without CSRF", olive.postForm(fmt.Sprintf("/operations/%d/cancel", north[0].ID), url.Values{}), http.StatusForbidden)
	if op, _ := e.st.GetOperation(ctx, north[0].ID); op.Status != store.OperationQueued {
		t.Errorf("cancelled without a token: %s", op.Status)
	}
	r = olive.get("/operations?status=CANCELLED")
	if r.status != 200 || strings.Count(r.body, "data-operation-id=") != 1 {
		t.Errorf("status filter: %d\n%s", r.status, r.body)
	}
	expect(t, "bad status", olive.get("/operations?status=LOST"), http.StatusBadRequest)
	expect(t, "bad before", olive.get("/operations?before=x"), http.StatusBadRequest)

	admin := e.loggedIn(t, "admin")
	if r := admin.get("/operations?q=urn:dev:south"); strings.Count(r.body, "data-operation-id=") != 3 {
		t.Errorf("prefix filter: %s", r.body)
	}
	// Keyset paging: OperationsPageSize per page, "Older" to the next.
	for range OperationsPageSize {
		if _, err := e.st.CreateOperation(ctx, store.Operation{EndpointID: e.north.ID, Kind: "execute",
			Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 4)}}); err != nil {
			t.Fatal(err)
		}
	}
	r = admin.get("/operations")
	m := strings.Index(r.body, `rel="next"`)
	if strings.Count(r.body, "data-operation-id=") != OperationsPageSize || m < 0 {
		t.Fatalf("first page: %d rows, next %d", strings.Count(r.body, "data-operation-id="), m)
	}
	next := r.body[strings.LastIndex(r.body[:m], `href="`)+6 : m-2]
	r = admin.get(strings.ReplaceAll(next, "&amp;", "&"))
	if strings.Count(r.body, "data-operation-id=") != 6 || strings.Contains(r.body, `rel="next"`) {
		t.Errorf("second page (%s): %d rows\n%s", next, strings.Count(r.body, "data-operation-id="), r.body)
	}
}

func TestOverviewChartsAndVersions(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	now := e.clk.Now()
	var vals []store.ResourceValue
	for i := range 10 {
		vals = append(vals, store.ResourceValue{EndpointID: e.north.ID, Path: lwm2m.NewPath(3303, 0, 5700),
			Value: lwm2m.Float(float64(i)), ReceivedAt: now.Add(-time.Duration(i) * time.Minute)})
	}
	for _, v := range []struct {
		ep      store.Endpoint
		version string
	}{{e.north, "1.0"}, {e.northBare, "1.0"}, {e.southDev, "0.9"}} {
		vals = append(vals, store.ResourceValue{EndpointID: v.ep.ID, Path: lwm2m.NewPath(3, 0, 3), Value: lwm2m.String(v.version),
			ReceivedAt: now.Add(-2 * time.Hour)})
	}
	if err := e.st.InsertResources(ctx, vals); err != nil {
		t.Fatal(err)
	}
	r := e.loggedIn(t, "admin").get("/")
	expect(t, "admin overview", r, http.StatusOK, `id="values-5m"`, `id="values-1h"`, `id="values-1d"`, "<svg", "time (UTC)",
		"13 values", `id="firmware-versions"`, "<td>1.0</td><td class=\"num\">2</td>", "<td>0.9</td>")
	if strings.Contains(r.body, "style=") {
		t.Error("a style attribute in the overview")
	}
	r = e.loggedIn(t, "olive").get("/")
	expect(t, "olive overview", r, http.StatusOK, "12 values", "<td>1.0</td><td class=\"num\">2</td>")
	if strings.Contains(r.body, "<td>0.9</td>") {
		t.Error("olive sees south's firmware version")
	}
}

func TestBarChart(t *testing.T) {
	bs := []store.Bucket{{Start: t0, Count: 3}, {Start: t0.Add(time.Hour), Count: 0}, {Start: t0.Add(2 * time.Hour), Count: 17}}
	c := barChart(`<b>"title"`, bs, time.Hour, 2, "15:04")
	s := string(c.SVG)
	if c.Total != 20 || strings.Count(s, `class="bar"`) != 3 || !strings.Contains(s, "&lt;b&gt;&#34;title&#34;") ||
		!strings.Contains(s, ">20<") || !strings.Contains(s, ">10:00<") || !strings.Contains(s, ">12:00<") {
		t.Errorf("chart %d:\n%s", c.Total, s)
	}
	for _, c := range []struct{ in, want int64 }{{0, 2}, {1, 2}, {3, 5}, {17, 20}, {101, 200}, {999, 1000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%d) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := byteSize(1536); got != "1.5 KiB" {
		t.Errorf("byteSize = %q", got)
	}
}
