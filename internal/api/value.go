package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// jsonValue renders an LwM2M value as JSON: numbers for integer, unsigned
// and float (NaN and infinities as strings, which JSON lacks), booleans,
// strings for string and corelnk, base64 for opaque, "obj:inst" for objlnk
// and RFC 3339 for time. A value of type none is null.
func jsonValue(v lwm2m.Value) any {
	switch v.Type() {
	case lwm2m.TypeInteger:
		return v.IntValue()
	case lwm2m.TypeUnsigned:
		return v.UintValue()
	case lwm2m.TypeFloat:
		f := v.FloatValue()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case lwm2m.TypeBoolean:
		return v.BoolValue()
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return v.StringValue()
	case lwm2m.TypeOpaque:
		return base64.StdEncoding.EncodeToString(v.Opaque())
	case lwm2m.TypeObjlnk:
		return v.ObjlnkValue().String()
	case lwm2m.TypeTime:
		return v.TimeValue().Format(time.RFC3339)
	}
	return nil
}

// parseJSONValue converts a JSON value from a request body to an LwM2M
// value of type t: numbers for the numeric types and time (unix seconds),
// true/false or 0/1 for boolean, strings parsed as text/plain for every
// type (so "3:0" is an objlnk and base64 an opaque), RFC 3339 strings for
// time.
func parseJSONValue(raw json.RawMessage, t lwm2m.Type) (lwm2m.Value, error) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return lwm2m.Value{}, fmt.Errorf("value is not JSON: %w", err)
	}
	switch v := x.(type) {
	case string:
		if t == lwm2m.TypeTime {
			if ts, err := time.Parse(time.RFC3339, v); err == nil {
				return lwm2m.Time(ts), nil
			}
		}
		return lwm2m.ParseText(t, v)
	case bool:
		return lwm2m.Bool(v).Convert(t)
	case float64:
		// Re-read integers from the raw text so 64-bit values keep every digit.
		switch t {
		case lwm2m.TypeInteger, lwm2m.TypeTime, lwm2m.TypeUnsigned, lwm2m.TypeBoolean:
			return lwm2m.ParseText(t, string(raw))
		case lwm2m.TypeFloat:
			return lwm2m.Float(v), nil
		case lwm2m.TypeString:
			return lwm2m.String(string(raw)), nil
		}
		return lwm2m.Value{}, fmt.Errorf("a number cannot be a %s value", t)
	case nil:
		if t == lwm2m.TypeNone {
			return lwm2m.None(), nil
		}
		return lwm2m.Value{}, fmt.Errorf("null is not a %s value", t)
	}
	return lwm2m.Value{}, fmt.Errorf("a %s value must be a JSON string, number or boolean", t)
}
