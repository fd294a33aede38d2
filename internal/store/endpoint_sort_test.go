package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestPageEndpointsSorted(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		base := time.UnixMilli(1_800_000_000_000)
		var want []string // most recently seen first, then by name backwards
		for i := range 9 {
			name := fmt.Sprintf("urn:s:%d", i)
			if i == 8 {
				if _, err := s.ProvisionEndpoints(ctx, []string{name}, AuditEntry{Actor: "t"}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// Two endpoints share each time.
			if _, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: name, RegistrationID: name,
				Time: base.Add(time.Duration(i/2) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		want = []string{"urn:s:7", "urn:s:6", "urn:s:5", "urn:s:4", "urn:s:3", "urn:s:2", "urn:s:1", "urn:s:0", "urn:s:8"}
		walk := func(sort EndpointSort) []string {
			var got []string
			p := EndpointPage{Scope: auth.Everything, Sort: sort, Limit: 2}
			for {
				page, more, err := s.PageEndpoints(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					got = append(got, e.Name)
				}
				if !more {
					return got
				}
				last := page[len(page)-1]
				p.After, p.AfterSeen = last.Name, last.LastSeen
			}
		}
		if got := walk(SortSeen); !slices.Equal(got, want) {
			t.Errorf("by last seen: %v, want %v", got, want)
		}
		byName := walk(SortName)
		if got := walk(SortNameDesc); len(got) != 9 || !reversed(got, byName) {
			t.Errorf("by name backwards: %v (by name %v)", got, byName)
		}
		if _, _, err := s.PageEndpoints(ctx, EndpointPage{Scope: auth.Everything, Sort: "size"}); err == nil {
			t.Error("an unknown order was accepted")
		}

		e, _ := s.GetEndpoint(ctx, "urn:s:1")
		f, _ := s.GetEndpoint(ctx, "urn:s:2")
		if _, err := s.IngestEvent(ctx, Event{EndpointID: e.ID, Kind: "notify"}, []ResourceValue{
			{Path: lwm2m.MustParsePath("/3/0/3"), Value: lwm2m.String("1.2.3")},
			{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Int(87)},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IngestEvent(ctx, Event{EndpointID: f.ID, Kind: "notify"}, []ResourceValue{
			{Path: lwm2m.MustParsePath("/3/0/9"), Value: lwm2m.Int(5)},
		}); err != nil {
			t.Fatal(err)
		}
		facts, err := s.DeviceFactsOf(ctx, []int64{e.ID, f.ID, 999999})
		if err != nil || len(facts) != 2 || facts[e.ID] != (DeviceFacts{Firmware: "1.2.3", Battery: 87}) ||
			facts[f.ID] != (DeviceFacts{Battery: 5}) {
			t.Errorf("facts %+v %v", facts, err)
		}
	})
}

func reversed(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[len(b)-1-i] {
			return false
		}
	}
	return true
}
