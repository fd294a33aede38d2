package linkformat

import (
	"math"
	"strconv"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Attr names one LwM2M notification attribute (LwM2M 1.1 §5.1.2, 1.2
// §5.1.2).
type Attr uint8

// The notification attributes, in the canonical order Query and
// FormatDiscover write them.
const (
	AttrPMin  Attr = iota // minimum period, seconds
	AttrPMax              // maximum period, seconds
	AttrGT                // greater than
	AttrLT                // less than
	AttrST                // step
	AttrEPMin             // minimum evaluation period, seconds
	AttrEPMax             // maximum evaluation period, seconds
	AttrEdge              // edge (1.2): 0 falling, 1 rising
	AttrCon               // confirmable notification (1.2): 0 or 1
	AttrHQMax             // maximum historical queue (1.2)
	numAttrs
)

var attrNames = [numAttrs]string{"pmin", "pmax", "gt", "lt", "st", "epmin", "epmax", "edge", "con", "hqmax"}

// String returns the attribute's name as written on the wire ("pmin").
func (a Attr) String() string {
	if a < numAttrs {
		return attrNames[a]
	}
	return "attr(" + strconv.Itoa(int(a)) + ")"
}

// ParseAttr returns the attribute with the given wire name. Names are
// lower-case; other spellings are not attributes.
func ParseAttr(name string) (Attr, bool) {
	for a, n := range attrNames {
		if n == name {
			return Attr(a), true
		}
	}
	return 0, false
}

func parseAttrBytes(name []byte) (Attr, bool) {
	for a, n := range attrNames {
		if string(name) == n {
			return Attr(a), true
		}
	}
	return 0, false
}

// AttrSet is a set of attributes. The zero AttrSet is empty.
type AttrSet uint16

// Has reports whether a is in the set.
func (s AttrSet) Has(a Attr) bool { return s&(1<<a) != 0 }

// With returns the set with a added.
func (s AttrSet) With(a Attr) AttrSet { return s | 1<<a }

// Attributes holds notification attributes. A nil field is absent. Unset
// lists the attributes a Write-Attributes request removes (a bare "pmin"
// query); it is meaningful only for requests, see Merge.
//
// Attributes values are plain data: copy them freely, but note that copies
// share the pointed-to numbers.
type Attributes struct {
	PMin, PMax   *int64   // seconds
	GT, LT, ST   *float64 // in the resource's unit
	EPMin, EPMax *int64   // seconds
	Edge         *int     // 0 or 1
	Con          *int     // 0 or 1
	HQMax        *int     // queue length
	Unset        AttrSet
}

// Set returns the set of attributes that have a value.
func (a Attributes) Set() AttrSet {
	var s AttrSet
	for at := range numAttrs {
		if a.has(at) {
			s = s.With(at)
		}
	}
	return s
}

// IsZero reports whether a sets and removes nothing.
func (a Attributes) IsZero() bool { return a.Set() == 0 && a.Unset == 0 }

func (a Attributes) has(at Attr) bool {
	switch at {
	case AttrPMin:
		return a.PMin != nil
	case AttrPMax:
		return a.PMax != nil
	case AttrGT:
		return a.GT != nil
	case AttrLT:
		return a.LT != nil
	case AttrST:
		return a.ST != nil
	case AttrEPMin:
		return a.EPMin != nil
	case AttrEPMax:
		return a.EPMax != nil
	case AttrEdge:
		return a.Edge != nil
	case AttrCon:
		return a.Con != nil
	case AttrHQMax:
		return a.HQMax != nil
	}
	return false
}

// copyAttr copies attribute at from src to a (clearing it when src lacks it).
func (a *Attributes) copyAttr(at Attr, src Attributes) {
	switch at {
	case AttrPMin:
		a.PMin = src.PMin
	case AttrPMax:
		a.PMax = src.PMax
	case AttrGT:
		a.GT = src.GT
	case AttrLT:
		a.LT = src.LT
	case AttrST:
		a.ST = src.ST
	case AttrEPMin:
		a.EPMin = src.EPMin
	case AttrEPMax:
		a.EPMax = src.EPMax
	case AttrEdge:
		a.Edge = src.Edge
	case AttrCon:
		a.Con = src.Con
	case AttrHQMax:
		a.HQMax = src.HQMax
	}
}

// Merge applies a Write-Attributes request w to the attributes in force a:
// values set in w replace those of a, attributes in w.Unset are removed.
// The result has an empty Unset.
func (a Attributes) Merge(w Attributes) Attributes {
	out := a
	out.Unset = 0
	for at := range numAttrs {
		if w.has(at) || w.Unset.Has(at) {
			out.copyAttr(at, w)
		}
	}
	return out
}

// appendValue appends the text form of attribute at, which must be set.
func (a Attributes) appendValue(b []byte, at Attr) []byte {
	switch at {
	case AttrPMin:
		return strconv.AppendInt(b, *a.PMin, 10)
	case AttrPMax:
		return strconv.AppendInt(b, *a.PMax, 10)
	case AttrGT:
		return strconv.AppendFloat(b, *a.GT, 'f', -1, 64)
	case AttrLT:
		return strconv.AppendFloat(b, *a.LT, 'f', -1, 64)
	case AttrST:
		return strconv.AppendFloat(b, *a.ST, 'f', -1, 64)
	case AttrEPMin:
		return strconv.AppendInt(b, *a.EPMin, 10)
	case AttrEPMax:
		return strconv.AppendInt(b, *a.EPMax, 10)
	case AttrEdge:
		return strconv.AppendInt(b, int64(*a.Edge), 10)
	case AttrCon:
		return strconv.AppendInt(b, int64(*a.Con), 10)
	case AttrHQMax:
		return strconv.AppendInt(b, int64(*a.HQMax), 10)
	}
	return b
}

// Query returns the Uri-Query values of a Write-Attributes request: "name=
// value" for every attribute set, then the bare name of every attribute in
// Unset, each group in canonical order. Floats are written in decimal
// without an exponent.
func (a Attributes) Query() []string {
	var q []string
	var buf []byte
	for at := range numAttrs {
		if a.has(at) {
			buf = append(buf[:0], attrNames[at]...)
			buf = append(buf, '=')
			q = append(q, string(a.appendValue(buf, at)))
		}
	}
	for at := range numAttrs {
		if a.Unset.Has(at) && !a.has(at) {
			q = append(q, attrNames[at])
		}
	}
	return q
}

// appendParams appends ";name=value" for every attribute set.
func (a Attributes) appendParams(b []byte) []byte {
	for at := range numAttrs {
		if a.has(at) {
			b = append(b, ';')
			b = append(b, attrNames[at]...)
			b = append(b, '=')
			b = a.appendValue(b, at)
		}
	}
	return b
}

// ParseQuery parses the Uri-Query values of a Write-Attributes request
// ("pmin=10", "gt=25.5", or a bare "pmin" to remove pmin). Each value is
// checked on its own: integers for pmin, pmax, epmin, epmax and hqmax, all
// non-negative; finite decimals for gt, lt and st, st non-negative; 0 or 1
// for edge and con. Unknown names, repeated attributes and malformed values
// yield a *lwm2m.DecodeError whose Offset is the index of the query value
// and whose Field is the attribute name. Cross-attribute rules are left to
// Validate, which should run on the merged result (see Merge).
func ParseQuery(q []string) (Attributes, error) {
	var a Attributes
	var seen AttrSet
	for i, s := range q {
		name, value, hasValue := cutByte(s, '=')
		at, ok := ParseAttr(name)
		if !ok {
			return Attributes{}, lwm2m.Errorf(lwm2m.FormatLinkFormat, i, name, "unknown attribute")
		}
		if seen.Has(at) {
			return Attributes{}, lwm2m.Errorf(lwm2m.FormatLinkFormat, i, name, "attribute given twice")
		}
		seen = seen.With(at)
		if !hasValue {
			a.Unset = a.Unset.With(at)
			continue
		}
		if err := a.parseValue(at, []byte(value)); err != nil {
			return Attributes{}, lwm2m.Errorf(lwm2m.FormatLinkFormat, i, name, "%s", err.Msg)
		}
	}
	return a, nil
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// valueError is a malformed attribute value; callers add where it was.
type valueError struct{ Msg string }

// parseValue sets attribute at from its text form v.
func (a *Attributes) parseValue(at Attr, v []byte) *valueError {
	switch at {
	case AttrPMin, AttrPMax, AttrEPMin, AttrEPMax:
		n, ok := parseInt(v, math.MaxInt64)
		if !ok {
			return &valueError{"value " + strconv.Quote(string(v)) + " is not a number of seconds >= 0"}
		}
		switch at {
		case AttrPMin:
			a.PMin = &n
		case AttrPMax:
			a.PMax = &n
		case AttrEPMin:
			a.EPMin = &n
		default:
			a.EPMax = &n
		}
	case AttrGT, AttrLT, AttrST:
		f, ok := parseDecimal(v)
		if !ok || (at == AttrST && f < 0) {
			want := "a finite decimal number"
			if at == AttrST {
				want = "a finite decimal number >= 0"
			}
			return &valueError{"value " + strconv.Quote(string(v)) + " is not " + want}
		}
		switch at {
		case AttrGT:
			a.GT = &f
		case AttrLT:
			a.LT = &f
		default:
			a.ST = &f
		}
	case AttrEdge, AttrCon:
		n, ok := parseInt(v, 1)
		if !ok {
			return &valueError{"value " + strconv.Quote(string(v)) + " is not 0 or 1"}
		}
		x := int(n)
		if at == AttrEdge {
			a.Edge = &x
		} else {
			a.Con = &x
		}
	case AttrHQMax:
		n, ok := parseInt(v, math.MaxInt32)
		if !ok {
			return &valueError{"value " + strconv.Quote(string(v)) + " is not a count >= 0"}
		}
		x := int(n)
		a.HQMax = &x
	}
	return nil
}

// parseInt parses a non-negative decimal integer no larger than limit.
func parseInt(v []byte, limit int64) (int64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if d > limit || n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseDecimal parses a finite decimal number: an optional sign, digits, an
// optional fraction and exponent. Hexadecimal, Inf and NaN are refused.
func parseDecimal(v []byte) (float64, bool) {
	if len(v) == 0 || len(v) > 64 {
		return 0, false
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// Validate checks the combination of attributes (LwM2M 1.1 §5.1.2): every
// value in range (non-negative periods, step and queue length; edge and
// con 0 or 1; finite numbers), pmin <= pmax and epmin <= epmax when both
// are set, lt < gt when both are set, and lt + 2*st < gt when all three
// are. Unset is ignored. The error is a *lwm2m.DecodeError with Offset -1
// and Field naming the offending attribute, so that callers treat it like
// any other bad request content.
func (a Attributes) Validate() error {
	bad := func(at Attr, format string, args ...any) error {
		return lwm2m.Errorf(lwm2m.FormatLinkFormat, -1, at.String(), format, args...)
	}
	for _, c := range []struct {
		at Attr
		v  *int64
	}{{AttrPMin, a.PMin}, {AttrPMax, a.PMax}, {AttrEPMin, a.EPMin}, {AttrEPMax, a.EPMax}} {
		if c.v != nil && *c.v < 0 {
			return bad(c.at, "must be >= 0, is %d", *c.v)
		}
	}
	for _, c := range []struct {
		at Attr
		v  *float64
	}{{AttrGT, a.GT}, {AttrLT, a.LT}, {AttrST, a.ST}} {
		if c.v != nil && (math.IsNaN(*c.v) || math.IsInf(*c.v, 0)) {
			return bad(c.at, "must be a finite number")
		}
	}
	if a.ST != nil && *a.ST < 0 {
		return bad(AttrST, "must be >= 0, is %g", *a.ST)
	}
	for _, c := range []struct {
		at Attr
		v  *int
	}{{AttrEdge, a.Edge}, {AttrCon, a.Con}} {
		if c.v != nil && *c.v != 0 && *c.v != 1 {
			return bad(c.at, "must be 0 or 1, is %d", *c.v)
		}
	}
	if a.HQMax != nil && *a.HQMax < 0 {
		return bad(AttrHQMax, "must be >= 0, is %d", *a.HQMax)
	}
	if a.PMin != nil && a.PMax != nil && *a.PMin > *a.PMax {
		return bad(AttrPMin, "pmin %d is greater than pmax %d", *a.PMin, *a.PMax)
	}
	if a.EPMin != nil && a.EPMax != nil && *a.EPMin > *a.EPMax {
		return bad(AttrEPMin, "epmin %d is greater than epmax %d", *a.EPMin, *a.EPMax)
	}
	if a.LT != nil && a.GT != nil {
		if *a.LT >= *a.GT {
			return bad(AttrLT, "lt %g is not less than gt %g", *a.LT, *a.GT)
		}
		if a.ST != nil && *a.LT+2**a.ST >= *a.GT {
			return bad(AttrST, "lt + 2*st (%g + 2*%g) is not less than gt %g", *a.LT, *a.ST, *a.GT)
		}
	}
	return nil
}
