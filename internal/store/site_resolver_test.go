package store

import (
	"context"
	"testing"
	"time"
)

func TestSiteResolver(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:r:1", RegistrationID: "r1"})
		if err != nil {
			t.Fatal(err)
		}
		site, _ := s.CreateSite(ctx, "west")
		r := s.SiteResolver(time.Hour)
		if id, known, err := r.Site(ctx, "urn:r:1"); err != nil || !known || id != 0 {
			t.Errorf("unassigned: %d %v %v", id, known, err)
		}
		if id, known, err := r.Site(ctx, "urn:r:none"); err != nil || known || id != 0 {
			t.Errorf("unknown: %d %v %v", id, known, err)
		}
		if err := s.SetEndpointSite(ctx, e.ID, site.ID); err != nil {
			t.Fatal(err)
		}
		if id, _, _ := r.Site(ctx, "urn:r:1"); id != 0 {
			t.Errorf("within the TTL the remembered answer holds: %d", id)
		}
		if id, known, err := s.SiteResolver(time.Hour).Site(ctx, "urn:r:1"); err != nil || !known || id != site.ID {
			t.Errorf("assigned: %d %v %v", id, known, err)
		}
	})
}
