package senml

import (
	"math"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Resolver turns the fields of a pack's records, read one record after
// another, into LwM2M records by the rules of the package documentation: it
// carries the base name and base time forward, resolves names against the
// base path, adds and resolves times, and types values with a TypeFunc.
//
// The decoders of this package drive a Resolver for both SenML formats.
// OMA-LwM2M-JSON (package omajson), the SenML dialect of LwM2M 1.0, has the
// same names, times and values under other labels and uses it too: the
// methods take the record index and the label to name in errors, which are
// *lwm2m.DecodeError in the Resolver's format. A Resolver holds the state of
// one pack and is not safe for concurrent use.
type Resolver struct {
	format lwm2m.MediaType
	base   lwm2m.Path
	types  lwm2m.TypeFunc
	now    time.Time

	bn           string
	bt, bv       Number
	hasBT, hasBV bool // bv is SenML's base value, added by this package's decoders
}

// NewResolver returns a Resolver for a pack in format f whose names resolve
// at or below base. Relative times count from now; the zero Time means
// time.Now().
func NewResolver(f lwm2m.MediaType, base lwm2m.Path, types lwm2m.TypeFunc, now time.Time) *Resolver {
	// Small enough to inline, so that a Resolver that does not escape its
	// caller stays on the stack.
	return &Resolver{format: f, base: base, types: types, now: nowUTC(now)}
}

// nowUTC is t in UTC, the current time for the zero t.
func nowUTC(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC()
}

func (r *Resolver) errorf(i int, field, format string, args ...any) error {
	return lwm2m.Errorf(r.format, i, field, format, args...)
}

// SetBaseName makes bn the base name of the records that follow; "" clears
// it. A non-empty bn must be an absolute path on the way to or below the
// base path ("/3/" for base /3/0 is fine, "/4/" is not); otherwise the error
// is at offset i, field "bn".
func (r *Resolver) SetBaseName(i int, bn string) error {
	if bn != "" {
		if bn[0] != '/' {
			return r.errorf(i, "bn", "base name %q is not an absolute path", bn)
		}
		p, err := lwm2m.ParsePath(bn)
		if err != nil {
			return r.errorf(i, "bn", "%s", pathErr(err))
		}
		if !p.HasPrefix(r.base) && !r.base.HasPrefix(p) {
			return r.errorf(i, "bn", "base name %q is outside %s", bn, r.base)
		}
	}
	r.bn = bn
	return nil
}

// SetBaseTime makes bt the base time of the records that follow.
func (r *Resolver) SetBaseTime(bt Number) { r.bt, r.hasBT = bt, true }

// Name resolves the name n of record i: the base name followed by n, or
// without base name n relative to the base path ("" is the base path
// itself, a leading "/" makes n absolute). The result must be a resource or
// resource instance at or below the base path; errors are at field "n".
func (r *Resolver) Name(i int, n string) (lwm2m.Path, error) {
	p, err := r.name(i, n)
	if err != nil {
		return lwm2m.Path{}, err
	}
	if d := p.Depth(); d != 3 && d != 4 {
		return lwm2m.Path{}, r.errorf(i, "n", "name %s is not a resource or resource instance", p)
	}
	if !p.HasPrefix(r.base) {
		return lwm2m.Path{}, r.errorf(i, "n", "name %s is outside %s", p, r.base)
	}
	return p, nil
}

// name is Name for a path of any depth.
func (r *Resolver) name(i int, n string) (lwm2m.Path, error) {
	full := n
	if r.bn != "" {
		if n != "" && n[0] != '/' && !strings.HasSuffix(r.bn, "/") {
			return lwm2m.Path{}, r.errorf(i, "n", "name %q does not start a path segment after base name %q", n, r.bn)
		}
		full = r.bn + n
	}
	if full == "" {
		return r.base, nil
	}
	if full[0] != '/' {
		prefix := r.base.String()
		if !r.base.IsRoot() {
			prefix += "/"
		}
		full = prefix + full
	}
	p, err := lwm2m.ParsePath(full)
	if err != nil {
		return lwm2m.Path{}, r.errorf(i, "n", "%s", pathErr(err))
	}
	return p, nil
}

// pathErr strips the package prefix from a lwm2m.ParsePath error.
func pathErr(err error) string { return strings.TrimPrefix(err.Error(), "lwm2m: ") }

// Time resolves the time of record i: the base time plus t (hasT tells
// whether the record has one), the zero Time when it has neither. A sum
// below 2^28 counts from now, a larger one from the Unix epoch; a time
// outside about ±272 years of now or beyond year 9999 is an error at field
// "t", or "bt" when the record has no t.
func (r *Resolver) Time(i int, t Number, hasT bool) (time.Time, error) {
	if !hasT && !r.hasBT {
		return time.Time{}, nil
	}
	field := "t"
	if !hasT {
		field, t = "bt", Number{}
	}
	if r.hasBT {
		t = add(r.bt, t)
	}
	tm, ok := resolveTime(t, r.now)
	if !ok {
		return time.Time{}, r.errorf(i, field, "time %s is out of range", t)
	}
	return tm, nil
}

// Limits of resolved times: absolute times from 2^28 seconds up to the end of
// year 9999, relative times within about 272 years of now.
const (
	relativeLimit = 1 << 28
	maxAbsolute   = 253402300800
	maxRelative   = 1 << 33
)

// resolveTime turns SenML seconds into a time: below 2^28 relative to now,
// otherwise since the Unix epoch; fractions are rounded to the microsecond.
func resolveTime(s Number, now time.Time) (time.Time, bool) {
	switch s.kind {
	case numUint:
		return time.Time{}, false
	case numInt:
		if s.i >= relativeLimit {
			if s.i >= maxAbsolute {
				return time.Time{}, false
			}
			return time.Unix(s.i, 0).UTC(), true
		}
		if s.i <= -maxRelative {
			return time.Time{}, false
		}
		return now.Add(time.Duration(s.i) * time.Second), true
	}
	f := s.f
	if f >= relativeLimit {
		if f >= maxAbsolute {
			return time.Time{}, false
		}
		sec := math.Floor(f)
		us := math.Round((f - sec) * 1e6)
		return time.Unix(int64(sec), int64(us)*1000).UTC(), true
	}
	if !(f > -maxRelative) { // also NaN
		return time.Time{}, false
	}
	return now.Add(time.Duration(math.Round(f*1e6)) * time.Microsecond), true
}

// Type is the type of the resource at p, TypeNone when the TypeFunc does
// not know it. The value methods (NumberValue, StringValue, BoolValue,
// ObjlnkValue) type the value of record i, written under label, for the
// resource p of type typ, TypeNone when unknown; a value that does not fit
// typ is an error at label.
func (r *Resolver) Type(p lwm2m.Path) lwm2m.Type {
	if typ, ok := r.types.Lookup(p); ok {
		return typ
	}
	return lwm2m.TypeNone
}

// NumberValue types a number: integer, unsigned, float or time when n is
// exact in typ. Of an unknown type, an exact integer becomes integer
// (unsigned above math.MaxInt64) and any other number a float.
func (r *Resolver) NumberValue(i int, label string, p lwm2m.Path, typ lwm2m.Type, n Number) (lwm2m.Value, error) {
	if typ == lwm2m.TypeNone {
		return n.natural(), nil
	}
	if v, ok := n.as(typ); ok {
		return v, nil
	}
	if typ == lwm2m.TypeInteger || typ == lwm2m.TypeUnsigned || typ == lwm2m.TypeTime {
		return lwm2m.Value{}, r.errorf(i, label, "%s is not a valid %s for %s", n, typ, p)
	}
	return r.mismatch(i, label, p, typ, "a number")
}

// StringValue types a string: string (also of an unknown type) or corelnk.
func (r *Resolver) StringValue(i int, label string, p lwm2m.Path, typ lwm2m.Type, s string) (lwm2m.Value, error) {
	switch typ {
	case lwm2m.TypeNone, lwm2m.TypeString:
		return lwm2m.String(s), nil
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk(s), nil
	}
	return r.mismatch(i, label, p, typ, "a string")
}

// BoolValue types a boolean.
func (r *Resolver) BoolValue(i int, label string, p lwm2m.Path, typ lwm2m.Type, b bool) (lwm2m.Value, error) {
	if typ != lwm2m.TypeNone && typ != lwm2m.TypeBoolean {
		return r.mismatch(i, label, p, typ, "a boolean")
	}
	return lwm2m.Bool(b), nil
}

// ObjlnkValue types an object link written as "3:0".
func (r *Resolver) ObjlnkValue(i int, label string, p lwm2m.Path, typ lwm2m.Type, s string) (lwm2m.Value, error) {
	l, err := lwm2m.ParseObjLink(s)
	if err != nil {
		return lwm2m.Value{}, r.errorf(i, label, "%s", pathErr(err))
	}
	if typ != lwm2m.TypeNone && typ != lwm2m.TypeObjlnk {
		return r.mismatch(i, label, p, typ, "an object link")
	}
	return lwm2m.Objlnk(l), nil
}

// opaqueValue types opaque data.
func (r *Resolver) opaqueValue(i int, label string, p lwm2m.Path, typ lwm2m.Type, b []byte) (lwm2m.Value, error) {
	if typ != lwm2m.TypeNone && typ != lwm2m.TypeOpaque {
		return r.mismatch(i, label, p, typ, "opaque data")
	}
	return lwm2m.Opaque(b), nil
}

func (r *Resolver) mismatch(i int, label string, p lwm2m.Path, typ lwm2m.Type, what string) (lwm2m.Value, error) {
	return lwm2m.Value{}, r.errorf(i, label, "resource %s has type %s and cannot hold %s", p, typ, what)
}
