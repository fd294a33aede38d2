package lwm2mcbor

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// encMode writes deterministic CBOR: map keys in bytewise order, floats in
// the shortest form that keeps their value, NaN payloads untouched, nil
// byte strings as empty ones.
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{
		Sort:          cbor.SortBytewiseLexical,
		ShortestFloat: cbor.ShortestFloat16,
		NaNConvert:    cbor.NaNConvertNone,
		NilContainers: cbor.NilContainerAsEmpty,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// Encode writes records as an LwM2M-CBOR document, for a response or
// request at base. Every record must name a resource or resource instance
// at or below base; no path may appear twice, nor both as a resource value
// and with resource instances. Record.Time is ignored: the format has no
// timestamps.
//
// Paths are written absolute, with chains of single children folded into
// array keys: /3/0/0 and /3/0/1 become {[3, 0]: {0: ..., 1: ...}}, a lone
// /3/0/1 becomes {[3, 0, 1]: ...}. Values are written by type: integer and
// unsigned as CBOR integers, float in the shortest exact float width,
// boolean, string and corelnk as text, objlnk as text "3:0", opaque as a
// byte string, time as tag 1 with integer seconds, TypeNone as null. The
// output is deterministic. No records give the empty map.
func Encode(base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	sorted := slices.Clone(rs)
	lwm2m.SortRecords(sorted)
	for i, r := range sorted {
		if r.Path.Depth() < 3 {
			return nil, fmt.Errorf("lwm2mcbor: record path %s is not a resource or resource instance", r.Path)
		}
		if !r.Path.HasPrefix(base) {
			return nil, fmt.Errorf("lwm2mcbor: record path %s is outside %s", r.Path, base)
		}
		if i > 0 {
			prev := sorted[i-1].Path
			if prev == r.Path {
				return nil, fmt.Errorf("lwm2mcbor: path %s given twice (the format carries no time series)", r.Path)
			}
			if r.Path.HasPrefix(prev) {
				return nil, fmt.Errorf("lwm2mcbor: %s has a value and resource instances (%s)", prev, r.Path)
			}
		}
	}
	root, err := build(sorted, 0)
	if err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("lwm2mcbor: %w", err)
	}
	return b, nil
}

// build returns the map for records that share their first depth IDs:
// sorted, without duplicates or prefix conflicts, all deeper than depth.
func build(rs []lwm2m.Record, depth int) (map[any]any, error) {
	m := make(map[any]any)
	for i := 0; i < len(rs); {
		id := rs[i].Path.ID(depth)
		j := i + 1
		for j < len(rs) && rs[j].Path.ID(depth) == id {
			j++
		}
		group := rs[i:j]
		i = j
		// Fold IDs into the key while every record of the group goes on
		// through the same next ID.
		k := depth + 1
		for sharesID(group, k) {
			k++
		}
		key := pathKey(group[0].Path, depth, k)
		if len(group) == 1 && group[0].Path.Depth() == k {
			v, err := cborValue(group[0])
			if err != nil {
				return nil, err
			}
			m[key] = v
			continue
		}
		sub, err := build(group, k)
		if err != nil {
			return nil, err
		}
		m[key] = sub
	}
	return m, nil
}

// sharesID reports whether every record of group is deeper than k and has
// the same ID at level k.
func sharesID(group []lwm2m.Record, k int) bool {
	if group[0].Path.Depth() <= k {
		return false
	}
	id := group[0].Path.ID(k)
	for _, r := range group[1:] {
		if r.Path.Depth() <= k || r.Path.ID(k) != id {
			return false
		}
	}
	return true
}

// pathKey returns the map key for IDs from..to-1 of p: an integer for one
// ID, a fixed-size array (which the encoder writes as a CBOR array) for more.
func pathKey(p lwm2m.Path, from, to int) any {
	switch to - from {
	case 1:
		return uint64(p.ID(from))
	case 2:
		return [2]uint16{p.ID(from), p.ID(from + 1)}
	case 3:
		return [3]uint16{p.ID(from), p.ID(from + 1), p.ID(from + 2)}
	}
	return [4]uint16{p.ID(0), p.ID(1), p.ID(2), p.ID(3)}
}

// cborValue returns the Go value the CBOR encoder writes for r's value.
func cborValue(r lwm2m.Record) (any, error) {
	v := r.Value
	switch v.Type() {
	case lwm2m.TypeInteger:
		return v.IntValue(), nil
	case lwm2m.TypeUnsigned:
		return v.UintValue(), nil
	case lwm2m.TypeFloat:
		return v.FloatValue(), nil
	case lwm2m.TypeBoolean:
		return v.BoolValue(), nil
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		s := v.StringValue()
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("lwm2mcbor: %s: %s value is not valid UTF-8", r.Path, v.Type())
		}
		return s, nil
	case lwm2m.TypeObjlnk:
		return v.String(), nil
	case lwm2m.TypeOpaque:
		return v.Opaque(), nil
	case lwm2m.TypeTime:
		return cbor.Tag{Number: 1, Content: v.IntValue()}, nil
	case lwm2m.TypeNone:
		return nil, nil
	}
	return nil, fmt.Errorf("lwm2mcbor: %s: unsupported value type %s", r.Path, v.Type())
}
