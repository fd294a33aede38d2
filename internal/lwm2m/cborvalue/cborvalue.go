package cborvalue

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// decMode reads device input: one definite-length data item, shallow and
// short, with bignums refused (no LwM2M type needs them) and invalid UTF-8
// text refused.
var decMode = mustDecMode(cbor.DecOptions{
	MaxNestedLevels:  4,
	MaxArrayElements: 16,
	MaxMapPairs:      16,
	IndefLength:      cbor.IndefLengthForbidden,
	BignumTag:        cbor.BignumTagForbidden,
	UTF8:             cbor.UTF8RejectInvalid,
	TimeTagToAny:     cbor.TimeTagToTime,
	IntDec:           cbor.IntDecConvertNone,
})

// encMode writes floats at the width it is given and leaves NaN and
// infinities alone, so Encode decides the width; nil byte strings become
// empty ones, not null.
var encMode = mustEncMode(cbor.EncOptions{
	ShortestFloat: cbor.ShortestFloatNone,
	NaNConvert:    cbor.NaNConvertNone,
	InfConvert:    cbor.InfConvertNone,
	NilContainers: cbor.NilContainerAsEmpty,
})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

// ErrType is returned by Decode for a type argument outside the LwM2M data
// types; it signals a caller bug, not bad input.
var ErrType = errors.New("cborvalue: unknown data type")

// Decode reads data as one CBOR data item holding a value of type t:
//
//   - integer: a CBOR integer within int64, or an integral float within it;
//   - unsigned: a CBOR unsigned integer;
//   - float: a CBOR float of any width, or an integer that a float64 holds
//     exactly;
//   - boolean: true or false;
//   - string and corelnk: a text string;
//   - opaque: a byte string;
//   - objlnk: the text "object:instance", one trailing NUL tolerated (some
//     clients send it);
//   - time: epoch seconds as an integer or float, bare or under tag 1
//     (fractions of a second dropped), or an RFC 3339 text under tag 0
//     (as Zephyr sends);
//   - TypeNone, for resources of unknown type: the value is typed from the
//     item (integers as integer, or unsigned above MaxInt64; floats, booleans,
//     text as string, bytes as opaque, tags 0 and 1 as time), and null or
//     undefined give lwm2m.None.
//
// Empty input, malformed or trailing bytes, indefinite lengths, nesting,
// arrays or maps beyond the decoder limits and bignums yield a
// *lwm2m.DecodeError with Field "item"; an item of the wrong kind or out of
// range for t yields one with Field "value" and Offset 0, where the item
// starts. An unknown t yields ErrType. Byte strings are copied.
func Decode(data []byte, t lwm2m.Type) (lwm2m.Value, error) {
	if t > lwm2m.TypeCorelnk {
		return lwm2m.Value{}, fmt.Errorf("%w %d", ErrType, t)
	}
	if len(data) == 0 {
		return lwm2m.Value{}, lwm2m.Errorf(lwm2m.FormatCBOR, 0, "item", "empty payload")
	}
	var x any
	rest, err := decMode.UnmarshalFirst(data, &x)
	if err != nil {
		return lwm2m.Value{}, lwm2m.Errorf(lwm2m.FormatCBOR, 0, "item", "%v", err)
	}
	if len(rest) > 0 {
		return lwm2m.Value{}, lwm2m.Errorf(lwm2m.FormatCBOR, len(data)-len(rest), "item",
			"%d bytes after the data item", len(rest))
	}
	v, ok := convert(x, t)
	if !ok {
		return lwm2m.Value{}, lwm2m.Errorf(lwm2m.FormatCBOR, 0, "value", "%s cannot be read as %s", describe(x), t)
	}
	return v, nil
}

// convert types a decoded item as t; ok is false when the item does not fit.
func convert(x any, t lwm2m.Type) (v lwm2m.Value, ok bool) {
	switch t {
	case lwm2m.TypeNone:
		return natural(x)
	case lwm2m.TypeInteger:
		if n, ok := toInt(x); ok {
			return lwm2m.Int(n), true
		}
	case lwm2m.TypeUnsigned:
		if n, ok := x.(uint64); ok {
			return lwm2m.Uint(n), true
		}
	case lwm2m.TypeFloat:
		switch n := x.(type) {
		case float64:
			return lwm2m.Float(n), true
		case uint64:
			if f := float64(n); f < 1<<64 && uint64(f) == n {
				return lwm2m.Float(f), true
			}
		case int64:
			if f := float64(n); f >= -(1<<63) && int64(f) == n {
				return lwm2m.Float(f), true
			}
		}
	case lwm2m.TypeBoolean:
		if b, ok := x.(bool); ok {
			return lwm2m.Bool(b), true
		}
	case lwm2m.TypeString:
		if s, ok := x.(string); ok {
			return lwm2m.String(s), true
		}
	case lwm2m.TypeCorelnk:
		if s, ok := x.(string); ok {
			return lwm2m.Corelnk(s), true
		}
	case lwm2m.TypeOpaque:
		if b, ok := x.([]byte); ok {
			return lwm2m.Opaque(b), true
		}
	case lwm2m.TypeObjlnk:
		if s, ok := x.(string); ok {
			l, err := lwm2m.ParseObjLink(strings.TrimSuffix(s, "\x00"))
			if err == nil {
				return lwm2m.Objlnk(l), true
			}
		}
	case lwm2m.TypeTime:
		if tm, ok := x.(time.Time); ok {
			// The decoder maps tag 1 with NaN or undefined content to
			// the zero time; refuse it rather than report year 1.
			if tm.IsZero() {
				return lwm2m.Value{}, false
			}
			return lwm2m.TimeUnix(tm.Unix()), true
		}
		if f, ok := x.(float64); ok {
			x = math.Floor(f) // as for tag 1: fractions of a second are dropped
		}
		if n, ok := toInt(x); ok {
			return lwm2m.TimeUnix(n), true
		}
	}
	return lwm2m.Value{}, false
}

// toInt returns integers within int64 and integral floats within int64.
func toInt(x any) (int64, bool) {
	switch n := x.(type) {
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), true
		}
	case int64:
		return n, true
	case float64:
		if n == math.Trunc(n) && n >= -(1<<63) && n < 1<<63 {
			return int64(n), true
		}
	}
	return 0, false
}

// natural types an item by its CBOR kind.
func natural(x any) (lwm2m.Value, bool) {
	switch n := x.(type) {
	case nil:
		return lwm2m.None(), true
	case uint64:
		if n <= math.MaxInt64 {
			return lwm2m.Int(int64(n)), true
		}
		return lwm2m.Uint(n), true
	case int64:
		return lwm2m.Int(n), true
	case float64:
		return lwm2m.Float(n), true
	case bool:
		return lwm2m.Bool(n), true
	case string:
		return lwm2m.String(n), true
	case []byte:
		return lwm2m.Opaque(n), true
	case time.Time:
		return convert(x, lwm2m.TypeTime)
	}
	return lwm2m.Value{}, false
}

// describe names the kind of a decoded item for error messages.
func describe(x any) string {
	switch n := x.(type) {
	case nil:
		return "null"
	case uint64, int64:
		return fmt.Sprintf("integer %d", n)
	case big.Int:
		return "integer " + n.String()
	case float64:
		return fmt.Sprintf("float %g", n)
	case bool:
		return fmt.Sprintf("boolean %t", n)
	case string:
		if len(n) > 32 {
			n = n[:32] + "..."
		}
		return fmt.Sprintf("text %q", n)
	case []byte:
		return fmt.Sprintf("byte string of %d bytes", len(n))
	case time.Time:
		return "time " + n.UTC().Format(time.RFC3339)
	case cbor.Tag:
		return fmt.Sprintf("tag %d", n.Number)
	case cbor.SimpleValue:
		return fmt.Sprintf("simple value %d", n)
	case []any:
		return "array"
	case map[any]any:
		return "map"
	}
	return fmt.Sprintf("%T", x)
}

// Encode writes v as one CBOR data item: integers and time as CBOR
// integers (time under tag 1), unsigned as an unsigned integer, floats as
// single precision when that is exact (bit for bit) and double otherwise,
// booleans, strings and corelnks as text, opaque as a byte string and objlnk
// as the text "object:instance". lwm2m.None has no CBOR form and is an
// error.
func Encode(v lwm2m.Value) ([]byte, error) {
	var x any
	switch v.Type() {
	case lwm2m.TypeInteger:
		x = v.IntValue()
	case lwm2m.TypeUnsigned:
		x = v.UintValue()
	case lwm2m.TypeFloat:
		f := v.FloatValue()
		if math.Float64bits(float64(float32(f))) == math.Float64bits(f) {
			x = float32(f)
		} else {
			x = f
		}
	case lwm2m.TypeBoolean:
		x = v.BoolValue()
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		x = v.StringValue()
	case lwm2m.TypeOpaque:
		x = v.Opaque()
	case lwm2m.TypeObjlnk:
		x = v.ObjlnkValue().String()
	case lwm2m.TypeTime:
		x = cbor.Tag{Number: 1, Content: v.IntValue()}
	default:
		return nil, fmt.Errorf("cborvalue: cannot encode a %s value", v.Type())
	}
	b, err := encMode.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("cborvalue: %w", err)
	}
	return b, nil
}
