package render

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// Value is one resource value as it is shown. Its JSON is part of the
// public API (the OpenAPI document names it Value).
type Value struct {
	Path       string     `json:"path" example:"/3303/0/5700"`
	Name       string     `json:"name,omitempty" doc:"Resource name from the object definitions"`
	Type       string     `json:"type" example:"float"`
	Value      any        `json:"value" doc:"number, string, boolean; opaque as base64, objlnk as obj:inst, time as RFC 3339"`
	DeviceTime *time.Time `json:"device_time,omitempty" doc:"Timestamp the device gave the value"`
	ReceivedAt *time.Time `json:"received_at,omitempty"`
}

// ValueOf renders the value v of path p, with the device's timestamp and
// the time the server received it (either zero when unknown). The name
// comes from objs; a nil objs names nothing.
func ValueOf(objs *objects.Catalog, p lwm2m.Path, v lwm2m.Value, deviceTime, receivedAt time.Time) Value {
	return Value{Path: p.String(), Name: ResourceName(objs, p), Type: v.Type().String(), Value: JSON(v),
		DeviceTime: OptionalTime(deviceTime), ReceivedAt: OptionalTime(receivedAt)}
}

// Records renders the records a device reported or answered, in their
// order, with the device's timestamps and no received time.
func Records(objs *objects.Catalog, rs []lwm2m.Record) []Value {
	out := make([]Value, 0, len(rs))
	for _, r := range rs {
		out = append(out, ValueOf(objs, r.Path, r.Value, r.Time, time.Time{}))
	}
	return out
}

// ResourceName is the name objs defines for the resource of p, or "" when
// p is shorter than a resource path, objs is nil or does not know it.
func ResourceName(objs *objects.Catalog, p lwm2m.Path) string {
	if objs == nil || p.Depth() < 3 {
		return ""
	}
	if r, ok := objs.Resource(p.Object(), p.Resource()); ok {
		return r.Name
	}
	return ""
}

// OptionalTime is t in UTC, or nil for the zero time, for a timestamp
// that is left out of JSON when unknown.
func OptionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// JSON renders an LwM2M value as JSON: numbers for integer, unsigned and
// float (NaN and infinities as strings, which JSON lacks), booleans,
// strings for string and corelnk, base64 for opaque, "obj:inst" for objlnk
// and RFC 3339 for time. A value of type none is null.
func JSON(v lwm2m.Value) any {
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
