package senml

import (
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// notification is a composite notification of ten resources: a
// temperature sensor instance and the device's battery, memory and clock.
var notification = []lwm2m.Record{
	recAt("/3303/0/5700", lwm2m.Float(22.4), t0),
	rec("/3303/0/5701", lwm2m.String("Cel")),
	rec("/3303/0/5601", lwm2m.Float(18.2)),
	rec("/3303/0/5602", lwm2m.Float(26.9)),
	rec("/3303/0/5603", lwm2m.Float(-40)),
	rec("/3303/0/5604", lwm2m.Float(125)),
	rec("/3303/0/5750", lwm2m.String("Outdoor")),
	rec("/3/0/9", lwm2m.Int(87)),
	rec("/3/0/10", lwm2m.Int(12345)),
	rec("/3/0/13", lwm2m.TimeUnix(1700000000)),
}

func BenchmarkDecodeJSON(b *testing.B) { benchDecode(b, senmlJSON) }
func BenchmarkDecodeCBOR(b *testing.B) { benchDecode(b, senmlCBOR) }
func BenchmarkEncodeJSON(b *testing.B) { benchEncode(b, senmlJSON) }
func BenchmarkEncodeCBOR(b *testing.B) { benchEncode(b, senmlCBOR) }

func benchDecode(b *testing.B, f format) {
	data := must(f.encode(lwm2m.Root, notification))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.decode(testOpts, data, lwm2m.Root, testTypes); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, f format) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.encode(lwm2m.Root, notification); err != nil {
			b.Fatal(err)
		}
	}
}
