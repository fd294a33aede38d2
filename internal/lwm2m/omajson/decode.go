package omajson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/lwm2m"
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
	d := decoder{base: base, types: types, now: o.Now}
	if d.now.IsZero() {
		d.now = time.Now()
	}
	d.now = d.now.UTC()
	entries, err := d.root(data)
	if err != nil {
		return nil, err
	}
	out := make([]lwm2m.Record, 0, len(entries))
	for i, e := range entries {
		rec, err := d.entry(i, e)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

type decoder struct {
	base  lwm2m.Path
	types lwm2m.TypeFunc
	now   time.Time

	bn    string
	bt    number
	hasBT bool
}

func errorf(i int, field, format string, args ...any) error {
	return lwm2m.Errorf(lwm2m.FormatJSON, i, field, format, args...)
}

// root reads the top-level object: bn, bt and the entries of e. Keys are
// matched exactly (case-sensitive); unknown keys are skipped.
func (d *decoder) root(data []byte) ([]map[string]json.RawMessage, error) {
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
		s, ok := str(bn)
		if !ok {
			return nil, errorf(-1, "bn", "must be a string")
		}
		if s != "" {
			if s[0] != '/' {
				return nil, errorf(-1, "bn", "base name %q is not an absolute path", s)
			}
			p, err := lwm2m.ParsePath(s)
			if err != nil {
				return nil, errorf(-1, "bn", "%s", pathErr(err))
			}
			if !p.HasPrefix(d.base) && !d.base.HasPrefix(p) {
				return nil, errorf(-1, "bn", "base name %q is outside %s", s, d.base)
			}
		}
		d.bn = s
	}
	if bt != nil {
		n, why := num(bt)
		if why != "" {
			return nil, errorf(-1, "bt", "%s", why)
		}
		d.bt, d.hasBT = n, true
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

// entry resolves entry i into a record.
func (d *decoder) entry(i int, e map[string]json.RawMessage) (lwm2m.Record, error) {
	var name string
	if raw, ok := e["n"]; ok {
		var ok bool
		if name, ok = str(raw); !ok {
			return lwm2m.Record{}, errorf(i, "n", "must be a string")
		}
	}
	p, err := d.name(i, name)
	if err != nil {
		return lwm2m.Record{}, err
	}
	v, err := d.value(i, p, e)
	if err != nil {
		return lwm2m.Record{}, err
	}
	var rec = lwm2m.Record{Path: p, Value: v}
	rawT, hasT := e["t"]
	if !hasT && !d.hasBT {
		return rec, nil
	}
	field, s := "bt", number{}
	if hasT {
		var why string
		if s, why = num(rawT); why != "" {
			return lwm2m.Record{}, errorf(i, "t", "%s", why)
		}
		field = "t"
	}
	if d.hasBT {
		s = add(d.bt, s)
	}
	t, ok := resolveTime(s, d.now)
	if !ok {
		return lwm2m.Record{}, errorf(i, field, "time %s is out of range", s)
	}
	rec.Time = t
	return rec, nil
}

// name resolves an entry name against bn and the base path.
func (d *decoder) name(i int, n string) (lwm2m.Path, error) {
	full := n
	if d.bn != "" {
		if n != "" && n[0] != '/' && !strings.HasSuffix(d.bn, "/") {
			return lwm2m.Path{}, errorf(i, "n", "name %q does not start a path segment after base name %q", n, d.bn)
		}
		full = d.bn + n
	}
	p := d.base
	if full != "" {
		if full[0] != '/' {
			prefix := d.base.String()
			if !d.base.IsRoot() {
				prefix += "/"
			}
			full = prefix + full
		}
		var err error
		if p, err = lwm2m.ParsePath(full); err != nil {
			return lwm2m.Path{}, errorf(i, "n", "%s", pathErr(err))
		}
	}
	if dp := p.Depth(); dp != 3 && dp != 4 {
		return lwm2m.Path{}, errorf(i, "n", "name %s is not a resource or resource instance", p)
	}
	if !p.HasPrefix(d.base) {
		return lwm2m.Path{}, errorf(i, "n", "name %s is outside %s", p, d.base)
	}
	return p, nil
}

func pathErr(err error) string { return strings.TrimPrefix(err.Error(), "lwm2m: ") }

// valueLabels are the value fields of an entry, in the order they are
// checked.
var valueLabels = [...]string{"v", "sv", "bv", "ov"}

// value types the entry's single value field with the resource type at p.
func (d *decoder) value(i int, p lwm2m.Path, e map[string]json.RawMessage) (lwm2m.Value, error) {
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
	typ, known := d.types.Lookup(p)
	if typ == lwm2m.TypeNone {
		known = false
	}
	mismatch := func(what string) (lwm2m.Value, error) {
		return lwm2m.Value{}, errorf(i, label, "resource %s has type %s and cannot hold %s", p, typ, what)
	}
	switch label {
	case "":
		return lwm2m.Value{}, errorf(i, "v", "entry has no value (v, sv, bv or ov)")
	case "v":
		n, why := num(raw)
		if why != "" {
			return lwm2m.Value{}, errorf(i, label, "%s", why)
		}
		if !known {
			return n.natural(), nil
		}
		if v, ok := n.as(typ); ok {
			return v, nil
		}
		if typ == lwm2m.TypeInteger || typ == lwm2m.TypeUnsigned || typ == lwm2m.TypeTime {
			return lwm2m.Value{}, errorf(i, label, "%s is not a valid %s for %s", n, typ, p)
		}
		return mismatch("a number")
	case "sv":
		s, ok := str(raw)
		if !ok {
			return lwm2m.Value{}, errorf(i, label, "must be a string")
		}
		switch {
		case !known || typ == lwm2m.TypeString:
			return lwm2m.String(s), nil
		case typ == lwm2m.TypeCorelnk:
			return lwm2m.Corelnk(s), nil
		case typ == lwm2m.TypeOpaque:
			b, err := decodeBase64(s)
			if err != nil {
				return lwm2m.Value{}, errorf(i, label, "invalid base64 data: %v", err)
			}
			return lwm2m.Opaque(b), nil
		}
		return mismatch("a string")
	case "bv":
		var b bool
		switch string(raw) {
		case "true":
			b = true
		case "false":
		default:
			return lwm2m.Value{}, errorf(i, label, "must be true or false")
		}
		if known && typ != lwm2m.TypeBoolean {
			return mismatch("a boolean")
		}
		return lwm2m.Bool(b), nil
	default: // ov
		s, ok := str(raw)
		if !ok {
			return lwm2m.Value{}, errorf(i, label, "must be a string")
		}
		l, err := lwm2m.ParseObjLink(s)
		if err != nil {
			return lwm2m.Value{}, errorf(i, label, "%s", pathErr(err))
		}
		if known && typ != lwm2m.TypeObjlnk {
			return mismatch("an object link")
		}
		return lwm2m.Objlnk(l), nil
	}
}

// str reads a JSON string already validated by encoding/json.
func str(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// num reads a JSON number; the reason is non-empty for other JSON values
// and numbers outside the float64 range.
func num(v json.RawMessage) (number, string) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return number{}, "must be a number"
	}
	n, ok := parseNumber(string(v))
	if !ok {
		return number{}, "number " + string(v) + " is out of range"
	}
	return n, ""
}

// decodeBase64 accepts the standard and URL alphabets, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Limits of resolved times: absolute times from 2^28 seconds up to the end of
// year 9999, relative times within about 272 years of now.
const (
	relativeLimit = 1 << 28
	maxAbsolute   = 253402300800
	maxRelative   = 1 << 33
)

// resolveTime turns seconds into a time: below 2^28 relative to now,
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
