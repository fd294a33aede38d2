package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestPageEndpointsAndCounts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var ids []int64
		for i := range 25 {
			name := fmt.Sprintf("urn:%c:%02d", 'a'+i%2, i)
			if i%5 == 0 {
				if _, err := s.ProvisionEndpoints(ctx, []string{name}, AuditEntry{Actor: "t"}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			e, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: name, RegistrationID: name, QueueMode: i%3 == 0})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		c, err := s.CountFleet(ctx, auth.Everything)
		if err != nil || c != (FleetCounts{Total: 25, Online: 20, Sleeping: 7}) {
			t.Errorf("counts %+v %v", c, err)
		}
		var all []string
		after := ""
		for {
			page, more, err := s.PageEndpoints(ctx, EndpointPage{Scope: auth.Everything, Prefix: "urn:a:", After: after, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				all = append(all, e.Name)
			}
			if !more {
				break
			}
			after = page[len(page)-1].Name
		}
		if len(all) != 13 || all[0] != "urn:a:00" || all[12] != "urn:a:24" {
			t.Errorf("prefix pages: %v", all)
		}
		off := false
		page, more, err := s.PageEndpoints(ctx, EndpointPage{Scope: auth.Everything, Online: &off})
		if err != nil || more || len(page) != 5 || page[0].Name != "urn:a:00" || page[1].Name != "urn:a:10" {
			t.Errorf("offline: %d %v %v", len(page), more, err)
		}
		if page, _, _ := s.PageEndpoints(ctx, EndpointPage{Scope: auth.Everything, Prefix: "urn:a:%"}); len(page) != 0 {
			t.Errorf("a LIKE pattern matched: %d", len(page))
		}
		for i, id := range ids[:3] {
			if _, err := s.IngestEvent(ctx, Event{EndpointID: id, Kind: fmt.Sprint("k", i)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		for i, id := range ids[:3] {
			o, err := s.CreateOperation(ctx, Operation{EndpointID: id, Kind: "execute", Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 4)}, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if _, err := s.CancelOperation(ctx, o.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n, err := s.CountQueuedOperations(ctx, auth.Everything); err != nil || n != 2 {
			t.Errorf("queued operations: %d %v, want 2", n, err)
		}
		evs, err := s.RecentEvents(ctx, auth.Everything, 2)
		if err != nil || len(evs) != 2 || evs[0].Kind != "k2" || evs[0].Endpoint != "urn:b:03" || evs[1].Kind != "k1" {
			t.Errorf("recent events %+v %v", evs, err)
		}

		// Scoped: ids[0] in site one, ids[1:10] in site two, the other
		// five registered and the five provisioned ones in no site.
		one, _ := s.CreateSite(ctx, "one")
		two, _ := s.CreateSite(ctx, "two")
		for i, id := range ids {
			site := two.ID
			if i == 0 {
				site = one.ID
			}
			if i >= 10 {
				site = 0
			}
			if err := s.SetEndpointSite(ctx, id, site); err != nil {
				t.Fatal(err)
			}
		}
		inOne := auth.Scope{Sites: []int64{one.ID}}
		if c, err := s.CountFleet(ctx, inOne); err != nil || c.Total != 1 {
			t.Errorf("counts in site one: %+v %v", c, err)
		}
		if c, err := s.CountFleet(ctx, auth.Scope{Sites: []int64{two.ID}, Unassigned: true}); err != nil || c.Total != 24 {
			t.Errorf("counts in site two and unassigned: %+v %v", c, err)
		}
		if c, err := s.CountFleet(ctx, auth.Scope{}); err != nil || c.Total != 0 {
			t.Errorf("counts in the zero scope: %+v %v", c, err)
		}
		if page, _, err := s.PageEndpoints(ctx, EndpointPage{Scope: inOne}); err != nil || len(page) != 1 || page[0].ID != ids[0] {
			t.Errorf("page in site one: %+v %v", page, err)
		}
		if page, _, err := s.PageEndpoints(ctx, EndpointPage{Scope: auth.Scope{Unassigned: true}}); err != nil || len(page) != 15 {
			t.Errorf("unassigned page: %d %v", len(page), err)
		}
		// ids[0]'s operation was cancelled; ids[1] and ids[2] are in two.
		if n, err := s.CountQueuedOperations(ctx, inOne); err != nil || n != 0 {
			t.Errorf("queued in site one: %d %v", n, err)
		}
		if n, err := s.CountQueuedOperations(ctx, auth.Scope{Sites: []int64{two.ID}}); err != nil || n != 2 {
			t.Errorf("queued in site two: %d %v", n, err)
		}
		if evs, err := s.RecentEvents(ctx, inOne, 5); err != nil || len(evs) != 1 || evs[0].Kind != "k0" {
			t.Errorf("recent events in site one: %+v %v", evs, err)
		}
	})
}
