package tlv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// kind is the element kind held in bits 7-6 of the type byte.
type kind uint8

const (
	kindInstance kind = 0 // Object Instance: holds resources
	kindResInst  kind = 1 // Resource Instance: holds a value
	kindMulti    kind = 2 // Multiple Resource: holds resource instances
	kindResource kind = 3 // Resource with a value
)

const (
	maxValueLen   = 1<<24 - 1 // the largest length a 24-bit length field states
	maxHeaderSize = 1 + 2 + 3 // type, 16-bit identifier, 24-bit length
)

// depth is the path depth an element of kind k addresses.
func (k kind) depth() int {
	switch k {
	case kindInstance:
		return 2
	case kindMulti, kindResource:
		return 3
	}
	return 4
}

func (k kind) leaf() bool { return k == kindResource || k == kindResInst }

func (k kind) String() string {
	switch k {
	case kindInstance:
		return "object instance"
	case kindResInst:
		return "resource instance"
	case kindMulti:
		return "multiple resource"
	}
	return "resource"
}

// header is one parsed element header.
type header struct {
	kind   kind
	id     uint16
	off    int // offset of the type byte
	valOff int // offset of the value
	valLen int
}

func (h header) end() int { return h.valOff + h.valLen }

// ErrRootBase is returned by Decode and Encode for the root path: TLV cannot
// address the whole data tree.
var ErrRootBase = errors.New("tlv: TLV cannot address the root path")

// Decode decodes a TLV payload that answers a Read or Observe of base, or is
// the body of a Write to base. base must be an object, object instance,
// resource or resource instance path; ErrRootBase is returned for the root.
//
// Which elements may appear at the top level follows from base: an object
// takes Object Instance TLVs; an object instance takes Resource and Multiple
// Resource TLVs or one Object Instance TLV with base's instance ID; a
// resource takes a Resource or Multiple Resource TLV with base's resource ID
// or Resource Instance TLVs; a resource instance takes its Resource Instance
// TLV, bare or inside its Multiple Resource TLV. Every element must lie on or
// under base.
//
// The records are returned in input order with full paths (depth 3 or 4) and
// zero times. Empty Object Instance and Multiple Resource TLVs yield no
// records. Values are typed with types.Lookup of the record's path; values of
// unknown resources are kept as lwm2m.Opaque, and a known TypeNone resource
// with an empty value gives lwm2m.None. Strings and corelnks are taken as
// they are: bytes that are not valid UTF-8 are kept, not rejected. Opaque
// values are copied, so data may be reused after Decode returns.
//
// Malformed input, including a duplicate path or a path given both as a
// resource and as resource instances, yields a *lwm2m.DecodeError naming the
// byte offset and the field ("type", "identifier", "length" or "value").
func Decode(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	if base.IsRoot() {
		return nil, ErrRootBase
	}
	// Size the result from a quick count, capped so that a large payload
	// that later turns out malformed does not allocate much.
	leaves, all := countElements(data, 0, len(data), 0)
	d := decoder{
		data:    data,
		base:    base,
		types:   types,
		out:     make([]lwm2m.Record, 0, min(leaves, 256)),
		seen:    make([]element, 0, min(all, 256)),
		ordered: true,
	}
	if err := d.list(0, len(data), lwm2m.Root, true); err != nil {
		return nil, err
	}
	if !d.ordered {
		if err := d.checkUnique(); err != nil {
			return nil, err
		}
	}
	return d.out, nil
}

type decoder struct {
	data    []byte
	base    lwm2m.Path
	types   lwm2m.TypeFunc
	out     []lwm2m.Record
	seen    []element // every element decoded so far, in input order
	ordered bool      // each element so far sorted after the one before and not under a leaf
}

// element is the path and offset of a decoded element, kept to find
// repeated paths.
type element struct {
	path lwm2m.Path
	off  int
	leaf bool
}

// list decodes the elements in data[off:end]. parent is the path of the
// enclosing element; top is true for the outermost list, whose elements are
// checked against base rather than against parent.
func (d *decoder) list(off, end int, parent lwm2m.Path, top bool) error {
	for off < end {
		h, err := d.header(off, end)
		if err != nil {
			return err
		}
		p, err := d.place(h, parent, top)
		if err != nil {
			return err
		}
		d.note(element{path: p, off: h.off, leaf: h.kind.leaf()})
		if h.kind.leaf() {
			if err := d.leaf(h, p); err != nil {
				return err
			}
		} else if err := d.list(h.valOff, h.end(), p, false); err != nil {
			return err
		}
		off = h.end()
	}
	return nil
}

// place returns the path of element h and checks that its kind may appear
// where it is.
func (d *decoder) place(h header, parent lwm2m.Path, top bool) (lwm2m.Path, error) {
	depth, b := h.kind.depth(), d.base
	switch {
	case !top:
		if depth != parent.Depth()+1 {
			return lwm2m.Path{}, lwm2m.Errorf(lwm2m.FormatTLV, h.off, "type",
				"a %s TLV cannot appear inside %s", h.kind, parent)
		}
	case depth == b.Depth()+1:
		parent = b
	case depth <= b.Depth():
		parent = b.Truncate(depth - 1)
	default:
		return lwm2m.Path{}, lwm2m.Errorf(lwm2m.FormatTLV, h.off, "type",
			"a %s TLV cannot appear at the top level for %s", h.kind, b)
	}
	if depth <= b.Depth() {
		// An element on the way down to base, or base itself. A leaf above
		// base would hold a value that lies outside it.
		if h.kind.leaf() && depth < b.Depth() {
			return lwm2m.Path{}, lwm2m.Errorf(lwm2m.FormatTLV, h.off, "type",
				"a %s TLV lies outside %s", h.kind, b)
		}
		if want := b.ID(depth - 1); h.id != want {
			return lwm2m.Path{}, lwm2m.Errorf(lwm2m.FormatTLV, h.off+1, "identifier",
				"%s %d is not on the path %s", h.kind, h.id, b)
		}
	}
	return parent.Child(h.id), nil
}

// header parses the element header at off; the element must end by end.
func (d *decoder) header(off, end int) (header, error) {
	t := d.data[off]
	h := header{kind: kind(t >> 6), off: off}
	p := off + 1
	if t&0x20 == 0 {
		if end-p < 1 {
			return h, lwm2m.Errorf(lwm2m.FormatTLV, p, "identifier", "truncated: need 1 byte, have 0")
		}
		h.id = uint16(d.data[p])
		p++
	} else {
		if end-p < 2 {
			return h, lwm2m.Errorf(lwm2m.FormatTLV, p, "identifier", "truncated: need 2 bytes, have %d", end-p)
		}
		id := binary.BigEndian.Uint16(d.data[p:])
		if id > lwm2m.MaxID {
			return h, lwm2m.Errorf(lwm2m.FormatTLV, p, "identifier", "%d is above the largest ID %d", id, lwm2m.MaxID)
		}
		h.id = id
		p += 2
	}
	lenOff := off // a length held in the type byte is reported there
	n := int(t & 0x07)
	if w := int(t>>3) & 0x03; w > 0 {
		if end-p < w {
			return h, lwm2m.Errorf(lwm2m.FormatTLV, p, "length", "truncated: need %d bytes, have %d", w, end-p)
		}
		lenOff = p
		n = 0
		for _, b := range d.data[p : p+w] {
			n = n<<8 | int(b)
		}
		p += w
	}
	if n > end-p {
		return h, lwm2m.Errorf(lwm2m.FormatTLV, lenOff, "length",
			"value of %d bytes runs past the end: %d bytes left", n, end-p)
	}
	h.valOff, h.valLen = p, n
	return h, nil
}

// leaf appends the record of a Resource or Resource Instance element.
func (d *decoder) leaf(h header, p lwm2m.Path) error {
	v, err := d.value(h, p)
	if err != nil {
		return err
	}
	d.out = append(d.out, lwm2m.Record{Path: p, Value: v})
	return nil
}

// value types the bytes of a leaf element.
func (d *decoder) value(h header, p lwm2m.Path) (lwm2m.Value, error) {
	b := d.data[h.valOff:h.end()]
	t, ok := d.types.Lookup(p)
	if !ok {
		return lwm2m.Opaque(slices.Clone(b)), nil
	}
	bad := func(format string, args ...any) (lwm2m.Value, error) {
		return lwm2m.Value{}, lwm2m.Errorf(lwm2m.FormatTLV, h.valOff, "value",
			"%s %s: %s", t, p, fmt.Sprintf(format, args...))
	}
	switch t {
	case lwm2m.TypeString:
		return lwm2m.String(string(b)), nil
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk(string(b)), nil
	case lwm2m.TypeOpaque:
		return lwm2m.Opaque(slices.Clone(b)), nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		n, ok := signed(b)
		if !ok {
			return bad("length %d, want 1, 2, 4 or 8", len(b))
		}
		if t == lwm2m.TypeTime {
			return lwm2m.TimeUnix(n), nil
		}
		return lwm2m.Int(n), nil
	case lwm2m.TypeUnsigned:
		if !intLen(len(b)) {
			return bad("length %d, want 1, 2, 4 or 8", len(b))
		}
		var n uint64
		for _, c := range b {
			n = n<<8 | uint64(c)
		}
		return lwm2m.Uint(n), nil
	case lwm2m.TypeFloat:
		switch len(b) {
		case 4:
			return lwm2m.Float(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
		case 8:
			return lwm2m.Float(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
		}
		return bad("length %d, want 4 or 8", len(b))
	case lwm2m.TypeBoolean:
		if len(b) != 1 || b[0] > 1 {
			return bad("want one byte 0 or 1")
		}
		return lwm2m.Bool(b[0] == 1), nil
	case lwm2m.TypeObjlnk:
		if len(b) != 4 {
			return bad("length %d, want 4", len(b))
		}
		return lwm2m.Objlnk(lwm2m.ObjLink{
			Object:   binary.BigEndian.Uint16(b),
			Instance: binary.BigEndian.Uint16(b[2:]),
		}), nil
	case lwm2m.TypeNone:
		if len(b) == 0 {
			return lwm2m.None(), nil
		}
		return lwm2m.Opaque(slices.Clone(b)), nil
	}
	return lwm2m.Opaque(slices.Clone(b)), nil
}

func intLen(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

// signed reads a 1, 2, 4 or 8 byte big-endian two's complement integer.
func signed(b []byte) (int64, bool) {
	switch len(b) {
	case 1:
		return int64(int8(b[0])), true
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), true
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), true
	case 8:
		return int64(binary.BigEndian.Uint64(b)), true
	}
	return 0, false
}

// note records a decoded element. While elements arrive in strictly
// increasing path order and none lies under a leaf, no path can repeat;
// checkUnique looks closer once that order breaks.
func (d *decoder) note(e element) {
	if n := len(d.seen); n > 0 && d.ordered {
		last := d.seen[n-1]
		if e.path.Compare(last.path) <= 0 || last.leaf && e.path.HasPrefix(last.path) {
			d.ordered = false
		}
	}
	d.seen = append(d.seen, e)
}

// checkUnique reports the first element whose path repeats, or that lies
// under a leaf (a resource given both with a value and with resource
// instances).
func (d *decoder) checkUnique() error {
	es := slices.Clone(d.seen)
	slices.SortStableFunc(es, func(a, b element) int { return a.path.Compare(b.path) })
	for k := 1; k < len(es); k++ {
		prev, cur := es[k-1], es[k]
		if !cur.path.HasPrefix(prev.path) || !prev.leaf && cur.path != prev.path {
			continue
		}
		at := max(prev.off, cur.off) + 1
		if cur.path == prev.path {
			return lwm2m.Errorf(lwm2m.FormatTLV, at, "identifier", "%s occurs twice", cur.path)
		}
		return lwm2m.Errorf(lwm2m.FormatTLV, at, "identifier",
			"%s is given both with a value and with resource instances", prev.path)
	}
	return nil
}

// countElements counts the leaf elements and all elements in data[off:end]
// to size the result; it stops quietly at malformed input, which the
// decoding pass reports.
func countElements(data []byte, off, end, level int) (leaves, all int) {
	for off < end {
		t := data[off]
		p := off + 1 + 1 + int(t>>5&1)
		n := int(t & 0x07)
		if w := int(t>>3) & 0x03; w > 0 {
			if p+w > end {
				return
			}
			n = 0
			for _, b := range data[p : p+w] {
				n = n<<8 | int(b)
			}
			p += w
		}
		if p > end || n > end-p {
			return
		}
		all++
		if k := kind(t >> 6); k.leaf() {
			leaves++
		} else if level < 2 {
			l, a := countElements(data, p, p+n, level+1)
			leaves, all = leaves+l, all+a
		}
		off = p + n
	}
	return
}
