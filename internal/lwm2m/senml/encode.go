package senml

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// wireRecord is one SenML record as written by the encoders; the struct
// order is the order of the labels in the output. Value fields are interfaces
// so that an empty string, false or zero is still written.
type wireRecord struct {
	BN  string `json:"bn,omitempty" cbor:"-2,keyasint,omitempty"`
	N   string `json:"n,omitempty" cbor:"0,keyasint,omitempty"`
	T   any    `json:"t,omitempty" cbor:"6,keyasint,omitempty"`
	V   any    `json:"v,omitempty" cbor:"2,keyasint,omitempty"`
	VS  any    `json:"vs,omitempty" cbor:"3,keyasint,omitempty"`
	VB  any    `json:"vb,omitempty" cbor:"4,keyasint,omitempty"`
	VD  any    `json:"vd,omitempty" cbor:"8,keyasint,omitempty"`
	VLO any    `json:"vlo,omitempty" cbor:"vlo,omitempty"`
}

// wire lays out records for encoding: the base name on the first record is
// the CommonPrefix of the records, omitted when it is the root. json
// selects base64url text for opaque values instead of byte strings.
func wire(base lwm2m.Path, rs []lwm2m.Record, json bool) ([]wireRecord, error) {
	if len(rs) == 0 {
		return []wireRecord{}, nil
	}
	prefix, err := CommonPrefix(base, rs)
	if err != nil {
		return nil, fmt.Errorf("senml: %w", err)
	}
	out := make([]wireRecord, len(rs))
	for i, r := range rs {
		w := &out[i]
		if prefix.IsRoot() {
			w.N = r.Path.String()
		} else {
			w.N = RelativeName(r.Path, prefix.Depth())
		}
		if err := w.setValue(r.Value, json); err != nil {
			return nil, fmt.Errorf("senml: record %d (%s): %w", i, r.Path, err)
		}
		if !r.Time.IsZero() {
			t, ok := AbsoluteTime(r.Time)
			if !ok {
				return nil, fmt.Errorf("senml: record %d (%s): time %s cannot be written as absolute SenML time",
					i, r.Path, r.Time.UTC().Format("2006-01-02T15:04:05Z"))
			}
			w.T = t
		}
	}
	if !prefix.IsRoot() {
		out[0].BN = prefix.String() + "/"
	}
	return out, nil
}

// CommonPrefix is the base name an encoder writes for rs: the longest path
// prefix common to all records, one level shorter when a record's path is
// that prefix itself, so that every record keeps a non-empty relative name;
// the root for no records. It fails when a record is not a resource or
// resource instance at or below base.
func CommonPrefix(base lwm2m.Path, rs []lwm2m.Record) (lwm2m.Path, error) {
	if len(rs) == 0 {
		return lwm2m.Root, nil
	}
	prefix := rs[0].Path
	for i, r := range rs {
		if d := r.Path.Depth(); d != 3 && d != 4 {
			return lwm2m.Path{}, fmt.Errorf("record %d: %s is not a resource or resource instance", i, r.Path)
		}
		if !r.Path.HasPrefix(base) {
			return lwm2m.Path{}, fmt.Errorf("record %d: %s is outside %s", i, r.Path, base)
		}
		for !r.Path.HasPrefix(prefix) {
			prefix = prefix.Parent()
		}
	}
	for _, r := range rs {
		if r.Path == prefix {
			return prefix.Parent(), nil
		}
	}
	return prefix, nil
}

// RelativeName formats the IDs of p below depth d, as in "7/0".
func RelativeName(p lwm2m.Path, d int) string {
	b := make([]byte, 0, 12)
	for j := d; j < p.Depth(); j++ {
		if j > d {
			b = append(b, '/')
		}
		b = strconv.AppendUint(b, uint64(p.ID(j)), 10)
	}
	return string(b)
}

// setValue picks the value field for v's type.
func (w *wireRecord) setValue(v lwm2m.Value, json bool) error {
	switch v.Type() {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		w.VS = v.StringValue()
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		w.V = v.IntValue()
	case lwm2m.TypeUnsigned:
		w.V = v.UintValue()
	case lwm2m.TypeFloat:
		f := v.FloatValue()
		if json && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return fmt.Errorf("float %v cannot be written in JSON", f)
		}
		w.V = f
	case lwm2m.TypeBoolean:
		w.VB = v.BoolValue()
	case lwm2m.TypeOpaque:
		if json {
			w.VD = base64.RawURLEncoding.EncodeToString(v.Opaque())
		} else {
			b := v.Opaque()
			if b == nil {
				b = []byte{}
			}
			w.VD = b
		}
	case lwm2m.TypeObjlnk:
		w.VLO = v.ObjlnkValue().String()
	default:
		return fmt.Errorf("a %s value cannot be written", v.Type())
	}
	return nil
}

// AbsoluteTime is t as the value of a time field: seconds since the Unix
// epoch, an int64 for whole seconds and a float64 otherwise. ok is false for
// times before 2^28 seconds (1978), which a reader would take as relative to
// now, and after year 9999.
func AbsoluteTime(t time.Time) (v any, ok bool) {
	sec, ns := t.Unix(), t.Nanosecond()
	if sec < relativeLimit || sec >= maxAbsolute {
		return nil, false
	}
	if ns == 0 {
		return sec, true
	}
	return float64(sec) + float64(ns)/1e9, true
}

// wirePaths lays out a path list, one full name per record.
func wirePaths(paths []lwm2m.Path) []wireRecord {
	out := make([]wireRecord, len(paths))
	for i, p := range paths {
		out[i].N = p.String()
	}
	return out
}
