package senml

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// numKind says which field of a number holds its value.
type numKind uint8

const (
	numInt   numKind = iota // i; the zero number is the integer 0
	numUint                 // u, used only above math.MaxInt64
	numFloat                // f
)

// Number is a numeric field (v, bv, t, bt) as the device wrote it: an
// integer (JSON literal without fraction or exponent, CBOR major type 0 or
// 1), exact to 64 bits, or a float. The zero Number is the integer 0.
// JSONNumber reads one; a Resolver adds and types them.
type Number struct {
	kind numKind
	i    int64
	u    uint64
	f    float64
}

func intNum(i int64) Number { return Number{kind: numInt, i: i} }

func uintNum(u uint64) Number {
	if u <= math.MaxInt64 {
		return intNum(int64(u))
	}
	return Number{kind: numUint, u: u}
}

func floatNum(f float64) Number { return Number{kind: numFloat, f: f} }

// parseJSONNumber reads a JSON number literal (already validated by
// encoding/json). Integer literals stay exact up to 64 bits; larger ones and
// literals with a fraction or exponent become floats. It fails only when the
// literal is outside the float64 range.
func parseJSONNumber(s string) (Number, bool) {
	if s == "-0" {
		return floatNum(math.Copysign(0, -1)), true
	}
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return intNum(i), true
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return uintNum(u), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return Number{}, false
	}
	return floatNum(f), true
}

func (n Number) float() float64 {
	switch n.kind {
	case numInt:
		return float64(n.i)
	case numUint:
		return float64(n.u)
	}
	return n.f
}

// int64 returns n as an int64 when it is an integer in range.
func (n Number) int64() (int64, bool) {
	switch n.kind {
	case numInt:
		return n.i, true
	case numUint:
		return 0, false
	}
	if n.f == math.Trunc(n.f) && n.f >= -(1<<63) && n.f < 1<<63 {
		return int64(n.f), true
	}
	return 0, false
}

// uint64 returns n as a uint64 when it is a non-negative integer in range.
func (n Number) uint64() (uint64, bool) {
	switch n.kind {
	case numInt:
		return uint64(n.i), n.i >= 0
	case numUint:
		return n.u, true
	}
	if n.f == math.Trunc(n.f) && n.f >= 0 && n.f < 1<<64 {
		return uint64(n.f), true
	}
	return 0, false
}

func (n Number) bigInt() *big.Int {
	if n.kind == numUint {
		return new(big.Int).SetUint64(n.u)
	}
	return big.NewInt(n.i)
}

// add returns a+b, exact when both are integers and the sum fits 64 bits,
// a float otherwise.
func add(a, b Number) Number {
	if a.kind == numFloat || b.kind == numFloat {
		return floatNum(a.float() + b.float())
	}
	if a.kind == numInt && b.kind == numInt {
		s := a.i + b.i
		if (s > a.i) == (b.i > 0) {
			return intNum(s)
		}
	}
	s := new(big.Int).Add(a.bigInt(), b.bigInt())
	switch {
	case s.IsInt64():
		return intNum(s.Int64())
	case s.IsUint64():
		return uintNum(s.Uint64())
	}
	f, _ := s.Float64()
	return floatNum(f)
}

// natural is the value of a number whose resource type is unknown: an exact
// integer becomes integer (unsigned above math.MaxInt64), anything else a
// float.
func (n Number) natural() lwm2m.Value {
	if i, ok := n.int64(); ok {
		return lwm2m.Int(i)
	}
	if u, ok := n.uint64(); ok {
		return lwm2m.Uint(u)
	}
	return lwm2m.Float(n.float())
}

// as converts n to a numeric LwM2M type; ok is false when n is not exact in
// t or t is not numeric.
func (n Number) as(t lwm2m.Type) (v lwm2m.Value, ok bool) {
	switch t {
	case lwm2m.TypeFloat:
		return lwm2m.Float(n.float()), true
	case lwm2m.TypeInteger:
		if i, ok := n.int64(); ok {
			return lwm2m.Int(i), true
		}
	case lwm2m.TypeTime:
		if i, ok := n.int64(); ok {
			return lwm2m.TimeUnix(i), true
		}
	case lwm2m.TypeUnsigned:
		if u, ok := n.uint64(); ok {
			return lwm2m.Uint(u), true
		}
	}
	return lwm2m.Value{}, false
}

func (n Number) String() string {
	switch n.kind {
	case numInt:
		return strconv.FormatInt(n.i, 10)
	case numUint:
		return strconv.FormatUint(n.u, 10)
	}
	return strconv.FormatFloat(n.f, 'g', -1, 64)
}
