package omajson

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var genTypes = [...]lwm2m.Type{
	lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat,
	lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk,
}

// genTypeOf gives every (object, resource) one type for all its instances.
func genTypeOf(p lwm2m.Path) (lwm2m.Type, bool) {
	if p.Depth() < 3 {
		return lwm2m.TypeNone, false
	}
	return genTypes[(uint(p.Object())*7+uint(p.Resource()))%uint(len(genTypes))], true
}

func genValue(rng *rand.Rand, t lwm2m.Type) lwm2m.Value {
	switch t {
	case lwm2m.TypeString:
		return lwm2m.String([]string{"", "a", "Zürich", `"q" \ <b>`, "\x00\u2028"}[rng.IntN(5)])
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk([]string{"", "</3/0>;ct=110", "</1/0>,</3/0>"}[rng.IntN(3)])
	case lwm2m.TypeInteger:
		return lwm2m.Int([]int64{0, -1, math.MinInt64, math.MaxInt64, rng.Int64()}[rng.IntN(5)])
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(rng.Int64() - math.MaxInt64/2)
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint([]uint64{0, math.MaxUint64, 1 << 63, rng.Uint64()}[rng.IntN(4)])
	case lwm2m.TypeFloat:
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = []float64{0, math.Copysign(0, -1), 22.4, 1e21}[rng.IntN(4)]
		}
		return lwm2m.Float(f)
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(rng.IntN(2) == 0)
	case lwm2m.TypeOpaque:
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return lwm2m.Opaque(b)
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(rng.UintN(65536)), Instance: uint16(rng.UintN(65536))})
	}
	panic("unexpected type")
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ids := []uint16{0, 1, 2, 65534}
	for range 3000 {
		var base lwm2m.Path
		for d := rng.IntN(4); base.Depth() < d; {
			base = base.Child(ids[rng.IntN(len(ids))])
		}
		rs := make([]lwm2m.Record, rng.IntN(10))
		for i := range rs {
			p := base
			for d := max(3+rng.IntN(2), base.Depth()); p.Depth() < d; {
				p = p.Child(ids[rng.IntN(len(ids))])
			}
			typ, _ := genTypeOf(p)
			rs[i] = lwm2m.Record{Path: p, Value: genValue(rng, typ)}
			if rng.IntN(3) == 0 {
				rs[i].Time = time.Unix(1<<28+rng.Int64N(1<<32-1<<28), rng.Int64N(1e6)*1000).UTC()
			}
		}
		b, err := Encode(base, rs)
		if err != nil {
			t.Fatalf("Encode(%s, %v): %v", base, rs, err)
		}
		got, err := Decode(b, base, genTypeOf)
		if err != nil {
			t.Fatalf("Decode(%s) under %s: %v", b, base, err)
		}
		sameRecords(t, got, rs)
		if t.Failed() {
			t.Fatalf("document %s under %s", b, base)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range testdataFiles(f) {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, types := range []lwm2m.TypeFunc{nil, testTypes} {
			rs, err := testOpts.Decode(data, lwm2m.Root, types)
			if err != nil {
				var de *lwm2m.DecodeError
				if !errors.As(err, &de) || !errors.Is(err, lwm2m.ErrSyntax) {
					t.Fatalf("error %v is %T, not *lwm2m.DecodeError", err, err)
				}
				continue
			}
			typeOf := map[lwm2m.Path]lwm2m.Type{}
			consistent := true
			for _, r := range rs {
				if d := r.Path.Depth(); d != 3 && d != 4 {
					t.Fatalf("record path %s is not a resource", r.Path)
				}
				if old, ok := typeOf[r.Path]; ok && old != r.Value.Type() {
					consistent = false
				}
				typeOf[r.Path] = r.Value.Type()
			}
			b, err := Encode(lwm2m.Root, rs)
			if err != nil || !consistent {
				continue // times before 1978 cannot be written; mixed types cannot be retyped
			}
			got, err := testOpts.Decode(b, lwm2m.Root, func(p lwm2m.Path) (lwm2m.Type, bool) {
				typ, ok := typeOf[p]
				return typ, ok
			})
			if err != nil {
				t.Fatalf("re-decoding %s: %v", b, err)
			}
			for i := range got {
				g, w := got[i], rs[i]
				d := g.Time.Sub(w.Time).Abs()
				if g.Path != w.Path || !g.Value.Equal(w.Value) || (w.Time.Unix() < 1<<32 && d != 0) || d > time.Millisecond {
					t.Fatalf("record %d: re-decoded %s %#v %v, want %s %#v %v", i, g.Path, g.Value, g.Time, w.Path, w.Value, w.Time)
				}
			}
		}
	})
}

// notification is a notification of ten resources (a temperature sensor
// instance and the device's battery, memory and clock) below the root.
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

func BenchmarkDecode(b *testing.B) {
	data, err := Encode(lwm2m.Root, notification)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := testOpts.Decode(data, lwm2m.Root, testTypes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(lwm2m.Root, notification); err != nil {
			b.Fatal(err)
		}
	}
}
