package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGetOnlineEndpointByAddress(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		reg := func(name, id, addr string, tr Transport) Endpoint {
			t.Helper()
			e, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{
				Name: name, RegistrationID: id, Address: addr, Lifetime: time.Hour, Transport: tr, Time: clk.Now(),
			})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		a := reg("urn:dev:a", "ra", "192.0.2.1:5683", TransportUDP)
		reg("urn:dev:dtls", "rd", "192.0.2.2:5684", TransportDTLS)
		gone := reg("urn:dev:gone", "rg", "192.0.2.3:5683", TransportUDP)
		if err := s.SetEndpointOffline(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}

		if got, err := s.GetOnlineEndpointByAddress(ctx, "192.0.2.1:5683"); err != nil || got.ID != a.ID {
			t.Fatalf("by address: %+v, %v", got, err)
		}
		for _, addr := range []string{"192.0.2.2:5684", "192.0.2.3:5683", "192.0.2.9:1", ""} {
			if _, err := s.GetOnlineEndpointByAddress(ctx, addr); !errors.Is(err, ErrNotFound) {
				t.Errorf("%q (DTLS, offline or unknown): %v, want ErrNotFound", addr, err)
			}
		}
		// A NAT handed the address to another device, which registered
		// later: that one is the sender.
		clk.Advance(time.Second)
		b := reg("urn:dev:b", "rb", "192.0.2.1:5683", TransportUDP)
		if got, err := s.GetOnlineEndpointByAddress(ctx, "192.0.2.1:5683"); err != nil || got.ID != b.ID {
			t.Fatalf("shared address: %s, %v; want the later registration", got.Name, err)
		}
	})
}
