package omajson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

type wireDoc struct {
	BN string      `json:"bn"`
	E  []wireEntry `json:"e"`
}

// wireEntry fields are interfaces so that an empty string, false or zero is
// still written.
type wireEntry struct {
	N  string `json:"n"`
	V  any    `json:"v,omitempty"`
	SV any    `json:"sv,omitempty"`
	BV any    `json:"bv,omitempty"`
	OV any    `json:"ov,omitempty"`
	T  any    `json:"t,omitempty"`
}

// Encode encodes records at or below base as an OMA-LwM2M-JSON document:
// bn is the longest common path prefix of the records ("/" at least) and
// every entry has a relative name. Numbers go to v, strings and corelnks to
// sv, opaque values to sv as standard base64, booleans to bv and objlnks to
// ov; t is written, as absolute seconds, only for records with a time. It
// fails on records outside base or without a value, NaN or infinite floats
// and times before 1978.
func Encode(base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	prefix, err := senml.CommonPrefix(base, rs)
	if err != nil {
		return nil, fmt.Errorf("omajson: %w", err)
	}
	doc := wireDoc{BN: "/", E: make([]wireEntry, len(rs))}
	if !prefix.IsRoot() {
		doc.BN = prefix.String() + "/"
	}
	for i, r := range rs {
		e := &doc.E[i]
		e.N = senml.RelativeName(r.Path, prefix.Depth())
		if err := e.setValue(r.Value); err != nil {
			return nil, fmt.Errorf("omajson: record %d (%s): %w", i, r.Path, err)
		}
		if !r.Time.IsZero() {
			var ok bool
			if e.T, ok = senml.AbsoluteTime(r.Time); !ok {
				return nil, fmt.Errorf("omajson: record %d (%s): time %s cannot be written as absolute time",
					i, r.Path, r.Time.UTC().Format("2006-01-02T15:04:05Z"))
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and ">" of core links readable for small parsers
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (e *wireEntry) setValue(v lwm2m.Value) error {
	switch v.Type() {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		e.SV = v.StringValue()
	case lwm2m.TypeOpaque:
		e.SV = base64.StdEncoding.EncodeToString(v.Opaque())
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		e.V = v.IntValue()
	case lwm2m.TypeUnsigned:
		e.V = v.UintValue()
	case lwm2m.TypeFloat:
		f := v.FloatValue()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("float %v cannot be written in JSON", f)
		}
		e.V = f
	case lwm2m.TypeBoolean:
		e.BV = v.BoolValue()
	case lwm2m.TypeObjlnk:
		e.OV = v.ObjlnkValue().String()
	default:
		return fmt.Errorf("a %s value cannot be written", v.Type())
	}
	return nil
}
