package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestResourceTypeRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		types := []ResourceType{
			{ObjectID: 3303, ResourceID: 5700, Name: "Sensor Value", DataType: lwm2m.TypeFloat, Units: "Cel", Operations: "R"},
			{ObjectID: 3, ResourceID: 7, Name: "Power Source Voltage", DataType: lwm2m.TypeInteger, Units: "mV", Multiple: true, Operations: "R"},
			{ObjectID: 3, ResourceID: 4, Name: "Reboot", DataType: lwm2m.TypeNone, Operations: "E"},
			{ObjectID: 5, ResourceID: 0, Name: "Package", DataType: lwm2m.TypeOpaque, Operations: "W"},
			{ObjectID: 65534, ResourceID: 65534, Name: "Max", DataType: lwm2m.TypeUnsigned},
		}
		if err := s.UpsertResourceTypes(ctx, types); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetResourceType(ctx, 3303, 5700)
		if err != nil || !reflect.DeepEqual(got, types[0]) {
			t.Errorf("GetResourceType = %+v, %v", got, err)
		}
		list, err := s.ListResourceTypes(ctx)
		want := []ResourceType{types[2], types[1], types[3], types[0], types[4]}
		if err != nil || !reflect.DeepEqual(list, want) {
			t.Errorf("ListResourceTypes = %+v, %v", list, err)
		}
		// Upsert replaces.
		changed := types[0]
		changed.Units, changed.Name = "K", "Temperature"
		if err := s.UpsertResourceTypes(ctx, []ResourceType{changed}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetResourceType(ctx, 3303, 5700); !reflect.DeepEqual(got, changed) {
			t.Errorf("after upsert: %+v", got)
		}
		if err := s.UpsertResourceTypes(ctx, []ResourceType{{ObjectID: 65535, Name: "bad"}}); err == nil {
			t.Error("ID 65535 accepted")
		}
		if err := s.DeleteResourceType(ctx, 3, 4); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetResourceType(ctx, 3, 4); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted: %v", err)
		}
		if err := s.DeleteResourceType(ctx, 3, 4); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice: %v", err)
		}
	})
}
