package lwm2m

import (
	"fmt"
	"slices"
	"time"
)

// Record is one leaf value of the data tree as exchanged by the codecs: the
// value of a single-instance resource (Path depth 3) or of one instance of a
// multiple-instance resource (Path depth 4), with the device's timestamp when
// the format carried one (zero otherwise). A list of records may hold the
// same path several times with different timestamps (a SenML time series).
type Record struct {
	Path  Path
	Value Value
	Time  time.Time
}

// TypeFunc tells a decoder the data type of the resource at a path (depth 3
// or 4); ok is false for a resource it does not know. Decoders of formats
// that carry no type (TLV, text, LwM2M-CBOR numbers) use it to type values;
// a nil TypeFunc knows nothing. objects.Registry.TypeOf is the usual one.
type TypeFunc func(p Path) (t Type, ok bool)

// Lookup calls f, tolerating a nil f.
func (f TypeFunc) Lookup(p Path) (Type, bool) {
	if f == nil {
		return TypeNone, false
	}
	return f(p)
}

// SortRecords orders records by path (Path.Compare), keeping the relative
// order of records with the same path (time series stay in arrival order).
func SortRecords(rs []Record) {
	slices.SortStableFunc(rs, func(a, b Record) int { return a.Path.Compare(b.Path) })
}

// Kind is the kind of a Node.
type Kind uint8

const (
	KindObject Kind = iota + 1
	KindInstance
	KindResource         // single-instance resource: Value is set
	KindMultiResource    // multiple-instance resource: Children are resource instances
	KindResourceInstance // Value is set
)

func (k Kind) String() string {
	switch k {
	case KindObject:
		return "object"
	case KindInstance:
		return "instance"
	case KindResource:
		return "resource"
	case KindMultiResource:
		return "multiple resource"
	case KindResourceInstance:
		return "resource instance"
	}
	return "kind(?)"
}

// Node is one element of the LwM2M data tree: an object, an object instance,
// a single- or multiple-instance resource, or a resource instance. Leaves
// (resources and resource instances) carry Value and Time; the others carry
// Children ordered by ID.
type Node struct {
	Kind     Kind
	Path     Path
	Value    Value
	Time     time.Time
	Children []Node
}

// Tree builds the node tree of the given records under base (the path that
// was read, e.g. "/3/0"): it returns the nodes at base's depth+1 or, when
// base is itself a resource or resource instance, the single node at base.
// Records outside base or shallower than depth 3 are an error. When a path
// occurs several times the last record wins (a tree holds one value per
// path; use records for time series).
func Tree(base Path, rs []Record) ([]Node, error) {
	sorted := slices.Clone(rs)
	SortRecords(sorted)
	// Keep the last record of each path.
	uniq := sorted[:0]
	for _, r := range sorted {
		if r.Path.Depth() < 3 {
			return nil, fmt.Errorf("lwm2m: record path %s is not a resource", r.Path)
		}
		if !r.Path.HasPrefix(base) {
			return nil, fmt.Errorf("lwm2m: record path %s is outside %s", r.Path, base)
		}
		if n := len(uniq); n > 0 && uniq[n-1].Path == r.Path {
			uniq[n-1] = r
			continue
		}
		uniq = append(uniq, r)
	}
	depth := base.Depth() + 1
	if base.Depth() >= 3 {
		depth = base.Depth() // a resource read yields the resource node itself
	}
	return build(uniq, depth), nil
}

// build groups sorted, unique records into nodes at the given depth (1..4).
func build(rs []Record, depth int) []Node {
	var out []Node
	for i := 0; i < len(rs); {
		p := rs[i].Path.Truncate(depth)
		j := i + 1
		for j < len(rs) && rs[j].Path.HasPrefix(p) {
			j++
		}
		group := rs[i:j]
		n := Node{Path: p}
		switch depth {
		case 1:
			n.Kind = KindObject
			n.Children = build(group, 2)
		case 2:
			n.Kind = KindInstance
			n.Children = build(group, 3)
		case 3:
			if len(group) == 1 && group[0].Path.Depth() == 3 {
				n.Kind, n.Value, n.Time = KindResource, group[0].Value, group[0].Time
			} else {
				n.Kind = KindMultiResource
				n.Children = build(group, 4)
			}
		case 4:
			n.Kind, n.Value, n.Time = KindResourceInstance, group[0].Value, group[0].Time
		}
		out = append(out, n)
		i = j
	}
	return out
}

// Records flattens nodes back into records, in path order.
func Records(nodes []Node) []Record {
	var out []Record
	var walk func(ns []Node)
	walk = func(ns []Node) {
		for _, n := range ns {
			switch n.Kind {
			case KindResource, KindResourceInstance:
				out = append(out, Record{Path: n.Path, Value: n.Value, Time: n.Time})
			default:
				walk(n.Children)
			}
		}
	}
	walk(nodes)
	slices.SortStableFunc(out, func(a, b Record) int { return a.Path.Compare(b.Path) })
	return out
}
