package api

import (
	"encoding/base64"
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
