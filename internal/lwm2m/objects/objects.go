package objects

import (
	"fmt"
	"slices"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Ops is the set of operations a resource allows, as a bit set.
type Ops uint8

// The operations of a resource: Read, Write and Execute. RW is the
// combination DDF files write as "RW".
const (
	R  Ops = 1 << iota // Read (and Observe)
	W                  // Write
	E                  // Execute
	RW = R | W
)

// Has reports whether every operation in q is in o.
func (o Ops) Has(q Ops) bool { return o&q == q }

// String returns the DDF spelling: "R", "W", "RW", "E", "" for none; other
// combinations list their letters in the order R, W, E ("RWE").
func (o Ops) String() string {
	var b strings.Builder
	if o&R != 0 {
		b.WriteByte('R')
	}
	if o&W != 0 {
		b.WriteByte('W')
	}
	if o&E != 0 {
		b.WriteByte('E')
	}
	return b.String()
}

// ParseOps parses the DDF <Operations> values "R", "W", "RW", "E" and ""
// (no operations), ignoring surrounding white space.
func ParseOps(s string) (Ops, error) {
	switch strings.TrimSpace(s) {
	case "":
		return 0, nil
	case "R":
		return R, nil
	case "W":
		return W, nil
	case "RW":
		return RW, nil
	case "E":
		return E, nil
	}
	return 0, fmt.Errorf("objects: unknown operations %q (want R, W, RW, E or empty)", s)
}

// ObjectDef describes one LwM2M object. Definitions held by a Catalog are
// shared and read-only: callers must not modify a definition (or its
// Resources) they obtained from a Catalog; copy it first.
type ObjectDef struct {
	ID          uint16
	Name        string
	Description string // short, may be empty
	Version     string // object version, "1.0" when the DDF gives none
	URN         string // e.g. "urn:oma:lwm2m:oma:3:1.2"
	Multiple    bool   // the object may have several instances
	Mandatory   bool   // clients must implement the object
	Resources   []ResourceDef
}

// ResourceDef describes one resource of an object.
type ResourceDef struct {
	ID               uint16
	Name             string
	Operations       Ops
	Multiple         bool // multiple-instance resource
	Mandatory        bool
	Type             lwm2m.Type // TypeNone for executables
	RangeEnumeration string     // as written in the DDF, e.g. "0..100"
	Units            string     // SenML unit, e.g. "s", "dBm", "/100"
	Description      string     // short, may be empty
}

// Resource returns the resource with the given ID. Resources must be sorted
// by ID, as they are in every definition held by a Catalog.
func (d *ObjectDef) Resource(id uint16) (*ResourceDef, bool) {
	i, ok := slices.BinarySearchFunc(d.Resources, id, func(r ResourceDef, id uint16) int {
		return int(r.ID) - int(id)
	})
	if !ok {
		return nil, false
	}
	return &d.Resources[i], true
}

// normalize returns a copy of d with its resources copied and sorted by ID
// and a default version, or an error for an ID above lwm2m.MaxID or a
// resource ID that occurs twice.
func normalize(d ObjectDef) (*ObjectDef, error) {
	if d.ID > lwm2m.MaxID {
		return nil, fmt.Errorf("objects: object ID %d above %d", d.ID, lwm2m.MaxID)
	}
	if d.Version == "" {
		d.Version = "1.0"
	}
	d.Resources = slices.Clone(d.Resources)
	slices.SortStableFunc(d.Resources, func(a, b ResourceDef) int { return int(a.ID) - int(b.ID) })
	for i, r := range d.Resources {
		if r.ID > lwm2m.MaxID {
			return nil, fmt.Errorf("objects: object %d: resource ID %d above %d", d.ID, r.ID, lwm2m.MaxID)
		}
		if i > 0 && d.Resources[i-1].ID == r.ID {
			return nil, fmt.Errorf("objects: object %d: resource %d defined twice", d.ID, r.ID)
		}
	}
	return &d, nil
}
