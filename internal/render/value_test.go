package render

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

func TestJSONOfEveryType(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		v    lwm2m.Value
		want string
	}{
		{lwm2m.Int(-7), `-7`},
		{lwm2m.Uint(math.MaxUint64), `18446744073709551615`},
		{lwm2m.Float(21.5), `21.5`},
		{lwm2m.Float(math.NaN()), `"NaN"`},
		{lwm2m.Float(math.Inf(-1)), `"-Inf"`},
		{lwm2m.Bool(true), `true`},
		{lwm2m.String("on\"e"), `"on\"e"`},
		{lwm2m.Corelnk("</3/0>"), `"\u003c/3/0\u003e"`},
		{lwm2m.Opaque([]byte{0, 1, 0xff}), `"AAH/"`},
		{lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 1}), `"3:1"`},
		{lwm2m.Time(at), `"2026-12-01T10:30:00Z"`},
		{lwm2m.Value{}, `null`},
	} {
		b, err := json.Marshal(JSON(c.v))
		if err != nil {
			t.Fatalf("%s: %v", c.v.Type(), err)
		}
		if string(b) != c.want {
			t.Errorf("%s: got %s, want %s", c.v.Type(), b, c.want)
		}
	}
}

func TestValueOfAndRecords(t *testing.T) {
	objs := objects.Default()
	temp := lwm2m.NewPath(3303, 0, 5700)
	dev := time.Date(2026, 12, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	v := ValueOf(objs, temp, lwm2m.Float(21.5), dev, time.Time{})
	b, _ := json.Marshal(v)
	if want := `{"path":"/3303/0/5700","name":"Sensor Value","type":"float","value":21.5,"device_time":"2026-12-01T09:00:00Z"}`; string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	if v := ValueOf(nil, temp, lwm2m.Float(1), time.Time{}, dev); v.Name != "" || v.ReceivedAt == nil || v.ReceivedAt.Location() != time.UTC {
		t.Fatalf("without definitions: %+v", v)
	}
	rs := Records(objs, []lwm2m.Record{
		{Path: lwm2m.NewPath(3303, 0), Value: lwm2m.Int(1)},    // not a resource: no name
		{Path: lwm2m.NewPath(9999, 0, 1), Value: lwm2m.Int(2)}, // unknown object
		{Path: temp, Value: lwm2m.Float(3), Time: dev},
	})
	if len(rs) != 3 || rs[0].Name != "" || rs[1].Name != "" || rs[2].Name != "Sensor Value" ||
		rs[2].DeviceTime == nil || rs[2].ReceivedAt != nil || rs[1].Value != int64(2) {
		t.Fatalf("records: %+v", rs)
	}
}
