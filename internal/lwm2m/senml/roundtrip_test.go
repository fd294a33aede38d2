package senml

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// genTypes assigns every (object, resource) of the generated records a
// type, the same for all instances, so that the generated records and the
// TypeFunc agree.
var genTypes = [...]lwm2m.Type{
	lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat,
	lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk,
}

func genTypeOf(p lwm2m.Path) (lwm2m.Type, bool) {
	if p.Depth() < 3 {
		return lwm2m.TypeNone, false
	}
	return genTypes[(uint(p.Object())*7+uint(p.Resource()))%uint(len(genTypes))], true
}

// genPack returns a base path and records at or below it: a few objects,
// instances and resources (so that paths repeat, as in time series), all
// value types with their edge cases, and times with microsecond precision.
func genPack(rng *rand.Rand, json bool) (lwm2m.Path, []lwm2m.Record) {
	ids := []uint16{0, 1, 2, 3, 65534}
	pick := func() uint16 { return ids[rng.IntN(len(ids))] }
	var base lwm2m.Path
	for d := rng.IntN(4); base.Depth() < d; {
		base = base.Child(pick())
	}
	n := rng.IntN(12)
	rs := make([]lwm2m.Record, n)
	for i := range rs {
		p := base
		depth := 3 + rng.IntN(2)
		if depth < p.Depth() {
			depth = p.Depth()
		}
		for p.Depth() < depth {
			p = p.Child(pick())
		}
		t, _ := genTypeOf(p)
		rs[i] = lwm2m.Record{Path: p, Value: genValue(rng, t, json)}
		if rng.IntN(3) == 0 {
			sec := int64(1<<28) + rng.Int64N(1<<32-1<<28)
			var us int64
			if rng.IntN(2) == 0 {
				us = rng.Int64N(1e6)
			}
			rs[i].Time = time.Unix(sec, us*1000).UTC()
		}
	}
	return base, rs
}

func genValue(rng *rand.Rand, t lwm2m.Type, json bool) lwm2m.Value {
	switch t {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		s := []string{"", "a", "Zürich", `"quoted" \ </3/0>;ct=110`, "\x00\x1f\u2028", "日本語"}[rng.IntN(6)]
		if t == lwm2m.TypeCorelnk {
			return lwm2m.Corelnk(s)
		}
		return lwm2m.String(s)
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		n := []int64{0, -1, 1, math.MinInt64, math.MaxInt64, rng.Int64(), -rng.Int64N(1 << 40)}[rng.IntN(7)]
		if t == lwm2m.TypeTime {
			return lwm2m.TimeUnix(n)
		}
		return lwm2m.Int(n)
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint([]uint64{0, 1, math.MaxUint64, 1 << 63, rng.Uint64()}[rng.IntN(5)])
	case lwm2m.TypeFloat:
		fs := []float64{0, math.Copysign(0, -1), 1, -1.5, 22.4, 1e21, 1e-300, math.MaxFloat64,
			math.SmallestNonzeroFloat64, rng.NormFloat64() * 1e6, math.Float64frombits(rng.Uint64())}
		f := fs[rng.IntN(len(fs))]
		if !json && rng.IntN(8) == 0 {
			f = []float64{math.NaN(), math.Inf(1), math.Inf(-1)}[rng.IntN(3)]
		}
		if json && (math.IsNaN(f) || math.IsInf(f, 0)) {
			f = 0.5
		}
		return lwm2m.Float(f)
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(rng.IntN(2) == 1)
	case lwm2m.TypeOpaque:
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return lwm2m.Opaque(b)
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(rng.UintN(65536)), Instance: uint16(rng.UintN(65536))})
	}
	panic("unexpected type " + t.String())
}

func TestRoundTripJSON(t *testing.T) { testRoundTrip(t, senmlJSON, rand.NewPCG(1, 2)) }
func TestRoundTripCBOR(t *testing.T) { testRoundTrip(t, senmlCBOR, rand.NewPCG(3, 4)) }

func testRoundTrip(t *testing.T, f format, src rand.Source) {
	rng := rand.New(src)
	for range 3000 {
		base, rs := genPack(rng, f.json)
		b, err := f.encode(base, rs)
		if err != nil {
			t.Fatalf("encoding under %s %v: %v", base, rs, err)
		}
		got, err := f.decode(DecodeOptions{}, b, base, genTypeOf)
		if err != nil {
			t.Fatalf("decoding %s under %s: %v", f.show(b), base, err)
		}
		sameRecords(t, got, rs)
		if t.Failed() {
			t.Fatalf("pack %s under %s", f.show(b), base)
		}
	}
}

func TestRoundTripPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		paths := make([]lwm2m.Path, rng.IntN(6))
		for i := range paths {
			for d := 1 + rng.IntN(4); paths[i].Depth() < d; {
				paths[i] = paths[i].Child(uint16(rng.UintN(lwm2m.MaxID + 1)))
			}
		}
		bj, err := EncodePathsJSON(paths)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := EncodePathsCBOR(paths)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range [][]lwm2m.Path{must(DecodePathsJSON(bj)), must(DecodePathsCBOR(bc))} {
			if len(got) != len(paths) {
				t.Fatalf("got %v, want %v", got, paths)
			}
			for i := range got {
				if got[i] != paths[i] {
					t.Fatalf("got %v, want %v", got, paths)
				}
			}
		}
	}
}
