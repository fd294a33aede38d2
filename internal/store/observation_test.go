package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestObservationRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustEndpoint(t, s, "a") // live registration "reg-a"
		b := mustEndpoint(t, s, "b")
		temp := lwm2m.NewPath(3303, 0, 5700)
		single := Observation{Token: []byte{0x00, 0xff, 0x80, 0x01}, EndpointID: a.ID, RegistrationID: "reg-a",
			Paths: []lwm2m.Path{temp}, Format: lwm2m.FormatTLV, Origin: "auto-observe", Attributes: "pmin=60&pmax=900"}
		composite := Observation{Token: []byte("comp0001"), EndpointID: a.ID, RegistrationID: "reg-a",
			Paths: []lwm2m.Path{temp, lwm2m.NewPath(3, 0, 7, 1), lwm2m.NewPath(1)}, Composite: true,
			Format: lwm2m.FormatSenMLCBOR, CreatedAt: t0.Add(time.Second),
			Origin: "queue", OriginUserID: 7, OriginOperationID: 1 << 40}
		other := Observation{Token: []byte{0x00}, EndpointID: b.ID, RegistrationID: "reg-b",
			Paths: []lwm2m.Path{temp}, Format: lwm2m.FormatText}
		for _, o := range []Observation{composite, single, other} {
			if err := s.InsertObservation(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		single.CreatedAt, other.CreatedAt = t0, t0 // the store's clock
		for _, want := range []Observation{single, composite, other} {
			if got, err := s.GetObservation(ctx, want.Token); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("GetObservation(%x) = %+v, %v; want %+v", want.Token, got, err, want)
			}
		}
		// A token that is a prefix of a stored one is another token.
		if _, err := s.GetObservation(ctx, []byte{0x00, 0xff}); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetObservation of an unknown token: %v", err)
		}
		if got, err := s.ListObservations(ctx, "reg-a"); err != nil || !reflect.DeepEqual(got, []Observation{single, composite}) {
			t.Errorf("ListObservations(reg-a) = %+v, %v", got, err)
		}
		if got, err := s.ListObservations(ctx, "reg-none"); err != nil || len(got) != 0 {
			t.Errorf("ListObservations(reg-none) = %+v, %v", got, err)
		}

		for name, o := range map[string]Observation{
			"token taken":      {Token: single.Token, EndpointID: b.ID, RegistrationID: "reg-b", Paths: []lwm2m.Path{temp}},
			"unknown endpoint": {Token: []byte("x"), EndpointID: b.ID + 100, RegistrationID: "reg-x", Paths: []lwm2m.Path{temp}},
		} {
			if err := s.InsertObservation(ctx, o); !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want ErrConflict", name, err)
			}
		}
		for name, o := range map[string]Observation{
			"no token":        {EndpointID: a.ID, RegistrationID: "reg-a", Paths: []lwm2m.Path{temp}},
			"9-byte token":    {Token: []byte("123456789"), EndpointID: a.ID, RegistrationID: "reg-a", Paths: []lwm2m.Path{temp}},
			"no registration": {Token: []byte("y"), EndpointID: a.ID, Paths: []lwm2m.Path{temp}},
			"no paths":        {Token: []byte("y"), EndpointID: a.ID, RegistrationID: "reg-a"},
		} {
			err := s.InsertObservation(ctx, o)
			if err == nil || errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want a validation error", name, err)
			}
		}

		if err := s.DeleteObservation(ctx, single.Token); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteObservation(ctx, single.Token); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteObservation: %v", err)
		}
		if _, err := s.GetObservation(ctx, single.Token); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted observation: %v", err)
		}
		if n, err := s.DeleteObservations(ctx, "reg-a"); err != nil || n != 1 {
			t.Errorf("DeleteObservations(reg-a) = %d, %v; want 1", n, err)
		}
		if got, _ := s.ListObservations(ctx, "reg-a"); len(got) != 0 {
			t.Errorf("after DeleteObservations: %+v", got)
		}
		if n, err := s.DeleteObservations(ctx, "reg-a"); err != nil || n != 0 {
			t.Errorf("DeleteObservations(reg-a) again = %d, %v", n, err)
		}
		if _, err := s.GetObservation(ctx, other.Token); err != nil {
			t.Errorf("another registration's observation went too: %v", err)
		}
	})
}

// DeleteStaleObservations keeps the observations of the endpoint's live
// registration only, and none while it is offline; deleting the endpoint
// deletes its observations.
func TestDeleteStaleObservations(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustEndpoint(t, s, "a") // live registration "reg-a"
		b := mustEndpoint(t, s, "b")
		insert := func(tok string, ep int64, reg string) {
			t.Helper()
			if err := s.InsertObservation(ctx, Observation{Token: []byte(tok), EndpointID: ep, RegistrationID: reg,
				Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 9)}, Format: lwm2m.FormatText}); err != nil {
				t.Fatal(err)
			}
		}
		insert("live", a.ID, "reg-a")
		insert("old-1", a.ID, "reg-a-old")
		insert("old-2", a.ID, "reg-a-old")
		insert("b-old", b.ID, "reg-b-old")
		tokens := func() map[string]bool {
			t.Helper()
			got := map[string]bool{}
			for _, tok := range []string{"live", "old-1", "old-2", "b-old"} {
				_, err := s.GetObservation(ctx, []byte(tok))
				switch {
				case err == nil:
					got[tok] = true
				case !errors.Is(err, ErrNotFound):
					t.Fatal(err)
				}
			}
			return got
		}
		if n, err := s.DeleteStaleObservations(ctx, a.ID); err != nil || n != 2 {
			t.Fatalf("DeleteStaleObservations(a) = %d, %v; want 2", n, err)
		}
		if got := tokens(); !reflect.DeepEqual(got, map[string]bool{"live": true, "b-old": true}) {
			t.Errorf("after deleting a's stale observations: %v", got)
		}
		if err := s.SetEndpointOffline(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeleteStaleObservations(ctx, a.ID); err != nil || n != 1 {
			t.Fatalf("DeleteStaleObservations(a) offline = %d, %v; want 1", n, err)
		}
		if err := s.DeleteEndpoint(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if got := tokens(); len(got) != 0 {
			t.Errorf("left: %v", got)
		}
	})
}

// Migration 3 adds the observation table; down drops it and keeps the
// endpoints.
func TestMigrateObservation(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *Store) {
		a := mustEndpoint(t, s, "a")
		if err := s.InsertObservation(ctx, Observation{Token: []byte("t"), EndpointID: a.ID, RegistrationID: "reg-a",
			Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 9)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.goose.DownTo(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetObservation(ctx, []byte("t")); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("observation table still there after down: %v", err)
		}
		if _, err := s.GetEndpoint(ctx, "a"); err != nil {
			t.Errorf("endpoint after down: %v", err)
		}
		if applied, err := s.Migrate(ctx); err != nil || len(applied) == 0 || applied[0] != 3 {
			t.Fatalf("Migrate from 2 = %v, %v", applied, err)
		}
		if _, err := s.GetObservation(ctx, []byte("t")); !errors.Is(err, ErrNotFound) {
			t.Errorf("after down and up: %v", err)
		}
	})
}
