package web

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// TestDevicesOrderAndColumns: the list pages most recently seen first
// across pages, and shows each device's site, firmware and battery.
func TestDevicesOrderAndColumns(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for i := range 60 {
		ep, err := e.st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: fmt.Sprintf("urn:dev:o-%02d", i),
			RegistrationID: fmt.Sprint("r", i), Time: t0.Add(time.Duration(i%7) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 6 {
			if _, err := e.st.IngestEvent(ctx, store.Event{EndpointID: ep.ID, Kind: "notify", ReceivedAt: t0}, []store.ResourceValue{
				{Path: lwm2m.MustParsePath("/3/0/3"), Value: lwm2m.String("fw-7.1"), ReceivedAt: t0},
				{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Int(42), ReceivedAt: t0},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.intoSite(t)
	b := e.loggedIn(t, "olive")
	row := regexp.MustCompile(`<tr data-endpoint="([^"]+)">`)
	var got []string
	next := "/devices?sort=seen"
	for next != "" {
		r := b.get(next)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", next, r.status)
		}
		if strings.Contains(r.body, "urn:dev:o-06") && (!strings.Contains(r.body, "fw-7.1") || !strings.Contains(r.body, "42 %") ||
			!strings.Contains(r.body, "<td>north</td>")) {
			t.Errorf("the row of urn:dev:o-06 lacks its firmware, battery or site")
		}
		for _, m := range row.FindAllStringSubmatch(r.body, -1) {
			got = append(got, m[1])
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(r.body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(got) != 60 || got[0] != "urn:dev:o-55" || got[59] != "urn:dev:o-00" {
		t.Errorf("by last seen: %d devices, first %v", len(got), got[:min(3, len(got))])
	}
	for i := 1; i < len(got); i++ {
		var a, c int
		fmt.Sscanf(got[i-1], "urn:dev:o-%d", &a)
		fmt.Sscanf(got[i], "urn:dev:o-%d", &c)
		if a%7 < c%7 || a%7 == c%7 && a < c {
			t.Fatalf("out of order at %d: %s then %s", i, got[i-1], got[i])
		}
	}
	if r := b.get("/devices?sort=size"); r.status != http.StatusBadRequest {
		t.Errorf("unknown order: %d", r.status)
	}
}
