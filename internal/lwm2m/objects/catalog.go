package objects

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Catalog holds object definitions keyed by object ID. The zero Catalog is
// empty and ready to use; Default returns one holding the built-in
// definitions.
//
// A Catalog is safe for concurrent use. Lookups take no lock: they read an
// immutable snapshot that Add, LoadFile and LoadDir replace as a whole, so a
// lookup sees a definition either entirely before or entirely after a change.
// Definitions returned by lookups are shared and must not be modified.
type Catalog struct {
	mu   sync.Mutex                            // serializes writers
	defs atomic.Pointer[map[uint16]*ObjectDef] // never modified once stored
}

// builtinDefs are the normalized built-in definitions, shared by every
// Catalog that Default returns. Nothing modifies them.
var builtinDefs = sync.OnceValue(func() []*ObjectDef {
	out := make([]*ObjectDef, 0, len(builtin))
	for _, d := range builtin {
		n, err := normalize(d)
		if err != nil {
			panic(err) // a broken table in this package; the tests catch it
		}
		out = append(out, n)
	}
	return out
})

// Default returns a new Catalog holding the project's built-in definitions
// (see the package documentation). Each call returns an independent
// Catalog: adding to one does not change another. The definitions
// themselves are shared, read-only values.
func Default() *Catalog {
	r := new(Catalog)
	r.store(builtinDefs())
	return r
}

func (r *Catalog) snapshot() map[uint16]*ObjectDef {
	if m := r.defs.Load(); m != nil {
		return *m
	}
	return nil
}

// store adds or replaces the given normalized definitions in one step.
func (r *Catalog) store(defs []*ObjectDef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(r.snapshot())
	if m == nil {
		m = make(map[uint16]*ObjectDef, len(defs))
	}
	for _, d := range defs {
		m[d.ID] = d
	}
	r.defs.Store(&m)
}

// Add adds def, replacing any definition with the same object ID. The
// Catalog keeps its own copy with resources sorted by ID and Version
// defaulted to "1.0"; def is not retained. Add fails, changing nothing, when
// an ID is above lwm2m.MaxID or a resource ID occurs twice.
func (r *Catalog) Add(def ObjectDef) error {
	d, err := normalize(def)
	if err != nil {
		return err
	}
	r.store([]*ObjectDef{d})
	return nil
}

// Object returns the definition of object id.
func (r *Catalog) Object(id uint16) (*ObjectDef, bool) {
	d, ok := r.snapshot()[id]
	return d, ok
}

// Resource returns the definition of resource res of object obj.
func (r *Catalog) Resource(obj, res uint16) (*ResourceDef, bool) {
	d, ok := r.snapshot()[obj]
	if !ok {
		return nil, false
	}
	return d.Resource(res)
}

// TypeOf returns the data type of the resource a depth-3 (/3/0/1) or depth-4
// (/3/0/6/0) path addresses; it has the shape of an lwm2m.TypeFunc. ok is
// false for shallower paths, unknown objects and resources, and resources
// that are readable or writable but declare no type (a DDF may leave <Type>
// empty); executables report TypeNone with ok true. A depth-4 path on a
// single-instance resource still reports the resource's type: checking the
// structure is the caller's business.
func (r *Catalog) TypeOf(p lwm2m.Path) (lwm2m.Type, bool) {
	if p.Depth() < 3 {
		return lwm2m.TypeNone, false
	}
	res, ok := r.Resource(p.Object(), p.Resource())
	if !ok {
		return lwm2m.TypeNone, false
	}
	if res.Type == lwm2m.TypeNone && res.Operations&RW != 0 {
		return lwm2m.TypeNone, false
	}
	return res.Type, true
}

// Objects returns every definition, sorted by object ID, in a new slice.
func (r *Catalog) Objects() []*ObjectDef {
	m := r.snapshot()
	out := make([]*ObjectDef, 0, len(m))
	for _, id := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[id])
	}
	return out
}

// Len returns the number of object definitions.
func (r *Catalog) Len() int { return len(r.snapshot()) }
