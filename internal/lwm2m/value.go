package lwm2m

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is an LwM2M resource data type.
type Type uint8

// The LwM2M data types (LwM2M 1.1 core, Appendix C). TypeNone is the type of
// executable resources, which carry no value.
const (
	TypeNone Type = iota
	TypeString
	TypeInteger
	TypeUnsigned
	TypeFloat
	TypeBoolean
	TypeOpaque
	TypeTime
	TypeObjlnk
	TypeCorelnk
)

var typeNames = [...]string{
	TypeNone:     "none",
	TypeString:   "string",
	TypeInteger:  "integer",
	TypeUnsigned: "unsigned",
	TypeFloat:    "float",
	TypeBoolean:  "boolean",
	TypeOpaque:   "opaque",
	TypeTime:     "time",
	TypeObjlnk:   "objlnk",
	TypeCorelnk:  "corelnk",
}

// String returns the short lower-case name ("unsigned", "objlnk", ...), as
// stored in the database and shown in the API.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType accepts the short names of Type.String and the names used by OMA
// DDF files ("Unsigned Integer", "Objlnk", "Corelnk", "" for executables),
// ignoring case and spaces.
func ParseType(s string) (Type, error) {
	k := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	switch k {
	case "", "none":
		return TypeNone, nil
	case "unsignedinteger":
		return TypeUnsigned, nil
	}
	for t, n := range typeNames {
		if n == k {
			return Type(t), nil
		}
	}
	return TypeNone, fmt.Errorf("lwm2m: unknown data type %q", s)
}

// ObjLink is the value of an Objlnk resource: a reference to an object
// instance. The null link is 65535:65535.
type ObjLink struct {
	Object, Instance uint16
}

// String formats the link as "3:0" (the SenML and text/plain form).
func (l ObjLink) String() string {
	return strconv.Itoa(int(l.Object)) + ":" + strconv.Itoa(int(l.Instance))
}

// ParseObjLink parses "obj:inst" with decimal IDs in 0..65535.
func ParseObjLink(s string) (ObjLink, error) {
	o, i, ok := strings.Cut(s, ":")
	if !ok {
		return ObjLink{}, fmt.Errorf("lwm2m: objlnk %q: want \"object:instance\"", s)
	}
	on, err1 := strconv.ParseUint(o, 10, 16)
	in, err2 := strconv.ParseUint(i, 10, 16)
	if err1 != nil || err2 != nil {
		return ObjLink{}, fmt.Errorf("lwm2m: objlnk %q: IDs must be numbers in 0..65535", s)
	}
	return ObjLink{uint16(on), uint16(in)}, nil
}

// Value is one typed LwM2M value. The zero Value has TypeNone. Values are
// immutable once built; Opaque returns the stored slice, which callers must
// not modify.
type Value struct {
	typ Type
	num uint64 // integer, unsigned, boolean, time (unix seconds), float bits, objlnk
	str string // string, corelnk
	raw []byte // opaque
}

// Constructors for each type.
func Int(v int64) Value      { return Value{typ: TypeInteger, num: uint64(v)} }
func Uint(v uint64) Value    { return Value{typ: TypeUnsigned, num: v} }
func Float(v float64) Value  { return Value{typ: TypeFloat, num: math.Float64bits(v)} }
func String(v string) Value  { return Value{typ: TypeString, str: v} }
func Corelnk(v string) Value { return Value{typ: TypeCorelnk, str: v} }
func Opaque(v []byte) Value  { return Value{typ: TypeOpaque, raw: v} }
func Objlnk(l ObjLink) Value {
	return Value{typ: TypeObjlnk, num: uint64(l.Object)<<16 | uint64(l.Instance)}
}
func TimeUnix(sec int64) Value { return Value{typ: TypeTime, num: uint64(sec)} }
func Time(t time.Time) Value   { return TimeUnix(t.Unix()) }
func None() Value              { return Value{} }
func Bool(v bool) Value {
	if v {
		return Value{typ: TypeBoolean, num: 1}
	}
	return Value{typ: TypeBoolean}
}

// Type returns the value's data type.
func (v Value) Type() Type { return v.typ }

// Raw accessors: each returns the value's payload assuming its type is the
// named one; use Convert or the As* methods for conversions.
func (v Value) IntValue() int64      { return int64(v.num) }
func (v Value) UintValue() uint64    { return v.num }
func (v Value) FloatValue() float64  { return math.Float64frombits(v.num) }
func (v Value) BoolValue() bool      { return v.num != 0 }
func (v Value) StringValue() string  { return v.str }
func (v Value) Opaque() []byte       { return v.raw }
func (v Value) TimeValue() time.Time { return time.Unix(int64(v.num), 0).UTC() }
func (v Value) ObjlnkValue() ObjLink { return ObjLink{uint16(v.num >> 16), uint16(v.num)} }

// Equal reports whether two values have the same type and payload. Floats
// compare bitwise, so NaN equals the same NaN.
func (v Value) Equal(w Value) bool {
	return v.typ == w.typ && v.num == w.num && v.str == w.str && bytes.Equal(v.raw, w.raw)
}

// String returns the text/plain representation of the value (LwM2M 1.1
// §7.4.1): decimal numbers, "1"/"0" for booleans, unix seconds for time,
// "obj:inst" for objlnk and base64 for opaque.
func (v Value) String() string {
	switch v.typ {
	case TypeString, TypeCorelnk:
		return v.str
	case TypeInteger:
		return strconv.FormatInt(int64(v.num), 10)
	case TypeUnsigned:
		return strconv.FormatUint(v.num, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.FloatValue(), 'g', -1, 64)
	case TypeBoolean:
		if v.num != 0 {
			return "1"
		}
		return "0"
	case TypeTime:
		return strconv.FormatInt(int64(v.num), 10)
	case TypeObjlnk:
		return v.ObjlnkValue().String()
	case TypeOpaque:
		return base64.StdEncoding.EncodeToString(v.raw)
	}
	return ""
}

// GoString shows type and value, for test failures.
func (v Value) GoString() string { return v.typ.String() + "(" + v.String() + ")" }

// ErrConvert is wrapped by every conversion failure.
var ErrConvert = errors.New("value cannot be converted")

// Convert returns v as type t following the LwM2M conversion rules: numbers
// convert between integer, unsigned, float and time when the value is exact
// in the target type; booleans from 0/1; strings and corelnks are parsed as
// text/plain; opaque converts to nothing but itself. Converting to the same
// type returns v.
func (v Value) Convert(t Type) (Value, error) {
	if v.typ == t {
		return v, nil
	}
	fail := func() (Value, error) {
		return Value{}, fmt.Errorf("lwm2m: %w: %s %q to %s", ErrConvert, v.typ, v.String(), t)
	}
	switch v.typ {
	case TypeString, TypeCorelnk:
		if t == TypeString {
			return String(v.str), nil
		}
		if t == TypeCorelnk {
			return Corelnk(v.str), nil
		}
		w, err := ParseText(t, v.str)
		if err != nil {
			return fail()
		}
		return w, nil
	case TypeInteger, TypeTime:
		n := int64(v.num)
		switch t {
		case TypeInteger:
			return Int(n), nil
		case TypeTime:
			return TimeUnix(n), nil
		case TypeUnsigned:
			if n >= 0 {
				return Uint(uint64(n)), nil
			}
		case TypeFloat:
			if f := float64(n); int64(f) == n {
				return Float(f), nil
			}
		case TypeBoolean:
			if n == 0 || n == 1 {
				return Bool(n == 1), nil
			}
		case TypeString:
			return String(v.String()), nil
		}
	case TypeUnsigned:
		switch t {
		case TypeInteger, TypeTime:
			if v.num <= math.MaxInt64 {
				return Value{typ: t, num: v.num}, nil
			}
		case TypeFloat:
			if f := float64(v.num); f < 1<<64 && uint64(f) == v.num {
				return Float(f), nil
			}
		case TypeBoolean:
			if v.num <= 1 {
				return Bool(v.num == 1), nil
			}
		case TypeString:
			return String(v.String()), nil
		}
	case TypeFloat:
		f := v.FloatValue()
		switch t {
		case TypeInteger, TypeTime:
			if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
				return Value{typ: t, num: uint64(int64(f))}, nil
			}
		case TypeUnsigned:
			if f == math.Trunc(f) && f >= 0 && f < 1<<64 {
				return Uint(uint64(f)), nil
			}
		case TypeString:
			return String(v.String()), nil
		}
	case TypeBoolean:
		switch t {
		case TypeInteger, TypeUnsigned:
			return Value{typ: t, num: v.num}, nil
		case TypeString:
			return String(v.String()), nil
		}
	case TypeObjlnk:
		if t == TypeString {
			return String(v.String()), nil
		}
	}
	return fail()
}

// ParseText parses the text/plain representation of a value of type t (the
// inverse of Value.String). Booleans accept "0"/"1" (and "true"/"false");
// time accepts unix seconds; opaque expects base64.
func ParseText(t Type, s string) (Value, error) {
	bad := func(err error) (Value, error) {
		return Value{}, fmt.Errorf("lwm2m: %q is not a valid %s: %w", s, t, err)
	}
	switch t {
	case TypeString:
		return String(s), nil
	case TypeCorelnk:
		return Corelnk(s), nil
	case TypeInteger, TypeTime:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return bad(err)
		}
		return Value{typ: t, num: uint64(n)}, nil
	case TypeUnsigned:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return bad(err)
		}
		return Uint(n), nil
	case TypeFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return bad(err)
		}
		return Float(f), nil
	case TypeBoolean:
		switch strings.TrimSpace(s) {
		case "1", "true":
			return Bool(true), nil
		case "0", "false":
			return Bool(false), nil
		}
		return bad(errors.New("want 0 or 1"))
	case TypeObjlnk:
		l, err := ParseObjLink(strings.TrimSpace(s))
		if err != nil {
			return bad(err)
		}
		return Objlnk(l), nil
	case TypeOpaque:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return bad(err)
		}
		return Opaque(b), nil
	case TypeNone:
		if s == "" {
			return None(), nil
		}
		return bad(errors.New("type none carries no value"))
	}
	return bad(errors.New("unknown type"))
}
