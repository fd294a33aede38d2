package omajson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/flownexus/flownexus/internal/lwm2m"
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
	doc := wireDoc{BN: "/", E: make([]wireEntry, len(rs))}
	var prefix lwm2m.Path
	if len(rs) > 0 {
		prefix = rs[0].Path
	}
	for i, r := range rs {
		if d := r.Path.Depth(); d != 3 && d != 4 {
			return nil, fmt.Errorf("omajson: record %d: %s is not a resource or resource instance", i, r.Path)
		}
		if !r.Path.HasPrefix(base) {
			return nil, fmt.Errorf("omajson: record %d: %s is outside %s", i, r.Path, base)
		}
		for !r.Path.HasPrefix(prefix) {
			prefix = prefix.Parent()
		}
	}
	for _, r := range rs {
		if r.Path == prefix {
			prefix = prefix.Parent()
			break
		}
	}
	if !prefix.IsRoot() {
		doc.BN = prefix.String() + "/"
	}
	for i, r := range rs {
		e := &doc.E[i]
		e.N = relName(r.Path, prefix.Depth())
		if err := e.setValue(r.Value); err != nil {
			return nil, fmt.Errorf("omajson: record %d (%s): %w", i, r.Path, err)
		}
		if !r.Time.IsZero() {
			sec, ns := r.Time.Unix(), r.Time.Nanosecond()
			if sec < relativeLimit || sec >= maxAbsolute {
				return nil, fmt.Errorf("omajson: record %d (%s): time %s cannot be written as absolute time",
					i, r.Path, r.Time.UTC().Format("2006-01-02T15:04:05Z"))
			}
			if ns == 0 {
				e.T = sec
			} else {
				e.T = float64(sec) + float64(ns)/1e9
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

// relName formats the IDs of p below depth d as "7/0".
func relName(p lwm2m.Path, d int) string {
	b := make([]byte, 0, 12)
	for j := d; j < p.Depth(); j++ {
		if j > d {
			b = append(b, '/')
		}
		b = strconv.AppendUint(b, uint64(p.ID(j)), 10)
	}
	return string(b)
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
