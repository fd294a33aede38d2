package objects

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestOps(t *testing.T) {
	for _, tc := range []struct {
		s   string
		ops Ops
	}{{"", 0}, {"R", R}, {"W", W}, {"RW", RW}, {"E", E}} {
		got, err := ParseOps(tc.s)
		if err != nil || got != tc.ops {
			t.Errorf("ParseOps(%q) = %v, %v; want %v", tc.s, got, err, tc.ops)
		}
		if s := tc.ops.String(); s != tc.s {
			t.Errorf("%#v.String() = %q, want %q", tc.ops, s, tc.s)
		}
	}
	if got, err := ParseOps(" RW\n"); err != nil || got != RW {
		t.Errorf("ParseOps with spaces = %v, %v", got, err)
	}
	for _, bad := range []string{"X", "WR", "RWE", "r", "R W"} {
		if _, err := ParseOps(bad); err == nil {
			t.Errorf("ParseOps(%q) succeeded", bad)
		}
	}
	if s := (R | W | E).String(); s != "RWE" {
		t.Errorf("RWE.String() = %q", s)
	}
	if !RW.Has(R) || !RW.Has(RW) || RW.Has(E) || R.Has(RW) {
		t.Error("Has is wrong")
	}
}

// TestBuiltinTables checks the internal consistency of the built-in
// tables; their agreement with the OMA registry is checked in
// objects_registry_test.go.
func TestBuiltinTables(t *testing.T) {
	want := []uint16{0, 1, 2, 3, 4, 5, 6, 7, 9, 19, 3303, 3304, 3311, 3313, 3315, 3323, 3336, 3342, 10240}
	var got []uint16
	for _, d := range Default().Objects() {
		got = append(got, d.ID)
		if d.Name == "" || d.Version == "" || d.URN == "" || d.Description == "" {
			t.Errorf("object %d: empty name, version, URN or description: %+v", d.ID, d)
		}
		if len(d.Resources) == 0 {
			t.Errorf("object %d: no resources", d.ID)
		}
		for i, r := range d.Resources {
			if i > 0 && d.Resources[i-1].ID >= r.ID {
				t.Errorf("object %d: resources not sorted or duplicated at %d", d.ID, r.ID)
			}
			if r.Name == "" {
				t.Errorf("object %d resource %d: empty name", d.ID, r.ID)
			}
			if (r.Operations == E) != (r.Type == lwm2m.TypeNone) {
				t.Errorf("object %d resource %d: operations %q with type %s", d.ID, r.ID, r.Operations, r.Type)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("built-in objects = %v, want %v", got, want)
	}
}

func TestTypeOf(t *testing.T) {
	r := Default()
	var typeOf lwm2m.TypeFunc = r.TypeOf
	for _, tc := range []struct {
		path string
		typ  lwm2m.Type
		ok   bool
	}{
		{"/3/0/0", lwm2m.TypeString, true},
		{"/3/0/9", lwm2m.TypeInteger, true},
		{"/3/0/13", lwm2m.TypeTime, true},
		{"/3/0/4", lwm2m.TypeNone, true}, // Reboot, executable
		{"/3/0/7/1", lwm2m.TypeInteger, true},
		{"/3/0/22/0", lwm2m.TypeObjlnk, true},
		{"/0/1/3", lwm2m.TypeOpaque, true},
		{"/0/1/16/2", lwm2m.TypeUnsigned, true},
		{"/1/0/6", lwm2m.TypeBoolean, true},
		{"/3303/4/5700", lwm2m.TypeFloat, true},
		{"/3336/0/6051", lwm2m.TypeFloat, true},
		{"/10240/0/1", lwm2m.TypeTime, true},
		{"/3/0/9/0", lwm2m.TypeInteger, true}, // single resource addressed as an instance: still its type
		{"/3/0/99", lwm2m.TypeNone, false},
		{"/3/0/99/0", lwm2m.TypeNone, false},
		{"/4242/0/0", lwm2m.TypeNone, false},
		{"/4242/0/0/0", lwm2m.TypeNone, false},
		{"/3/0", lwm2m.TypeNone, false},
		{"/3", lwm2m.TypeNone, false},
		{"/", lwm2m.TypeNone, false},
	} {
		typ, ok := typeOf.Lookup(lwm2m.MustParsePath(tc.path))
		if typ != tc.typ || ok != tc.ok {
			t.Errorf("TypeOf(%s) = %s, %v; want %s, %v", tc.path, typ, ok, tc.typ, tc.ok)
		}
	}
}

func TestTypeOfUntypedReadable(t *testing.T) {
	var r Catalog
	err := r.Add(ObjectDef{ID: 40000, Name: "X", Resources: []ResourceDef{
		{ID: 0, Name: "untyped", Operations: R},
		{ID: 1, Name: "no ops", Operations: 0},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if typ, ok := r.TypeOf(lwm2m.NewPath(40000, 0, 0)); ok {
		t.Errorf("readable resource without a type: TypeOf = %s, true; want false", typ)
	}
	if typ, ok := r.TypeOf(lwm2m.NewPath(40000, 0, 1)); !ok || typ != lwm2m.TypeNone {
		t.Errorf("resource without operations or type: TypeOf = %s, %v; want none, true", typ, ok)
	}
}

func TestObjectAndResource(t *testing.T) {
	r := Default()
	d, ok := r.Object(5)
	if !ok || d.Name != "Firmware Update" || d.Multiple || d.Version != "1.2" {
		t.Fatalf("Object(5) = %+v, %v", d, ok)
	}
	res, ok := r.Resource(5, 1)
	if !ok || res.Name != "Package URI" || res.Operations != RW || res.Type != lwm2m.TypeString || res.RangeEnumeration != "0..255" {
		t.Errorf("Resource(5, 1) = %+v, %v", res, ok)
	}
	if res, ok := r.Resource(5, 4); ok { // 5/4 does not exist in any version
		t.Errorf("Resource(5, 4) = %+v, true", res)
	}
	if _, ok := r.Resource(8, 0); ok {
		t.Error("Resource(8, 0) found; object 8 is not built in")
	}
	if _, ok := r.Object(65534); ok {
		t.Error("Object(65534) found")
	}
	if res, ok := r.Resource(3, 9); !ok || res.Units != "/100" {
		t.Errorf("Resource(3, 9) = %+v, %v; want units /100", res, ok)
	}
}

func TestZeroRegistry(t *testing.T) {
	var r Catalog
	if r.Len() != 0 || len(r.Objects()) != 0 {
		t.Error("zero Registry not empty")
	}
	if _, ok := r.Object(3); ok {
		t.Error("zero Registry has object 3")
	}
	if _, ok := r.TypeOf(lwm2m.NewPath(3, 0, 0)); ok {
		t.Error("zero Registry types /3/0/0")
	}
}

func TestAddOverridesBuiltin(t *testing.T) {
	r := Default()
	in := ObjectDef{ID: 3303, Name: "Temperature (integer)", Multiple: true, Resources: []ResourceDef{
		{ID: 5701, Name: "Sensor Units", Operations: R, Type: lwm2m.TypeString},
		{ID: 5700, Name: "Sensor Value", Operations: R, Type: lwm2m.TypeInteger, Mandatory: true},
	}}
	if err := r.Add(in); err != nil {
		t.Fatal(err)
	}
	in.Resources[0].Name = "changed after Add" // Add must have copied

	d, _ := r.Object(3303)
	if d.Name != "Temperature (integer)" || d.Version != "1.0" || len(d.Resources) != 2 {
		t.Fatalf("after Add: %+v", d)
	}
	if d.Resources[0].ID != 5700 || d.Resources[1].Name != "Sensor Units" {
		t.Errorf("resources not sorted or not copied: %+v", d.Resources)
	}
	if typ, ok := r.TypeOf(lwm2m.NewPath(3303, 0, 5700)); typ != lwm2m.TypeInteger || !ok {
		t.Errorf("overridden TypeOf = %s, %v; want integer", typ, ok)
	}
	if _, ok := r.TypeOf(lwm2m.NewPath(3303, 0, 5601)); ok {
		t.Error("resource of the replaced definition still known")
	}
	if typ, _ := Default().TypeOf(lwm2m.NewPath(3303, 0, 5700)); typ != lwm2m.TypeFloat {
		t.Errorf("Add changed another registry: Default has %s", typ)
	}
}

func TestAddRejects(t *testing.T) {
	r := Default()
	for name, d := range map[string]ObjectDef{
		"duplicate resource": {ID: 3, Name: "Device", Resources: []ResourceDef{{ID: 1, Name: "a"}, {ID: 0, Name: "b"}, {ID: 1, Name: "c"}}},
		"object ID 65535":    {ID: 65535, Name: "x"},
		"resource ID 65535":  {ID: 3, Name: "x", Resources: []ResourceDef{{ID: 65535, Name: "y"}}},
	} {
		if err := r.Add(d); err == nil {
			t.Errorf("%s: Add succeeded", name)
		}
	}
	if d, _ := r.Object(3); d.Name != "Device" || len(d.Resources) != 23 {
		t.Errorf("failed Add changed object 3: %+v", d)
	}
}

func TestConcurrentReadsAndWrites(t *testing.T) {
	r := Default()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				if typ, ok := r.TypeOf(lwm2m.NewPath(3, 0, 0)); !ok || typ != lwm2m.TypeString {
					t.Errorf("reader %d: TypeOf(/3/0/0) = %s, %v", i, typ, ok)
					return
				}
				r.Objects()
				r.Resource(uint16(30000+j%4), 0)
			}
		})
	}
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				id := uint16(30000 + (i*50+j)%4)
				if err := r.Add(ObjectDef{ID: id, Name: fmt.Sprint(j), Resources: []ResourceDef{{ID: 0, Name: "v", Operations: R, Type: lwm2m.TypeInteger}}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := r.Len(); n != len(builtin)+4 {
		t.Errorf("Len = %d, want %d", n, len(builtin)+4)
	}
}
