package senml

import (
	"errors"
	"math/big"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// maxRecords bounds the records of a SenML-CBOR pack.
const maxRecords = 65536

// decMode reads device input: a pack of maps with plain values, so nesting
// deeper than a value inside a record, long maps, tags and repeated keys
// are refused before anything is allocated for them.
var decMode = must(cbor.DecOptions{
	DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	MaxNestedLevels:  4,
	MaxArrayElements: maxRecords,
	MaxMapPairs:      2 * nLabels,
	IndefLength:      cbor.IndefLengthAllowed, // zcbor-based clients write indefinite arrays
	TagsMd:           cbor.TagsForbidden,
	IntDec:           cbor.IntDecConvertNone,
	UTF8:             cbor.UTF8RejectInvalid,
}.DecMode())

// encMode writes definite lengths, floats as float64 (readable by every
// client decoder) and keeps NaN payloads.
var encMode = must(cbor.EncOptions{
	ShortestFloat: cbor.ShortestFloatNone,
	NaNConvert:    cbor.NaNConvertNone,
	InfConvert:    cbor.InfConvertNone,
	IndefLength:   cbor.IndefLengthForbidden,
	NilContainers: cbor.NilContainerAsEmpty,
	TagsMd:        cbor.TagsForbidden,
}.EncMode())

// must returns v, panicking on a non-nil err: for package variables built
// from fixed options (and for test setup).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// DecodeCBOR decodes a SenML-CBOR pack (content format 112) whose names
// resolve at or below base, typing values with types (nil knows no types).
// Records come back in document order. Malformed input gives a
// *lwm2m.DecodeError whose Offset is the record index.
func (o DecodeOptions) DecodeCBOR(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return cborPack.records(data, base, types, o.Now)
}

// DecodePathsCBOR decodes the SenML-CBOR body of a Read-Composite or
// Observe-Composite request: a pack of names without values.
func DecodePathsCBOR(data []byte) ([]lwm2m.Path, error) {
	return cborPack.paths(data)
}

// EncodeCBOR encodes records at or below base as a SenML-CBOR pack, laid
// out as EncodeJSON does, with integer labels and "vlo" as a text key.
func EncodeCBOR(base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	w, err := wire(base, rs, false)
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(w)
}

// EncodePathsCBOR encodes a Read-Composite or Observe-Composite request
// body: one record per path, each with its full name.
func EncodePathsCBOR(paths []lwm2m.Path) ([]byte, error) {
	return encMode.Marshal(wirePaths(paths))
}

var cborPack = pack[any]{lwm2m.FormatSenMLCBOR, parseCBOR, readCBOR}

// parseCBOR splits a SenML-CBOR pack into records, each a map[any]any.
//
// It decodes into an interface, the library's fast path, which builds the
// maps without reflection on every entry. Input that does not come out as
// an array of maps (malformed, over a limit, of the wrong type, with null
// records) goes through parseCBORTyped instead, so that it fails with that
// function's error, naming the first offending item.
func parseCBOR(data []byte) ([]any, error) {
	var v any
	if err := decMode.Unmarshal(data, &v); err == nil {
		if objs, ok := v.([]any); ok && allMaps(objs) {
			return objs, nil
		}
	}
	typed, err := parseCBORTyped(data)
	if err != nil {
		return nil, err
	}
	objs := make([]any, len(typed))
	for i, obj := range typed {
		objs[i] = obj
	}
	return objs, nil
}

// allMaps reports whether every item is a non-nil map[any]any.
func allMaps(items []any) bool {
	for _, it := range items {
		if m, ok := it.(map[any]any); !ok || m == nil {
			return false
		}
	}
	return true
}

// parseCBORTyped splits a SenML-CBOR pack into records by decoding it into
// []map[any]any, and says what is wrong with input that is not a pack.
func parseCBORTyped(data []byte) ([]map[any]any, error) {
	if len(data) == 0 {
		return nil, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, -1, "", "empty input")
	}
	var objs []map[any]any
	if err := decMode.Unmarshal(data, &objs); err != nil {
		var te *cbor.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, -1, "", "a SenML pack must be an array of maps, not %s", te.CBORType)
		}
		return nil, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, -1, "", "%s", strings.TrimPrefix(err.Error(), "cbor: "))
	}
	if objs == nil {
		return nil, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, -1, "", "a SenML pack must be an array of maps, not null")
	}
	for i, obj := range objs {
		if obj == nil {
			return nil, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, i, "", "record is null, not a map")
		}
	}
	return objs, nil
}

// readCBOR reads the fields of record i. Positive integer keys decode as
// uint64, negative ones as int64, text keys as string.
func readCBOR(i int, rec any) (rawRecord, error) {
	obj := rec.(map[any]any) // as parseCBOR returns it
	var fields [nLabels]any
	var present [nLabels]bool
	var unknown string
	for k, v := range obj {
		l := -1
		switch k := k.(type) {
		case uint64:
			if k < 16 {
				if x, ok := cborLabels[int64(k)]; ok {
					l = x
				}
			}
		case int64:
			if x, ok := cborLabels[k]; ok {
				l = x
			}
		case string:
			if k == "vlo" {
				l = lVLO
			} else if mustUnderstand(k) && (unknown == "" || k < unknown) {
				unknown = k
			}
		}
		if l >= 0 {
			fields[l], present[l] = v, true
		}
	}
	if unknown != "" {
		return rawRecord{}, lwm2m.Errorf(lwm2m.FormatSenMLCBOR, i, unknown, "unknown must-understand label")
	}
	var r rawRecord
	err := fill(&r, lwm2m.FormatSenMLCBOR, i, &fields, &present, cborReader{})
	return r, err
}

// cborReader reads field values decoded into Go values by decMode.
type cborReader struct{}

func (cborReader) str(v any) (string, string) {
	if s, ok := v.(string); ok {
		return s, ""
	}
	return "", "must be a text string"
}

func (cborReader) num(v any) (Number, string) {
	switch v := v.(type) {
	case uint64:
		return uintNum(v), ""
	case int64:
		return intNum(v), ""
	case float64:
		return floatNum(v), ""
	case big.Int, *big.Int:
		return Number{}, "integer is out of range"
	}
	return Number{}, "must be a number"
}

func (cborReader) boolean(v any) (bool, string) {
	if b, ok := v.(bool); ok {
		return b, ""
	}
	return false, "must be true or false"
}

func (cborReader) bytes(v any) ([]byte, string) {
	if b, ok := v.([]byte); ok {
		return b, ""
	}
	return nil, "must be a byte string"
}
