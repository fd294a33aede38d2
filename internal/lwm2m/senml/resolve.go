package senml

import (
	"encoding/base64"
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
	bt, t, bv          Number
	hasBT, hasT, hasBV bool

	kind  valKind
	field string // the label of the value field, for errors
	num   Number
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
	r := NewResolver(k.format, base, types, now)
	return resolveAll(objs, k.read, r.record)
}

// paths decodes a path list: names of any depth below the root, no values.
func (k pack[O]) paths(data []byte) ([]lwm2m.Path, error) {
	objs, err := k.parse(data)
	if err != nil {
		return nil, err
	}
	r := NewResolver(k.format, lwm2m.Root, nil, time.Time{})
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

// applyBase takes over the base fields of record i.
func (r *Resolver) applyBase(i int, raw *rawRecord) error {
	if raw.hasBN {
		if err := r.SetBaseName(i, raw.bn); err != nil {
			return err
		}
	}
	if raw.hasBT {
		r.SetBaseTime(raw.bt)
	}
	if raw.hasBV {
		r.bv, r.hasBV = raw.bv, true
	}
	return nil
}

// record resolves record i into an LwM2M record.
func (r *Resolver) record(i int, raw rawRecord) (lwm2m.Record, error) {
	if err := r.applyBase(i, &raw); err != nil {
		return lwm2m.Record{}, err
	}
	p, err := r.Name(i, raw.n)
	if err != nil {
		return lwm2m.Record{}, err
	}
	v, err := r.value(i, p, &raw)
	if err != nil {
		return lwm2m.Record{}, err
	}
	t, err := r.Time(i, raw.t, raw.hasT)
	if err != nil {
		return lwm2m.Record{}, err
	}
	return lwm2m.Record{Path: p, Value: v, Time: t}, nil
}

// path resolves record i of a path list (a Read- or Observe-Composite
// request body): a name of any depth and no value.
func (r *Resolver) path(i int, raw rawRecord) (lwm2m.Path, error) {
	if err := r.applyBase(i, &raw); err != nil {
		return lwm2m.Path{}, err
	}
	if raw.kind != valNone {
		return lwm2m.Path{}, r.errorf(i, raw.field, "a path list carries no values")
	}
	if r.bn == "" && raw.n == "" {
		return lwm2m.Path{}, r.errorf(i, "n", "record has no name")
	}
	return r.name(i, raw.n)
}

// value types the record's value field, the base value added to v, with
// the resource type at p.
func (r *Resolver) value(i int, p lwm2m.Path, raw *rawRecord) (lwm2m.Value, error) {
	typ := r.Type(p)
	switch raw.kind {
	case valNum:
		n := raw.num
		if r.hasBV {
			n = add(r.bv, n)
		}
		return r.NumberValue(i, raw.field, p, typ, n)
	case valStr:
		return r.StringValue(i, raw.field, p, typ, raw.str)
	case valBool:
		return r.BoolValue(i, raw.field, p, typ, raw.b)
	case valData:
		return r.opaqueValue(i, raw.field, p, typ, raw.data)
	case valObjlnk:
		return r.ObjlnkValue(i, raw.field, p, typ, raw.str)
	}
	return lwm2m.Value{}, r.errorf(i, "v", "record has no value (v, vs, vb, vd or vlo)")
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
