package senml

import (
	"encoding/base64"
	"math"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// DecodeOptions adjusts decoding. The zero value is ready to use; methods
// take the options by value, so one DecodeOptions may be shared freely.
type DecodeOptions struct {
	// Now is the instant relative SenML times are counted from; the zero
	// Time means time.Now() when the decode starts.
	Now time.Time
}

// DecodeJSON is DecodeOptions{}.DecodeJSON.
func DecodeJSON(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return DecodeOptions{}.DecodeJSON(data, base, types)
}

// DecodeCBOR is DecodeOptions{}.DecodeCBOR.
func DecodeCBOR(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return DecodeOptions{}.DecodeCBOR(data, base, types)
}

// valKind is the value field a record carries.
type valKind uint8

const (
	valNone   valKind = iota
	valNum            // v
	valStr            // vs
	valBool           // vb
	valData           // vd
	valObjlnk         // vlo
)

// rawRecord is one SenML record as read from JSON or CBOR, before base
// fields are applied and the value is typed.
type rawRecord struct {
	bn, n              string
	hasBN              bool
	bt, t, bv          number
	hasBT, hasT, hasBV bool

	kind  valKind
	field string // the label of the value field, for errors
	num   number
	str   string // vs, vlo
	b     bool
	data  []byte
}

// setValue records which value field the record carries; a second one is an
// error message.
func (r *rawRecord) setValue(k valKind, label string) string {
	if r.kind != valNone {
		return "record has both " + r.field + " and " + label
	}
	r.kind, r.field = k, label
	return ""
}

// pack is one SenML format's way of reading a pack: parse splits the input
// into records and read takes the fields of record i. The decoders of both
// formats run the same loop over it.
type pack[O any] struct {
	format lwm2m.MediaType
	parse  func(data []byte) ([]O, error)
	read   func(i int, obj O) (rawRecord, error)
}

// records decodes a pack of records whose names resolve at or below base.
func (k pack[O]) records(data []byte, base lwm2m.Path, types lwm2m.TypeFunc, now time.Time) ([]lwm2m.Record, error) {
	objs, err := k.parse(data)
	if err != nil {
		return nil, err
	}
	r := newResolver(k.format, base, types, now)
	return resolveAll(objs, k.read, r.record)
}

// paths decodes a path list: names of any depth below the root, no values.
func (k pack[O]) paths(data []byte) ([]lwm2m.Path, error) {
	objs, err := k.parse(data)
	if err != nil {
		return nil, err
	}
	r := newResolver(k.format, lwm2m.Root, nil, time.Time{})
	return resolveAll(objs, k.read, r.path)
}

// resolveAll reads and resolves the records of a pack in document order, so
// that the first error in the document is the one reported. Records pass by
// value: through these function values a pointer would escape.
func resolveAll[O, T any](objs []O, read func(int, O) (rawRecord, error), resolve func(int, rawRecord) (T, error)) ([]T, error) {
	out := make([]T, 0, len(objs))
	for i, obj := range objs {
		raw, err := read(i, obj)
		if err != nil {
			return nil, err
		}
		v, err := resolve(i, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// resolver applies base fields across records (RFC 8428 §4.6) and types
// values.
type resolver struct {
	format lwm2m.MediaType
	base   lwm2m.Path
	types  lwm2m.TypeFunc
	now    time.Time

	bn           string
	bt, bv       number
	hasBT, hasBV bool
}

func newResolver(f lwm2m.MediaType, base lwm2m.Path, types lwm2m.TypeFunc, now time.Time) *resolver {
	if now.IsZero() {
		now = time.Now()
	}
	return &resolver{format: f, base: base, types: types, now: now.UTC()}
}

func (r *resolver) errorf(i int, field, format string, args ...any) error {
	return lwm2m.Errorf(r.format, i, field, format, args...)
}

// applyBase takes over the base fields of record i.
func (r *resolver) applyBase(i int, raw *rawRecord) error {
	if raw.hasBN {
		if raw.bn != "" {
			if raw.bn[0] != '/' {
				return r.errorf(i, "bn", "base name %q is not an absolute path", raw.bn)
			}
			p, err := lwm2m.ParsePath(raw.bn)
			if err != nil {
				return r.errorf(i, "bn", "%s", pathErr(err))
			}
			if !p.HasPrefix(r.base) && !r.base.HasPrefix(p) {
				return r.errorf(i, "bn", "base name %q is outside %s", raw.bn, r.base)
			}
		}
		r.bn = raw.bn
	}
	if raw.hasBT {
		r.bt, r.hasBT = raw.bt, true
	}
	if raw.hasBV {
		r.bv, r.hasBV = raw.bv, true
	}
	return nil
}

// name resolves the record's name against the current base name and the
// base path. leaf requires a resource or resource-instance path at or below
// the base path.
func (r *resolver) name(i int, raw *rawRecord, leaf bool) (lwm2m.Path, error) {
	full := raw.n
	if r.bn != "" {
		if raw.n != "" && raw.n[0] != '/' && !strings.HasSuffix(r.bn, "/") {
			return lwm2m.Path{}, r.errorf(i, "n", "name %q does not start a path segment after base name %q", raw.n, r.bn)
		}
		full = r.bn + raw.n
	}
	p := r.base
	if full != "" {
		if full[0] != '/' {
			prefix := r.base.String()
			if !r.base.IsRoot() {
				prefix += "/"
			}
			full = prefix + full
		}
		var err error
		if p, err = lwm2m.ParsePath(full); err != nil {
			return lwm2m.Path{}, r.errorf(i, "n", "%s", pathErr(err))
		}
	}
	if !leaf {
		return p, nil
	}
	if d := p.Depth(); d != 3 && d != 4 {
		return lwm2m.Path{}, r.errorf(i, "n", "name %s is not a resource or resource instance", p)
	}
	if !p.HasPrefix(r.base) {
		return lwm2m.Path{}, r.errorf(i, "n", "name %s is outside %s", p, r.base)
	}
	return p, nil
}

// pathErr strips the package prefix from a lwm2m.ParsePath error.
func pathErr(err error) string { return strings.TrimPrefix(err.Error(), "lwm2m: ") }

// record resolves record i into an LwM2M record.
func (r *resolver) record(i int, raw rawRecord) (lwm2m.Record, error) {
	if err := r.applyBase(i, &raw); err != nil {
		return lwm2m.Record{}, err
	}
	p, err := r.name(i, &raw, true)
	if err != nil {
		return lwm2m.Record{}, err
	}
	v, err := r.value(i, p, &raw)
	if err != nil {
		return lwm2m.Record{}, err
	}
	t, err := r.time(i, &raw)
	if err != nil {
		return lwm2m.Record{}, err
	}
	return lwm2m.Record{Path: p, Value: v, Time: t}, nil
}

// path resolves record i of a path list (a Read- or Observe-Composite
// request body): a name of any depth and no value.
func (r *resolver) path(i int, raw rawRecord) (lwm2m.Path, error) {
	if err := r.applyBase(i, &raw); err != nil {
		return lwm2m.Path{}, err
	}
	if raw.kind != valNone {
		return lwm2m.Path{}, r.errorf(i, raw.field, "a path list carries no values")
	}
	if r.bn == "" && raw.n == "" {
		return lwm2m.Path{}, r.errorf(i, "n", "record has no name")
	}
	return r.name(i, &raw, false)
}

// value types the record's value field with the resource type at p.
func (r *resolver) value(i int, p lwm2m.Path, raw *rawRecord) (lwm2m.Value, error) {
	typ, known := r.types.Lookup(p)
	if typ == lwm2m.TypeNone {
		known = false
	}
	mismatch := func() (lwm2m.Value, error) {
		return lwm2m.Value{}, r.errorf(i, raw.field, "resource %s has type %s and cannot hold %s", p, typ, fieldKind[raw.kind])
	}
	switch raw.kind {
	case valNum:
		n := raw.num
		if r.hasBV {
			n = add(r.bv, n)
		}
		if !known {
			return n.natural(), nil
		}
		if v, ok := n.as(typ); ok {
			return v, nil
		}
		if typ == lwm2m.TypeInteger || typ == lwm2m.TypeUnsigned || typ == lwm2m.TypeTime {
			return lwm2m.Value{}, r.errorf(i, raw.field, "%s is not a valid %s for %s", n, typ, p)
		}
		return mismatch()
	case valStr:
		switch {
		case !known || typ == lwm2m.TypeString:
			return lwm2m.String(raw.str), nil
		case typ == lwm2m.TypeCorelnk:
			return lwm2m.Corelnk(raw.str), nil
		}
		return mismatch()
	case valBool:
		if known && typ != lwm2m.TypeBoolean {
			return mismatch()
		}
		return lwm2m.Bool(raw.b), nil
	case valData:
		if known && typ != lwm2m.TypeOpaque {
			return mismatch()
		}
		return lwm2m.Opaque(raw.data), nil
	case valObjlnk:
		l, err := lwm2m.ParseObjLink(raw.str)
		if err != nil {
			return lwm2m.Value{}, r.errorf(i, raw.field, "%s", pathErr(err))
		}
		if known && typ != lwm2m.TypeObjlnk {
			return mismatch()
		}
		return lwm2m.Objlnk(l), nil
	}
	return lwm2m.Value{}, r.errorf(i, "v", "record has no value (v, vs, vb, vd or vlo)")
}

var fieldKind = [...]string{
	valNum:    "a number",
	valStr:    "a string",
	valBool:   "a boolean",
	valData:   "opaque data",
	valObjlnk: "an object link",
}

// Limits of resolved times: absolute times from 2^28 seconds up to the end of
// year 9999, relative times within about 272 years of now.
const (
	relativeLimit = 1 << 28
	maxAbsolute   = 253402300800
	maxRelative   = 1 << 33
)

// time resolves the record's time: zero without t and bt.
func (r *resolver) time(i int, raw *rawRecord) (time.Time, error) {
	if !raw.hasT && !r.hasBT {
		return time.Time{}, nil
	}
	field, s := "bt", number{}
	if raw.hasT {
		field, s = "t", raw.t
	}
	if r.hasBT {
		s = add(r.bt, s)
	}
	t, ok := resolveTime(s, r.now)
	if !ok {
		return time.Time{}, r.errorf(i, field, "time %s is out of range", s)
	}
	return t, nil
}

// resolveTime turns SenML seconds into a time: below 2^28 relative to now,
// otherwise since the Unix epoch; fractions are rounded to the microsecond.
func resolveTime(s number, now time.Time) (time.Time, bool) {
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

// decodeBase64 decodes vd: base64url without padding as RFC 8428 asks, and
// also padded input and the standard alphabet, which some clients send.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
