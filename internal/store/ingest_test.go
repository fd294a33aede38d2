package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func observation(token string, epID int64, regID string) *Observation {
	return &Observation{Token: []byte(token), EndpointID: epID, RegistrationID: regID,
		Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0, 5700)}, Format: lwm2m.FormatText}
}

func tokensOf(t *testing.T, s *Store, regID string) []string {
	t.Helper()
	obs, err := s.ListObservations(context.Background(), regID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range obs {
		out = append(out, string(o.Token))
	}
	return out
}

// A batch of many Registers, each with its history value, stores every
// endpoint with the values linked to it, in multi-row statements larger
// than one chunk; a name registered twice in one batch ends with the later
// registration, and both items get the same endpoint.
func TestIngestBatchRegisters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const n = insertChunk + 37
		items := make([]IngestItem, n+1)
		got := make([]Endpoint, n+1)
		for i := range n {
			name := fmt.Sprintf("urn:dev:%04d", i)
			items[i] = IngestItem{
				Register:   &EndpointRegistration{Name: name, RegistrationID: "r" + name, Address: "192.0.2.1:1", Lifetime: time.Minute},
				Registered: &got[i],
				Values:     []ResourceValue{{Path: lwm2m.NewPath(10240, 0, 0), Value: lwm2m.Time(t0), DeviceTime: t0}},
			}
		}
		items[n] = IngestItem{Register: &EndpointRegistration{Name: "urn:dev:0003", RegistrationID: "again"}, Registered: &got[n]}
		if err := s.IngestBatch(ctx, items); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			name := fmt.Sprintf("urn:dev:%04d", i)
			if got[i].Name != name || got[i].ID == 0 || !got[i].Online {
				t.Fatalf("item %d got endpoint %+v", i, got[i])
			}
			latest, err := s.LatestResources(ctx, got[i].ID, lwm2m.Root)
			if err != nil || len(latest) != 1 || latest[0].Path != lwm2m.NewPath(10240, 0, 0) {
				t.Fatalf("values of %s: %v, %v", name, latest, err)
			}
		}
		if got[n].ID != got[3].ID || got[n].RegistrationID != "again" || got[3].RegistrationID != "r"+got[3].Name {
			t.Errorf("twice in one batch: first %+v, second %+v", got[3], got[n])
		}
		if e, _ := s.GetEndpoint(ctx, "urn:dev:0003"); e.RegistrationID != "again" {
			t.Errorf("stored registration %q, want the later one", e.RegistrationID)
		}
		if _, total, _ := s.ListEndpoints(ctx, EndpointFilter{}); total != n {
			t.Errorf("%d endpoints, want %d", total, n)
		}
	})
}

// Events of a batch get distinct ids in item order, each value its own
// event's id, and ids keep counting with events stored on their own.
func TestIngestBatchEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:a")
		first, err := s.IngestEvent(ctx, Event{EndpointID: e.ID, Kind: "send"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var items []IngestItem
		for i := range 300 {
			items = append(items, IngestItem{
				Event: Event{EndpointID: e.ID, Kind: "send", ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond)},
				Values: []ResourceValue{
					{EndpointID: e.ID, Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(float64(i))},
					{EndpointID: e.ID, Path: lwm2m.NewPath(3304, 0, 5700), Value: lwm2m.Float(float64(-i))},
				},
			})
		}
		if err := s.IngestBatch(ctx, items); err != nil {
			t.Fatal(err)
		}
		last, err := s.IngestEvent(ctx, Event{EndpointID: e.ID, Kind: "send"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.ListEvents(ctx, e.ID, 1000)
		if err != nil || len(evs) != 302 {
			t.Fatalf("%d events, %v", len(evs), err)
		}
		if evs[0].ID != last || evs[len(evs)-1].ID != first {
			t.Errorf("ids: first %d last %d, listed from %d to %d", first, last, evs[len(evs)-1].ID, evs[0].ID)
		}
		for k, ev := range evs[1 : len(evs)-1] {
			i := 299 - k // newest first
			if !ev.ReceivedAt.Equal(t0.Add(time.Duration(i)*time.Millisecond)) || ev.ID <= first || ev.ID >= last {
				t.Fatalf("event %d: %+v", i, ev)
			}
			vals, err := s.EventResources(ctx, ev.ID)
			if err != nil || len(vals) != 2 || vals[0].Value.FloatValue() != float64(i) || vals[1].Value.FloatValue() != float64(-i) {
				t.Fatalf("values of event %d: %v, %v", i, vals, err)
			}
		}
	})
}

// Register, Update and End in a batch change the endpoint and its
// observations as the methods of their own do; Observe and Unobserve add
// and delete observations.
func TestIngestBatchRegistrationLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b := mustEndpoint(t, s, "urn:dev:a"), mustEndpoint(t, s, "urn:dev:b")
		if err := s.IngestBatch(ctx, []IngestItem{
			{Observe: observation("a1", a.ID, a.RegistrationID)},
			{Observe: observation("a2", a.ID, a.RegistrationID)},
			{Observe: observation("b1", b.ID, b.RegistrationID)},
			{Observe: observation("b2", b.ID, b.RegistrationID)},
		}); err != nil {
			t.Fatal(err)
		}
		// A registers anew (its old observations go), b's observation b2
		// is cancelled and b updates.
		lt := 10 * time.Minute
		var again Endpoint
		if err := s.IngestBatch(ctx, []IngestItem{
			{Register: &EndpointRegistration{Name: "urn:dev:a", RegistrationID: "a-new"}, Registered: &again},
			{Unobserve: []byte("b2")},
			{Unobserve: []byte("never stored")[:8]},
			{Update: &RegistrationUpdate{EndpointID: b.ID, EndpointUpdate: EndpointUpdate{Lifetime: &lt, Address: "198.51.100.7:9"}}},
		}); err != nil {
			t.Fatal(err)
		}
		if got := tokensOf(t, s, a.RegistrationID); len(got) != 0 {
			t.Errorf("observations of a's replaced registration: %q", got)
		}
		if got := tokensOf(t, s, b.RegistrationID); len(got) != 1 || got[0] != "b1" {
			t.Errorf("observations of b: %q, want b1", got)
		}
		if e, _ := s.GetEndpointByID(ctx, b.ID); e.Lifetime != lt || e.Address != "198.51.100.7:9" || !e.Online {
			t.Errorf("b after the update: %+v", e)
		}
		// b de-registers: offline, its observations gone, a untouched.
		if err := s.IngestBatch(ctx, []IngestItem{
			{Observe: observation("a3", a.ID, "a-new")},
			{End: &RegistrationEnd{EndpointID: b.ID, RegistrationID: b.RegistrationID},
				Values: []ResourceValue{{EndpointID: b.ID, Path: lwm2m.NewPath(10240, 0, 1), Value: lwm2m.Time(t0)}}},
		}); err != nil {
			t.Fatal(err)
		}
		if e, _ := s.GetEndpointByID(ctx, b.ID); e.Online || e.RegistrationID != "" {
			t.Errorf("b after its end: %+v", e)
		}
		if got := tokensOf(t, s, b.RegistrationID); len(got) != 0 {
			t.Errorf("observations of b's ended registration: %q", got)
		}
		if got := tokensOf(t, s, "a-new"); len(got) != 1 || got[0] != "a3" {
			t.Errorf("observations of a: %q", got)
		}
		// The end of an endpoint deleted meanwhile is no error.
		if err := s.DeleteEndpoint(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.IngestBatch(ctx, []IngestItem{{End: &RegistrationEnd{EndpointID: b.ID, RegistrationID: "gone"}}}); err != nil {
			t.Errorf("end of a deleted endpoint: %v", err)
		}
		// Failures: a token already stored, an update of a deleted
		// endpoint; the batch is all or nothing.
		err := s.IngestBatch(ctx, []IngestItem{
			{Observe: observation("a9", a.ID, "a-new")},
			{Observe: observation("a3", a.ID, "a-new")},
		})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("token stored twice: %v", err)
		}
		checkOneLine(t, err)
		if got := tokensOf(t, s, "a-new"); len(got) != 1 {
			t.Errorf("a failed batch stored observations: %q", got)
		}
		err = s.IngestBatch(ctx, []IngestItem{{Update: &RegistrationUpdate{EndpointID: b.ID}}})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a deleted endpoint: %v", err)
		}
		err = s.IngestBatch(ctx, []IngestItem{{Observe: &Observation{Token: []byte("123456789"), EndpointID: a.ID, RegistrationID: "a-new"}}})
		if err == nil {
			t.Error("a 9-byte token was stored")
		}
	})
}

// An item with NoCredential for an endpoint that has credentials stores
// nothing and is marked Refused; the other items of the batch are stored.
func TestIngestBatchNoCredential(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:dev:secure", Kind: CredentialPSK,
			PSKIdentity: "id", PSKKeyEnc: []byte("sealed")}); err != nil {
			t.Fatal(err)
		}
		plain := mustEndpoint(t, s, "urn:dev:plain")
		var reg Endpoint
		items := []IngestItem{
			{NoCredential: "urn:dev:secure", Register: &EndpointRegistration{Name: "urn:dev:secure", RegistrationID: "s"}, Registered: &reg},
			{NoCredential: "urn:dev:plain", Event: Event{EndpointID: plain.ID, Kind: "send"},
				Values: []ResourceValue{{EndpointID: plain.ID, Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(1)}}},
			{NoCredential: "urn:dev:new", Register: &EndpointRegistration{Name: "urn:dev:new", RegistrationID: "n"}},
		}
		if err := s.IngestBatch(ctx, items); err != nil {
			t.Fatal(err)
		}
		if !items[0].Refused || items[1].Refused || items[2].Refused {
			t.Errorf("refused: %v %v %v, want only the first", items[0].Refused, items[1].Refused, items[2].Refused)
		}
		if reg.ID != 0 {
			t.Errorf("a refused Register returned %+v", reg)
		}
		if _, err := s.GetEndpoint(ctx, "urn:dev:secure"); !errors.Is(err, ErrNotFound) {
			t.Errorf("refused Register stored: %v", err)
		}
		if _, err := s.GetEndpoint(ctx, "urn:dev:new"); err != nil {
			t.Errorf("Register beside a refused one: %v", err)
		}
		if evs, _ := s.ListEvents(ctx, plain.ID, 10); len(evs) != 1 {
			t.Errorf("Send beside a refused Register: %d events", len(evs))
		}
		// Once the endpoint has credentials, its plain Send is refused.
		if _, err := s.CreateCredential(ctx, Credential{EndpointName: "urn:dev:plain", Kind: CredentialX509, CertCN: "urn:dev:plain"}); err != nil {
			t.Fatal(err)
		}
		items = items[1:2]
		if err := s.IngestBatch(ctx, items); err != nil || !items[0].Refused {
			t.Errorf("Send of an endpoint with credentials: refused %v, %v", items[0].Refused, err)
		}
		if evs, _ := s.ListEvents(ctx, plain.ID, 10); len(evs) != 1 {
			t.Errorf("refused Send stored: %d events", len(evs))
		}
	})
}
