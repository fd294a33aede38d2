package lwm2mcbor

import (
	"encoding/binary"
	"math"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// CBOR major types.
const (
	majorUint  = 0
	majorNint  = 1
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
	majorTag   = 6
	majorOther = 7 // simple values and floats
)

// decMode decodes single keys and values. The limits bound what one item
// may hold: a value nests at most a tag around a two-element array (a
// decimal fraction), a key is an array of at most four IDs.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		IndefLength:      cbor.IndefLengthAllowed,
		TagsMd:           cbor.TagsAllowed,
		UTF8:             cbor.UTF8RejectInvalid,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

func errAt(off int, field, format string, args ...any) *lwm2m.DecodeError {
	return lwm2m.Errorf(lwm2m.FormatLwM2MCBOR, off, field, format, args...)
}

type decoder struct {
	data  []byte
	base  lwm2m.Path
	types lwm2m.TypeFunc
	recs  []lwm2m.Record
	offs  []int // offs[i] is the offset of the key that named recs[i]

	// Decoding targets, kept here so that handing their addresses to the
	// CBOR library does not allocate per item.
	text string
	raw  []byte
	item any
}

// Decode parses an LwM2M-CBOR document read from base (the path of the
// request, lwm2m.Root for composite operations and Send) and returns its
// records in path order. types gives resource types for conversion; nil
// leaves values as the CBOR items suggest (integers as integer, or unsigned
// above math.MaxInt64).
//
// Every record must name a resource or resource instance (depth 3 or 4) at
// or below base. Malformed CBOR, a top level that is not a map, keys other
// than IDs in 0..lwm2m.MaxID or arrays of one to four of them, paths deeper
// than a resource instance, paths outside base, a path given twice or both
// as a resource value and with resource instances, unsupported items
// (arrays, undefined, unknown tags) and values that do not convert to the
// known type yield a *lwm2m.DecodeError with the byte offset of the
// offending key or value and Field "map", "key", "path" or "value".
// Trailing bytes after the top-level map are an error.
func Decode(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	d := &decoder{data: data, base: base, types: types}
	d.recs = make([]lwm2m.Record, 0, 16)
	d.offs = make([]int, 0, 16)
	end, err := d.walkMap(0, lwm2m.Root)
	if err != nil {
		return nil, err
	}
	if end != len(data) {
		return nil, errAt(end, "map", "%d trailing bytes after the top-level map", len(data)-end)
	}
	if !slices.IsSortedFunc(d.recs, func(a, b lwm2m.Record) int { return a.Path.Compare(b.Path) }) {
		sort.Stable(byPath{d.recs, d.offs})
	}
	for i := 1; i < len(d.recs); i++ {
		prev, cur := d.recs[i-1].Path, d.recs[i].Path
		switch {
		case cur == prev:
			return nil, errAt(max(d.offs[i], d.offs[i-1]), "path", "path %s given twice", cur)
		case cur.HasPrefix(prev):
			return nil, errAt(max(d.offs[i], d.offs[i-1]), "path",
				"%s has a value and resource instances (%s)", prev, cur)
		}
	}
	return d.recs, nil
}

// byPath sorts records and their key offsets together.
type byPath struct {
	recs []lwm2m.Record
	offs []int
}

func (b byPath) Len() int           { return len(b.recs) }
func (b byPath) Less(i, j int) bool { return b.recs[i].Path.Compare(b.recs[j].Path) < 0 }
func (b byPath) Swap(i, j int) {
	b.recs[i], b.recs[j] = b.recs[j], b.recs[i]
	b.offs[i], b.offs[j] = b.offs[j], b.offs[i]
}

// head reads the initial byte and argument of the item at off: its major
// type, its argument (a count or length, or the simple value) and whether
// it has indefinite length. It returns the offset after the head.
func (d *decoder) head(off int, field string) (major byte, arg uint64, indef bool, next int, err error) {
	if off >= len(d.data) {
		return 0, 0, false, 0, errAt(off, field, "unexpected end of input")
	}
	ib := d.data[off]
	major, ai := ib>>5, ib&0x1f
	switch {
	case ai < 24:
		return major, uint64(ai), false, off + 1, nil
	case ai <= 27:
		n := 1 << (ai - 24)
		if len(d.data)-off-1 < n {
			return 0, 0, false, 0, errAt(off, field, "item head is truncated")
		}
		b := d.data[off+1 : off+1+n]
		switch n {
		case 1:
			arg = uint64(b[0])
		case 2:
			arg = uint64(binary.BigEndian.Uint16(b))
		case 4:
			arg = uint64(binary.BigEndian.Uint32(b))
		default:
			arg = binary.BigEndian.Uint64(b)
		}
		return major, arg, false, off + 1 + n, nil
	case ai == 31 && major >= majorBytes && major <= majorMap:
		return major, 0, true, off + 1, nil
	}
	return 0, 0, false, 0, errAt(off, field, "malformed item head 0x%02x", ib)
}

// walkMap decodes the map at off whose keys continue prefix, and returns the
// offset after it. Pair counts are never used to allocate: a count larger
// than the input fails when the input runs out.
func (d *decoder) walkMap(off int, prefix lwm2m.Path) (int, error) {
	start := off
	major, count, indef, off, err := d.head(off, "map")
	if err != nil {
		return 0, err
	}
	if major != majorMap {
		return 0, errAt(start, "map", "expected a map, found major type %d", major)
	}
	for i := uint64(0); indef || i < count; i++ {
		if indef {
			if off >= len(d.data) {
				return 0, errAt(off, "map", "indefinite-length map is not terminated")
			}
			if d.data[off] == 0xff {
				return off + 1, nil
			}
		}
		keyOff := off
		p, next, err := d.key(off, prefix)
		if err != nil {
			return 0, err
		}
		off = next
		if off >= len(d.data) {
			return 0, errAt(off, "value", "map key %s has no value", p)
		}
		if d.data[off]>>5 == majorMap {
			if p.Depth() >= 4 {
				return 0, errAt(off, "path", "map below resource instance %s", p)
			}
			off, err = d.walkMap(off, p)
		} else {
			off, err = d.leaf(off, keyOff, p)
		}
		if err != nil {
			return 0, err
		}
	}
	return off, nil
}

// key decodes the path fragment at off, an unsigned integer or an array
// of one to four of them, and returns prefix extended by it. IDs are the
// arguments of their item heads.
func (d *decoder) key(off int, prefix lwm2m.Path) (lwm2m.Path, int, error) {
	start := off
	major, arg, indef, off, err := d.head(off, "key")
	if err != nil {
		return lwm2m.Root, 0, err
	}
	p := prefix
	push := func(id uint64) error {
		if p.Depth() == 4 {
			return errAt(start, "path", "path key below %s is deeper than a resource instance", prefix)
		}
		if id > lwm2m.MaxID {
			return errAt(start, "key", "ID %d is out of range 0..%d", id, lwm2m.MaxID)
		}
		p = p.Child(uint16(id))
		return nil
	}
	switch major {
	case majorUint:
		if err := push(arg); err != nil {
			return lwm2m.Root, 0, err
		}
		return p, off, nil
	case majorArray:
		for i := uint64(0); indef || i < arg; i++ {
			if indef && off < len(d.data) && d.data[off] == 0xff {
				off++
				break
			}
			m, id, _, next, err := d.head(off, "key")
			if err != nil {
				return lwm2m.Root, 0, errAt(start, "key", "path key is truncated")
			}
			if m != majorUint {
				return lwm2m.Root, 0, errAt(start, "key", "path key array holds major type %d, not unsigned integers", m)
			}
			if err := push(id); err != nil {
				return lwm2m.Root, 0, err
			}
			off = next
		}
		if p.Depth() == prefix.Depth() {
			return lwm2m.Root, 0, errAt(start, "key", "empty path key")
		}
		return p, off, nil
	}
	return lwm2m.Root, 0, errAt(start, "key", "path key must be an unsigned integer or an array of them, found major type %d", major)
}

// leaf decodes the value at off for path p (named by the key at keyOff).
func (d *decoder) leaf(off, keyOff int, p lwm2m.Path) (int, error) {
	if p.Depth() < 3 {
		return 0, errAt(keyOff, "path", "value at %s, which is not a resource or resource instance", p)
	}
	if !p.HasPrefix(d.base) {
		return 0, errAt(keyOff, "path", "%s is outside the requested path %s", p, d.base)
	}
	v, next, err := d.value(off)
	if err != nil {
		return 0, err
	}
	if t, ok := d.types.Lookup(p); ok && v.Type() != lwm2m.TypeNone && v.Type() != t {
		w, err := v.Convert(t)
		if err != nil {
			return 0, errAt(off, "value", "%s: %s value does not convert to %s", p, v.Type(), t)
		}
		v = w
	}
	d.recs = append(d.recs, lwm2m.Record{Path: p, Value: v})
	d.offs = append(d.offs, keyOff)
	return next, nil
}

// value decodes one CBOR item at off into its natural LwM2M value.
// Integers are the arguments of their heads; strings, floats, simple values
// and tags are decoded by the CBOR library.
func (d *decoder) value(off int) (lwm2m.Value, int, error) {
	var (
		v    lwm2m.Value
		rest []byte
		err  error
	)
	in := d.data[off:]
	switch major := in[0] >> 5; major {
	case majorUint, majorNint:
		m, arg, _, next, err := d.head(off, "value")
		if err != nil {
			return v, 0, err
		}
		if m == majorUint {
			return naturalUint(arg), next, nil
		}
		if arg > math.MaxInt64 {
			return v, 0, errAt(off, "value", "negative integer -1-%d does not fit 64 bits", arg)
		}
		return lwm2m.Int(-1 - int64(arg)), next, nil
	case majorBytes:
		if rest, err = decMode.UnmarshalFirst(in, &d.raw); err == nil {
			v = lwm2m.Opaque(d.raw)
			d.raw = nil
		}
	case majorText:
		if rest, err = decMode.UnmarshalFirst(in, &d.text); err == nil {
			v = lwm2m.String(d.text)
		}
	case majorTag, majorOther:
		if in[0] == 0xf7 {
			return v, 0, errAt(off, "value", "undefined is not a value")
		}
		d.item = nil
		if rest, err = decMode.UnmarshalFirst(in, &d.item); err == nil {
			var verr *lwm2m.DecodeError
			if v, verr = fromAny(d.item, off); verr != nil {
				return v, 0, verr
			}
		}
	default:
		return v, 0, errAt(off, "value", "a value may not be a CBOR array")
	}
	if err != nil {
		return v, 0, errAt(off, "value", "malformed value: %v", err)
	}
	return v, len(d.data) - len(rest), nil
}

// naturalUint types an unsigned CBOR integer: integer when it fits int64,
// unsigned otherwise.
func naturalUint(u uint64) lwm2m.Value {
	if u <= math.MaxInt64 {
		return lwm2m.Int(int64(u))
	}
	return lwm2m.Uint(u)
}

// fromAny converts a tagged item or simple value decoded by the CBOR
// library.
func fromAny(x any, off int) (lwm2m.Value, *lwm2m.DecodeError) {
	switch x := x.(type) {
	case nil:
		return lwm2m.None(), nil
	case bool:
		return lwm2m.Bool(x), nil
	case float64:
		return lwm2m.Float(x), nil
	case time.Time:
		return lwm2m.Time(x), nil
	case big.Int:
		return bigValue(&x, off)
	case *big.Int:
		return bigValue(x, off)
	case cbor.Tag:
		if x.Number == 4 {
			return decimalFraction(x.Content, off)
		}
		return lwm2m.Value{}, errAt(off, "value", "unsupported CBOR tag %d", x.Number)
	case cbor.SimpleValue:
		return lwm2m.Value{}, errAt(off, "value", "unsupported simple value %d", x)
	}
	return lwm2m.Value{}, errAt(off, "value", "unsupported CBOR item %T", x)
}

func bigValue(b *big.Int, off int) (lwm2m.Value, *lwm2m.DecodeError) {
	switch {
	case b.IsInt64():
		return lwm2m.Int(b.Int64()), nil
	case b.IsUint64():
		return lwm2m.Uint(b.Uint64()), nil
	}
	return lwm2m.Value{}, errAt(off, "value", "integer %s does not fit 64 bits", b)
}

// decimalFraction evaluates tag 4 content [exponent, mantissa] as a float.
func decimalFraction(c any, off int) (lwm2m.Value, *lwm2m.DecodeError) {
	bad := func() (lwm2m.Value, *lwm2m.DecodeError) {
		return lwm2m.Value{}, errAt(off, "value", "malformed decimal fraction")
	}
	a, ok := c.([]any)
	if !ok || len(a) != 2 {
		return bad()
	}
	exp, ok := smallInt(a[0])
	if !ok || exp < -400 || exp > 400 {
		return bad()
	}
	var m float64
	switch x := a[1].(type) {
	case uint64:
		m = float64(x)
	case int64:
		m = float64(x)
	case big.Int:
		m, _ = new(big.Float).SetInt(&x).Float64()
	default:
		return bad()
	}
	var f float64
	switch {
	case m == 0:
	case exp < 0:
		f = m / math.Pow10(int(-exp))
	default:
		f = m * math.Pow10(int(exp))
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return bad()
	}
	return lwm2m.Float(f), nil
}

func smallInt(x any) (int64, bool) {
	switch x := x.(type) {
	case uint64:
		return int64(min(x, math.MaxInt32)), true
	case int64:
		return x, true
	}
	return 0, false
}
