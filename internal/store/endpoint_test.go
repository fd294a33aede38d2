package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEndpointRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		clk := clockOf(s)
		reg := EndpointRegistration{
			Name: "urn:imei:351234567890123", RegistrationID: "a1B2", Address: "198.51.100.7:40000",
			Lifetime: 3600 * time.Second, Binding: "UQ", LwM2MVersion: "1.1", SMSNumber: "+4912345",
			QueueMode: true, ObjectLinks: `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>`, Transport: TransportDTLS,
			Time: t0.Add(time.Minute),
		}
		e, err := s.UpsertEndpointRegistration(ctx, reg)
		if err != nil {
			t.Fatal(err)
		}
		want := Endpoint{
			ID: e.ID, Name: reg.Name, RegistrationID: "a1B2", Online: true,
			RegisteredAt: reg.Time, LastSeen: reg.Time, Address: reg.Address, Lifetime: time.Hour,
			Binding: "UQ", LwM2MVersion: "1.1", SMSNumber: "+4912345", QueueMode: true,
			ObjectLinks: reg.ObjectLinks, Transport: TransportDTLS, CreatedAt: reg.Time, UpdatedAt: reg.Time,
		}
		if e.ID == 0 || !reflect.DeepEqual(e, want) {
			t.Fatalf("upsert returned\n%+v\nwant\n%+v", e, want)
		}
		for name, get := range map[string]func() (Endpoint, error){
			"GetEndpoint":                 func() (Endpoint, error) { return s.GetEndpoint(ctx, reg.Name) },
			"GetEndpointByID":             func() (Endpoint, error) { return s.GetEndpointByID(ctx, e.ID) },
			"GetEndpointByRegistrationID": func() (Endpoint, error) { return s.GetEndpointByRegistrationID(ctx, "a1B2") },
		} {
			if got, err := get(); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %+v, %v", name, got, err)
			}
		}
		if e.Expiry() != reg.Time.Add(time.Hour) {
			t.Errorf("Expiry() = %v", e.Expiry())
		}

		// A site and a firmware version survive a re-registration; the
		// transport is the new registration's, plain CoAP when not given.
		site, err := s.CreateSite(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetEndpointSite(ctx, e.ID, site.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.SetEndpointFirmwareVersion(ctx, e.ID, "1.2.3"); err != nil {
			t.Fatal(err)
		}
		reg2 := EndpointRegistration{Name: reg.Name, RegistrationID: "c3D4", Address: "198.51.100.8:40001",
			Lifetime: 60 * time.Second, Binding: "U", LwM2MVersion: "1.2"}
		now := clk.Advance(time.Hour)
		e2, err := s.UpsertEndpointRegistration(ctx, reg2)
		if err != nil {
			t.Fatal(err)
		}
		want2 := Endpoint{
			ID: e.ID, Name: reg.Name, SiteID: site.ID, RegistrationID: "c3D4", Online: true,
			RegisteredAt: now, LastSeen: now, Address: reg2.Address, Lifetime: time.Minute, Binding: "U",
			LwM2MVersion: "1.2", Transport: TransportUDP, FirmwareVersion: "1.2.3", CreatedAt: reg.Time, UpdatedAt: now,
		}
		if !reflect.DeepEqual(e2, want2) {
			t.Fatalf("re-registration\n%+v\nwant\n%+v", e2, want2)
		}
		if _, err := s.GetEndpointByRegistrationID(ctx, "a1B2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old registration id still found: %v", err)
		}

		// Update: the transport changes only when given.
		dtls, udp := TransportDTLS, TransportUDP
		for _, c := range []struct {
			tr   *Transport
			want Transport
		}{{&dtls, TransportDTLS}, {nil, TransportDTLS}, {&udp, TransportUDP}, {nil, TransportUDP}} {
			got, err := s.UpdateEndpointRegistration(ctx, e.ID, EndpointUpdate{Transport: c.tr, Time: now})
			if err != nil || got.Transport != c.want {
				t.Fatalf("update with transport %v: %q, %v; want %q", c.tr, got.Transport, err, c.want)
			}
			if got, _ := s.GetEndpointByID(ctx, e.ID); got.Transport != c.want {
				t.Fatalf("stored transport %q, want %q", got.Transport, c.want)
			}
		}

		// Update: only the given fields change.
		lt, links, queue := 120*time.Second, "</3/0>,</5/0>", true
		now = clk.Advance(time.Second)
		e3, err := s.UpdateEndpointRegistration(ctx, e.ID, EndpointUpdate{Lifetime: &lt, ObjectLinks: &links, QueueMode: &queue})
		if err != nil {
			t.Fatal(err)
		}
		want3 := want2
		want3.Lifetime, want3.ObjectLinks, want3.QueueMode, want3.LastSeen, want3.UpdatedAt = lt, links, true, now, now
		if !reflect.DeepEqual(e3, want3) {
			t.Fatalf("update\n%+v\nwant\n%+v", e3, want3)
		}

		// Touch, then offline.
		seen := now.Add(5 * time.Second)
		if err := s.TouchEndpoint(ctx, e.ID, "198.51.100.9:1", seen); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetEndpoint(ctx, reg.Name); got.LastSeen != seen || got.Address != "198.51.100.9:1" || got.UpdatedAt != now {
			t.Errorf("after touch: %+v", got)
		}
		if err := s.TouchEndpoint(ctx, e.ID, "", seen); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetEndpoint(ctx, reg.Name); got.Address != "198.51.100.9:1" {
			t.Errorf("touch with no address changed it: %q", got.Address)
		}
		if err := s.SetEndpointOffline(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetEndpoint(ctx, reg.Name)
		if got.Online || got.RegistrationID != "" {
			t.Errorf("after SetEndpointOffline: online %v, registration %q", got.Online, got.RegistrationID)
		}
		if err := s.SetEndpointSite(ctx, e.ID, 0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetEndpoint(ctx, reg.Name); got.SiteID != 0 {
			t.Errorf("site not cleared: %d", got.SiteID)
		}

		// Unique registration id; missing rows.
		other := mustEndpoint(t, s, "urn:dev:other")
		if _, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:dev:third", RegistrationID: other.RegistrationID}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate registration id: %v", err)
		}
		if err := s.SetEndpointSite(ctx, e.ID, 999999); !errors.Is(err, ErrConflict) {
			t.Errorf("missing site: %v", err)
		}
		for name, err := range map[string]error{
			"touch":   s.TouchEndpoint(ctx, 999999, "", now),
			"offline": s.SetEndpointOffline(ctx, 999999),
			"site":    s.SetEndpointSite(ctx, 999999, 0),
			"fw":      s.SetEndpointFirmwareVersion(ctx, 999999, "x"),
			"delete":  s.DeleteEndpoint(ctx, 999999),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s of a missing endpoint: %v", name, err)
			}
		}
		if _, err := s.UpdateEndpointRegistration(ctx, 999999, EndpointUpdate{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a missing endpoint: %v", err)
		}
		if _, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{}); err == nil {
			t.Error("registration without a name accepted")
		}

		if err := s.DeleteEndpoint(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetEndpoint(ctx, reg.Name); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestListEndpoints(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		north, _ := s.CreateSite(ctx, "north")
		south, _ := s.CreateSite(ctx, "south")
		names := []string{"urn:imei:0003", "urn:imei:0001", "urn:dev:Sensor_1", "urn:dev:sensor%2", "urn:imei:0002"}
		ids := map[string]int64{}
		for _, n := range names {
			ids[n] = mustEndpoint(t, s, n).ID
		}
		s.SetEndpointSite(ctx, ids["urn:imei:0001"], north.ID)
		s.SetEndpointSite(ctx, ids["urn:imei:0002"], north.ID)
		s.SetEndpointSite(ctx, ids["urn:dev:Sensor_1"], south.ID)
		s.SetEndpointOffline(ctx, ids["urn:imei:0003"])
		yes, no, none := true, false, int64(0)
		list := func(f EndpointFilter) ([]string, int) {
			t.Helper()
			es, total, err := s.ListEndpoints(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.Name)
			}
			return out, total
		}
		cases := []struct {
			f     EndpointFilter
			want  []string
			total int
		}{
			{EndpointFilter{}, []string{"urn:dev:Sensor_1", "urn:dev:sensor%2", "urn:imei:0001", "urn:imei:0002", "urn:imei:0003"}, 5},
			{EndpointFilter{Limit: 2, Offset: 1}, []string{"urn:dev:sensor%2", "urn:imei:0001"}, 5},
			{EndpointFilter{Online: &no}, []string{"urn:imei:0003"}, 1},
			{EndpointFilter{Online: &yes, Limit: 1}, []string{"urn:dev:Sensor_1"}, 4},
			{EndpointFilter{SiteID: &north.ID}, []string{"urn:imei:0001", "urn:imei:0002"}, 2},
			{EndpointFilter{SiteID: &none}, []string{"urn:dev:sensor%2", "urn:imei:0003"}, 2},
			{EndpointFilter{SiteIDs: []int64{south.ID, north.ID}}, []string{"urn:dev:Sensor_1", "urn:imei:0001", "urn:imei:0002"}, 3},
			{EndpointFilter{SiteIDs: []int64{}}, nil, 0},
			{EndpointFilter{NameLike: "SENSOR"}, []string{"urn:dev:Sensor_1", "urn:dev:sensor%2"}, 2},
			{EndpointFilter{NameLike: "r_"}, []string{"urn:dev:Sensor_1"}, 1},
			{EndpointFilter{NameLike: "%"}, []string{"urn:dev:sensor%2"}, 1},
			{EndpointFilter{NameLike: "imei", SiteID: &north.ID, Online: &yes}, []string{"urn:imei:0001", "urn:imei:0002"}, 2},
		}
		for _, c := range cases {
			got, total := list(c.f)
			if !reflect.DeepEqual(got, c.want) || total != c.total {
				t.Errorf("ListEndpoints(%+v) = %v, %d; want %v, %d", c.f, got, total, c.want, c.total)
			}
		}
	})
}

func TestExpireEndpoints(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		reg := func(name string, lifetime time.Duration, at time.Time) Endpoint {
			e, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: name, RegistrationID: name, Lifetime: lifetime, Time: at})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		reg("short", 60*time.Second, t0)
		long := reg("long", 3600*time.Second, t0)
		reg("touched", 60*time.Second, t0)
		gone := reg("gone", 10*time.Second, t0)
		if err := s.SetEndpointOffline(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		touched, _ := s.GetEndpoint(ctx, "touched")
		if err := s.TouchEndpoint(ctx, touched.ID, "", t0.Add(50*time.Second)); err != nil {
			t.Fatal(err)
		}
		// Exactly at the expiry the registration still holds.
		exp, err := s.ExpireEndpoints(ctx, t0.Add(60*time.Second))
		if err != nil || len(exp) != 0 {
			t.Fatalf("at expiry: %v, %v", exp, err)
		}
		exp, err = s.ExpireEndpoints(ctx, t0.Add(61*time.Second))
		// Returned as they were: with the registration that expired.
		if err != nil || len(exp) != 1 || exp[0].Name != "short" || exp[0].RegistrationID != "short" {
			t.Fatalf("after 61 s: %+v, %v", exp, err)
		}
		if got, _ := s.GetEndpoint(ctx, "short"); got.Online || got.RegistrationID != "" {
			t.Fatalf("expired endpoint stored as %+v", got)
		}
		exp, err = s.ExpireEndpoints(ctx, t0.Add(2*time.Hour))
		if err != nil || len(exp) != 2 {
			t.Fatalf("after 2 h: %+v, %v", exp, err)
		}
		if got, _ := s.GetEndpointByID(ctx, long.ID); got.Online {
			t.Error("long-lived endpoint still online after 2 h")
		}
		if exp, _ := s.ExpireEndpoints(ctx, t0.Add(3*time.Hour)); len(exp) != 0 {
			t.Errorf("expired twice: %+v", exp)
		}
	})
}

func TestExpireEndpointsUsesIndex(t *testing.T) {
	s := openTestStore(t, sqliteTestURL(t), true)
	rows, err := s.DB().Query("EXPLAIN QUERY PLAN SELECT id FROM endpoint WHERE online AND (last_seen + lifetime * 1000) < 5")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	plan := ""
	for rows.Next() {
		var id, parent, unused int
		var detail string
		rows.Scan(&id, &parent, &unused, &detail)
		plan += detail + "\n"
	}
	if !containsAll(plan, "endpoint_expiry") {
		t.Errorf("expiry query does not use the endpoint_expiry index:\n%s", plan)
	}
}

// Only the known transports are stored; a bad one is refused before any
// write, with the value in the message.
func TestEndpointTransport(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:a")
		if e.Transport != TransportUDP {
			t.Errorf("registration without a transport: %q, want udp", e.Transport)
		}
		bad := Transport("tcp")
		empty := Transport("")
		for name, err := range map[string]error{
			"register": func() error {
				_, err := s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:dev:b", Transport: bad})
				return err
			}(),
			"update": func() error {
				_, err := s.UpdateEndpointRegistration(ctx, e.ID, EndpointUpdate{Transport: &bad})
				return err
			}(),
			"update to empty": func() error {
				_, err := s.UpdateEndpointRegistration(ctx, e.ID, EndpointUpdate{Transport: &empty})
				return err
			}(),
			"ingest": s.IngestBatch(ctx, []IngestItem{
				{Register: &EndpointRegistration{Name: "urn:dev:c", RegistrationID: "c"}},
				{Register: &EndpointRegistration{Name: "urn:dev:d", Transport: bad}},
			}),
		} {
			checkOneLine(t, err)
			if !strings.Contains(err.Error(), "invalid transport") {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, total, err := s.ListEndpoints(ctx, EndpointFilter{}); err != nil || total != 1 {
			t.Errorf("after refused writes: %d endpoints, %v; want 1", total, err)
		}
		if got, _ := s.GetEndpointByID(ctx, e.ID); got.Transport != TransportUDP || !got.UpdatedAt.Equal(e.UpdatedAt) {
			t.Errorf("refused update changed the endpoint: %+v", got)
		}

		// The ingest writer's batch records the transport as
		// UpsertEndpointRegistration does.
		var reg, again Endpoint
		if err := s.IngestBatch(ctx, []IngestItem{
			{Register: &EndpointRegistration{Name: "urn:dev:e", RegistrationID: "e1", Transport: TransportDTLS}, Registered: &reg},
		}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetEndpoint(ctx, "urn:dev:e"); reg.Transport != TransportDTLS || got.Transport != TransportDTLS {
			t.Errorf("batched DTLS registration: returned %q, stored %q", reg.Transport, got.Transport)
		}
		if err := s.IngestBatch(ctx, []IngestItem{
			{Register: &EndpointRegistration{Name: "urn:dev:e", RegistrationID: "e2"}, Registered: &again},
		}); err != nil {
			t.Fatal(err)
		}
		if again.Transport != TransportUDP {
			t.Errorf("batched re-registration without a transport: %q, want udp", again.Transport)
		}
	})
}
