package tlv

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Encode encodes records as the TLV payload for base, the path written or
// read: for an object, one Object Instance TLV per instance; for an object
// instance, its Resource and Multiple Resource TLVs without an Object
// Instance TLV around them; for a resource, one Resource TLV or one Multiple
// Resource TLV; for a resource instance, one Resource Instance TLV.
// Elements are written in path order whatever the order of rs.
//
// Every record must lie on or under base at depth 3 or 4; a path may occur
// only once and not both as a resource and as resource instances. Record
// times are not encoded (TLV has no timestamps). Identifiers take 8 bits
// when they fit, lengths the shortest of 3, 8, 16 or 24 bits. Integers and
// time take the shortest of 1, 2, 4 or 8 bytes. Unsigned integers take the
// shortest of those widths whose top bit is clear (8 bytes above
// MaxInt64), so clients that read every integer as signed still get the
// right number. Floats take 4 bytes when that is exact (bit for bit), else 8.
// An error is returned for the root base, a record outside base, a value
// longer than the 16 MiB a TLV length can state, or a value of unknown type.
func Encode(base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	if base.IsRoot() {
		return nil, ErrRootBase
	}
	sorted := rs
	if !slices.IsSortedFunc(rs, cmpRecords) {
		sorted = slices.Clone(rs)
		lwm2m.SortRecords(sorted)
	}
	size := 0
	for i, r := range sorted {
		if d := r.Path.Depth(); d < 3 || !r.Path.HasPrefix(base) {
			return nil, fmt.Errorf("tlv: record path %s is not a resource under %s", r.Path, base)
		}
		if i > 0 && r.Path.HasPrefix(sorted[i-1].Path) {
			if r.Path == sorted[i-1].Path {
				return nil, fmt.Errorf("tlv: record path %s occurs twice", r.Path)
			}
			return nil, fmt.Errorf("tlv: %s is given both as a resource and as resource instances", sorted[i-1].Path)
		}
		size += maxHeaderSize + valueSize(r.Value)
	}
	e := encoder{buf: make([]byte, 0, size+2*maxHeaderSize)}
	var err error
	switch base.Depth() {
	case 1:
		err = e.instances(sorted)
	case 2:
		err = e.resources(sorted)
	case 3:
		err = e.resources(sorted) // one Resource or Multiple Resource TLV
	case 4:
		if len(sorted) == 1 { // the prefix and duplicate checks allow no more
			err = e.leaf(kindResInst, sorted[0])
		}
	}
	if err != nil {
		return nil, err
	}
	return e.buf, nil
}

func cmpRecords(a, b lwm2m.Record) int { return a.Path.Compare(b.Path) }

type encoder struct {
	buf []byte
}

// instances writes one Object Instance TLV per instance in rs.
func (e *encoder) instances(rs []lwm2m.Record) error {
	for len(rs) > 0 {
		inst := rs[0].Path.Instance()
		n := 1
		for n < len(rs) && rs[n].Path.Instance() == inst {
			n++
		}
		start := e.open()
		if err := e.resources(rs[:n]); err != nil {
			return err
		}
		if err := e.close(start, kindInstance, inst); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// resources writes the Resource and Multiple Resource TLVs of the records of
// one object instance.
func (e *encoder) resources(rs []lwm2m.Record) error {
	for len(rs) > 0 {
		r := rs[0]
		if r.Path.IsResource() {
			if err := e.leaf(kindResource, r); err != nil {
				return err
			}
			rs = rs[1:]
			continue
		}
		res := r.Path.Resource()
		n := 1
		for n < len(rs) && rs[n].Path.IsResourceInstance() && rs[n].Path.Resource() == res {
			n++
		}
		start := e.open()
		for _, ri := range rs[:n] {
			if err := e.leaf(kindResInst, ri); err != nil {
				return err
			}
		}
		if err := e.close(start, kindMulti, res); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// open reserves room for the header of a container element and returns its
// offset for close.
func (e *encoder) open() int {
	start := len(e.buf)
	e.buf = append(e.buf, make([]byte, maxHeaderSize)...)
	return start
}

// close writes the header of the container opened at start and moves its
// content up against it.
func (e *encoder) close(start int, k kind, id uint16) error {
	n := len(e.buf) - start - maxHeaderSize
	var h [maxHeaderSize]byte
	hdr, err := appendHeader(h[:0], k, id, n)
	if err != nil {
		return err
	}
	copy(e.buf[start+len(hdr):], e.buf[start+maxHeaderSize:])
	copy(e.buf[start:], hdr)
	e.buf = e.buf[:start+len(hdr)+n]
	return nil
}

// leaf writes a Resource or Resource Instance TLV holding r's value; its
// identifier is the last ID of r's path.
func (e *encoder) leaf(k kind, r lwm2m.Record) error {
	id := r.Path.ID(r.Path.Depth() - 1)
	var err error
	if e.buf, err = appendHeader(e.buf, k, id, valueSize(r.Value)); err != nil {
		return fmt.Errorf("%w at %s", err, r.Path)
	}
	if e.buf, err = appendValue(e.buf, r.Value); err != nil {
		return fmt.Errorf("%w at %s", err, r.Path)
	}
	return nil
}

func appendHeader(b []byte, k kind, id uint16, n int) ([]byte, error) {
	if n > maxValueLen {
		return b, fmt.Errorf("tlv: value of %d bytes is longer than %d", n, maxValueLen)
	}
	t := byte(k) << 6
	if id > 0xFF {
		t |= 0x20
	}
	switch {
	case n < 8:
		t |= byte(n)
	case n <= 0xFF:
		t |= 1 << 3
	case n <= 0xFFFF:
		t |= 2 << 3
	default:
		t |= 3 << 3
	}
	b = append(b, t)
	if id > 0xFF {
		b = binary.BigEndian.AppendUint16(b, id)
	} else {
		b = append(b, byte(id))
	}
	switch {
	case n < 8:
	case n <= 0xFF:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, byte(n>>16), byte(n>>8), byte(n))
	}
	return b, nil
}

// valueSize is the number of bytes appendValue writes for v.
func valueSize(v lwm2m.Value) int {
	switch v.Type() {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return len(v.StringValue())
	case lwm2m.TypeOpaque:
		return len(v.Opaque())
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		return intSize(v.IntValue())
	case lwm2m.TypeUnsigned:
		if u := v.UintValue(); u <= math.MaxInt64 {
			return intSize(int64(u))
		}
		return 8
	case lwm2m.TypeFloat:
		if f32Exact(v.FloatValue()) {
			return 4
		}
		return 8
	case lwm2m.TypeBoolean:
		return 1
	case lwm2m.TypeObjlnk:
		return 4
	}
	return 0
}

// intSize is the smallest of 1, 2, 4 or 8 bytes that holds n signed.
func intSize(n int64) int {
	switch {
	case n >= math.MinInt8 && n <= math.MaxInt8:
		return 1
	case n >= math.MinInt16 && n <= math.MaxInt16:
		return 2
	case n >= math.MinInt32 && n <= math.MaxInt32:
		return 4
	}
	return 8
}

func f32Exact(f float64) bool {
	return math.Float64bits(float64(float32(f))) == math.Float64bits(f)
}

func appendValue(b []byte, v lwm2m.Value) ([]byte, error) {
	switch v.Type() {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return append(b, v.StringValue()...), nil
	case lwm2m.TypeOpaque:
		return append(b, v.Opaque()...), nil
	case lwm2m.TypeInteger, lwm2m.TypeTime, lwm2m.TypeUnsigned:
		n := v.UintValue() // the two's complement bits for signed values
		w := valueSize(v)
		for i := w - 1; i >= 0; i-- {
			b = append(b, byte(n>>(8*i)))
		}
		return b, nil
	case lwm2m.TypeFloat:
		if f := v.FloatValue(); f32Exact(f) {
			return binary.BigEndian.AppendUint32(b, math.Float32bits(float32(f))), nil
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.FloatValue())), nil
	case lwm2m.TypeBoolean:
		if v.BoolValue() {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case lwm2m.TypeObjlnk:
		l := v.ObjlnkValue()
		b = binary.BigEndian.AppendUint16(b, l.Object)
		return binary.BigEndian.AppendUint16(b, l.Instance), nil
	case lwm2m.TypeNone:
		return b, nil
	}
	return b, fmt.Errorf("tlv: cannot encode a value of %s", v.Type())
}
