package senml

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// DecodeJSON decodes a SenML-JSON pack (content format 110) whose names
// resolve at or below base, typing values with types (nil knows no types).
// Records come back in document order. Malformed input gives a
// *lwm2m.DecodeError whose Offset is the record index.
func (o DecodeOptions) DecodeJSON(data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return jsonPack.records(data, base, types, o.Now)
}

// DecodePathsJSON decodes the SenML-JSON body of a Read-Composite or
// Observe-Composite request: a pack of names without values. Names are
// full paths of any depth ("/3", "/3/0/1"); base names apply as in any pack.
func DecodePathsJSON(data []byte) ([]lwm2m.Path, error) {
	return jsonPack.paths(data)
}

// EncodeJSON encodes records at or below base as a SenML-JSON pack: the
// common path prefix as bn on the first record, relative names, t only for
// records with a time, and the value field chosen by the value's type. It
// fails on records outside base, records without a value, NaN or infinite
// floats and times before 1978.
func EncodeJSON(base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	w, err := wire(base, rs, true)
	if err != nil {
		return nil, err
	}
	return marshalJSON(w)
}

// EncodePathsJSON encodes a Read-Composite or Observe-Composite request
// body: one record per path, each with its full name.
func EncodePathsJSON(paths []lwm2m.Path) ([]byte, error) {
	return marshalJSON(wirePaths(paths))
}

func marshalJSON(w []wireRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and ">" of core links readable for small parsers
	if err := enc.Encode(w); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

var jsonPack = pack[map[string]json.RawMessage]{lwm2m.FormatSenMLJSON, parseJSON, readJSON}

// parseJSON splits a SenML-JSON pack into records.
func parseJSON(data []byte) ([]map[string]json.RawMessage, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, lwm2m.Errorf(lwm2m.FormatSenMLJSON, -1, "", "a SenML pack must be a JSON array")
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(data, &objs); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, lwm2m.Errorf(lwm2m.FormatSenMLJSON, -1, "", "invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return nil, lwm2m.Errorf(lwm2m.FormatSenMLJSON, -1, "", "record at byte %d is a JSON %s, not an object", te.Offset, te.Value)
		}
		return nil, lwm2m.Errorf(lwm2m.FormatSenMLJSON, -1, "", "%v", err)
	}
	for i, obj := range objs {
		if obj == nil {
			return nil, lwm2m.Errorf(lwm2m.FormatSenMLJSON, i, "", "record is null, not an object")
		}
	}
	return objs, nil
}

// readJSON reads the fields of record i.
func readJSON(i int, obj map[string]json.RawMessage) (rawRecord, error) {
	var fields [nLabels]json.RawMessage
	var present [nLabels]bool
	var unknown string
	for k, v := range obj {
		if l := jsonLabel(k); l >= 0 {
			fields[l], present[l] = v, true
		} else if mustUnderstand(k) && (unknown == "" || k < unknown) {
			unknown = k
		}
	}
	if unknown != "" {
		return rawRecord{}, lwm2m.Errorf(lwm2m.FormatSenMLJSON, i, unknown, "unknown must-understand label")
	}
	var r rawRecord
	err := fill(&r, lwm2m.FormatSenMLJSON, i, &fields, &present, jsonReader{})
	return r, err
}

// The JSON field readers read one field value of a record already checked
// by encoding/json: JSON in SenML-JSON and in OMA-LwM2M-JSON alike. Each
// returns a reason, naming what the field must be, when the value has the
// wrong type; the caller wraps it in an error for its label.

// JSONString reads a JSON string.
func JSONString(v json.RawMessage) (s string, why string) {
	if len(v) < 2 || v[0] != '"' {
		return "", "must be a string"
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), ""
	}
	var u string // not s: its address escapes, the fast path's must not
	if err := json.Unmarshal(v, &u); err != nil {
		return "", "must be a string"
	}
	return u, ""
}

// JSONNumber reads a JSON number: integers stay exact up to 64 bits, larger
// ones and numbers with a fraction or exponent become floats, and a number
// outside the float64 range is refused.
func JSONNumber(v json.RawMessage) (n Number, why string) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return Number{}, "must be a number"
	}
	n, ok := parseJSONNumber(string(v))
	if !ok {
		return Number{}, "number " + string(v) + " is out of range"
	}
	return n, ""
}

// JSONBool reads true or false.
func JSONBool(v json.RawMessage) (b bool, why string) {
	switch string(v) {
	case "true":
		return true, ""
	case "false":
		return false, ""
	}
	return false, "must be true or false"
}

// jsonReader reads field values from raw JSON for fill.
type jsonReader struct{}

func (jsonReader) str(v json.RawMessage) (string, string)   { return JSONString(v) }
func (jsonReader) num(v json.RawMessage) (Number, string)   { return JSONNumber(v) }
func (jsonReader) boolean(v json.RawMessage) (bool, string) { return JSONBool(v) }

func (jsonReader) bytes(v json.RawMessage) ([]byte, string) {
	s, why := JSONString(v)
	if why != "" {
		return nil, why
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, "invalid base64url data: " + err.Error()
	}
	return b, ""
}
