package omajson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

// DecodeOptions adjusts decoding. The zero value is ready to use; methods
// take the options by value, so one DecodeOptions may be shared freely.
type DecodeOptions struct {
	// Now is the instant relative times are counted from; the zero Time
	// means time.Now() when the decode starts.
	Now time.Time
}

// Decode is DecodeOptions{}.Decode.
func Decode(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return DecodeOptions{}.Decode(data, base, types)
}

// Decode decodes an OMA-LwM2M-JSON document whose names resolve at or below
// base (the path that was read or observed), typing values with types (nil
// knows no types). Records come back in the order of "e".
func (o DecodeOptions) Decode(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	r := senml.NewResolver(lwm2m.FormatJSON, base, types, o.Now)
	entries, err := root(r, data)
	if err != nil {
		return nil, err
	}
	out := make([]lwm2m.Record, 0, len(entries))
	for i, e := range entries {
		rec, err := entry(r, i, e)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func errorf(i int, field, format string, args ...any) error {
	return lwm2m.Errorf(lwm2m.FormatJSON, i, field, format, args...)
}

// root reads the top-level object: bn and bt, which it hands to r, and the
// entries of e. Keys are matched exactly (case-sensitive); unknown keys are
// skipped.
func root(r *senml.Resolver, data []byte) ([]map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errorf(-1, "", "an OMA-LwM2M-JSON document must be a JSON object")
	}
	var bn, bt json.RawMessage
	var entries []map[string]json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxErr(err)
		}
		switch key, _ := tok.(string); key {
		case "e":
			entries = nil
			err = dec.Decode(&entries)
		case "bn":
			err = dec.Decode(&bn)
		case "bt":
			err = dec.Decode(&bt)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, errorf(-1, "e", "must be an array of entry objects")
			}
			return nil, syntaxErr(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, syntaxErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errorf(-1, "", "data after the JSON object")
	}
	if bn != nil {
		s, why := senml.JSONString(bn)
		if why != "" {
			return nil, errorf(-1, "bn", "%s", why)
		}
		if err := r.SetBaseName(-1, s); err != nil {
			return nil, err
		}
	}
	if bt != nil {
		n, why := senml.JSONNumber(bt)
		if why != "" {
			return nil, errorf(-1, "bt", "%s", why)
		}
		r.SetBaseTime(n)
	}
	if entries == nil {
		return nil, errorf(-1, "e", "must be an array of entries")
	}
	for i, e := range entries {
		if e == nil {
			return nil, errorf(i, "", "entry is null, not an object")
		}
	}
	return entries, nil
}

func syntaxErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errorf(-1, "", "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errorf(-1, "", "truncated JSON")
	}
	return errorf(-1, "", "%v", err)
}

// entry resolves entry i into a record: its name, then its value, then its
// time, so that the first of several faults is the one reported.
func entry(r *senml.Resolver, i int, e map[string]json.RawMessage) (lwm2m.Record, error) {
	var name string
	if raw, ok := e["n"]; ok {
		var why string
		if name, why = senml.JSONString(raw); why != "" {
			return lwm2m.Record{}, errorf(i, "n", "%s", why)
		}
	}
	p, err := r.Name(i, name)
	if err != nil {
		return lwm2m.Record{}, err
	}
	v, err := value(r, i, p, e)
	if err != nil {
		return lwm2m.Record{}, err
	}
	var t senml.Number
	rawT, hasT := e["t"]
	if hasT {
		var why string
		if t, why = senml.JSONNumber(rawT); why != "" {
			return lwm2m.Record{}, errorf(i, "t", "%s", why)
		}
	}
	tm, err := r.Time(i, t, hasT)
	if err != nil {
		return lwm2m.Record{}, err
	}
	return lwm2m.Record{Path: p, Value: v, Time: tm}, nil
}

// valueLabels are the value fields of an entry, in the order they are
// checked.
var valueLabels = [...]string{"v", "sv", "bv", "ov"}

// value types the entry's single value field with the resource type at p.
// sv is a SenML vs but for opaque resources, where it holds base64 data.
func value(r *senml.Resolver, i int, p lwm2m.Path, e map[string]json.RawMessage) (lwm2m.Value, error) {
	var label string
	var raw json.RawMessage
	for _, l := range valueLabels {
		if v, ok := e[l]; ok {
			if label != "" {
				return lwm2m.Value{}, errorf(i, l, "entry has both %s and %s", label, l)
			}
			label, raw = l, v
		}
	}
	typ := r.Type(p)
	switch label {
	case "":
		return lwm2m.Value{}, errorf(i, "v", "entry has no value (v, sv, bv or ov)")
	case "v":
		n, why := senml.JSONNumber(raw)
		if why != "" {
			return lwm2m.Value{}, errorf(i, label, "%s", why)
		}
		return r.NumberValue(i, label, p, typ, n)
	case "sv":
		s, why := senml.JSONString(raw)
		if why != "" {
			return lwm2m.Value{}, errorf(i, label, "%s", why)
		}
		if typ == lwm2m.TypeOpaque {
			b, err := decodeBase64(s)
			if err != nil {
				return lwm2m.Value{}, errorf(i, label, "invalid base64 data: %v", err)
			}
			return lwm2m.Opaque(b), nil
		}
		return r.StringValue(i, label, p, typ, s)
	case "bv":
		b, why := senml.JSONBool(raw)
		if why != "" {
			return lwm2m.Value{}, errorf(i, label, "%s", why)
		}
		return r.BoolValue(i, label, p, typ, b)
	default: // ov
		s, why := senml.JSONString(raw)
		if why != "" {
			return lwm2m.Value{}, errorf(i, label, "%s", why)
		}
		return r.ObjlnkValue(i, label, p, typ, s)
	}
}

// decodeBase64 accepts the standard and URL alphabets, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
