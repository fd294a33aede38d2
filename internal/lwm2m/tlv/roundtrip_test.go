package tlv

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var notification = []lwm2m.Record{
	rec("/3303/0/5518", lwm2m.TimeUnix(1767225600)),
	rec("/3303/0/5601", lwm2m.Float(18.5)),
	rec("/3303/0/5602", lwm2m.Float(24.25)),
	rec("/3303/0/5700", lwm2m.Float(21.37)),
	rec("/3303/0/5701", lwm2m.String("Cel")),
	rec("/3303/1/5518", lwm2m.TimeUnix(1767225605)),
	rec("/3303/1/5601", lwm2m.Float(-7.125)),
	rec("/3303/1/5602", lwm2m.Float(2)),
	rec("/3303/1/5700", lwm2m.Float(-3.8)),
	rec("/3303/1/5701", lwm2m.String("Cel")),
}

// randValue returns a random value of a random type, favouring the edges
// of each type's range.
func randValue(r *rand.Rand) lwm2m.Value {
	ints := []int64{0, 1, -1, 127, 128, -128, -129, math.MaxInt16, math.MinInt16, math.MaxInt32,
		math.MinInt32, math.MaxInt32 + 1, math.MaxInt64, math.MinInt64}
	pick := func() int64 {
		if r.IntN(2) == 0 {
			return ints[r.IntN(len(ints))]
		}
		return r.Int64() >> r.IntN(64)
	}
	randBytes := func() []byte {
		b := make([]byte, r.IntN(4)*r.IntN(80))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	switch lwm2m.Type(r.IntN(int(lwm2m.TypeCorelnk) + 1)) {
	case lwm2m.TypeString:
		return lwm2m.String(string(randBytes()))
	case lwm2m.TypeInteger:
		return lwm2m.Int(pick())
	case lwm2m.TypeUnsigned:
		if r.IntN(3) == 0 {
			return lwm2m.Uint(math.MaxUint64 - r.Uint64N(1<<20))
		}
		return lwm2m.Uint(r.Uint64() >> r.IntN(64))
	case lwm2m.TypeFloat:
		switch r.IntN(4) {
		case 0:
			return lwm2m.Float(float64(float32(r.NormFloat64() * 100)))
		case 1:
			return lwm2m.Float(math.Float64frombits(r.Uint64()))
		case 2:
			return lwm2m.Float([]float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1),
				math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32}[r.IntN(7)])
		}
		return lwm2m.Float(r.NormFloat64() * 1e6)
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(r.IntN(2) == 1)
	case lwm2m.TypeOpaque:
		return lwm2m.Opaque(randBytes())
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(pick())
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(r.Uint32()), Instance: uint16(r.Uint32())})
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk("</" + string(randBytes()) + ">")
	}
	return lwm2m.None()
}

func randID(r *rand.Rand) uint16 {
	if r.IntN(4) == 0 {
		return uint16(r.IntN(lwm2m.MaxID + 1))
	}
	return uint16(r.IntN(20))
}

// randRecords returns a random base path and a valid, sorted, duplicate-free
// set of records under it.
func randRecords(r *rand.Rand) (lwm2m.Path, []lwm2m.Record) {
	base := lwm2m.NewPath(randID(r))
	for range r.IntN(4) {
		base = base.Child(randID(r))
	}
	set := map[lwm2m.Path]lwm2m.Value{}
	multi := map[lwm2m.Path]bool{} // resource paths chosen to have instances
	for range 1 + r.IntN(12) {
		p := base
		for p.Depth() < 3 {
			p = p.Child(randID(r))
		}
		if base.Depth() == 4 {
			p = base
		} else {
			m, ok := multi[p]
			if !ok {
				m = r.IntN(3) == 0
				multi[p] = m
			}
			if m {
				p = p.Child(randID(r))
			}
		}
		set[p] = randValue(r)
	}
	rs := make([]lwm2m.Record, 0, len(set))
	for p, v := range set {
		rs = append(rs, lwm2m.Record{Path: p, Value: v})
	}
	lwm2m.SortRecords(rs)
	return base, rs
}

func typesOf(rs []lwm2m.Record) lwm2m.TypeFunc {
	m := make(map[lwm2m.Path]lwm2m.Type, len(rs))
	for _, r := range rs {
		m[r.Path] = r.Value.Type()
	}
	return func(p lwm2m.Path) (lwm2m.Type, bool) {
		t, ok := m[p]
		return t, ok
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		base, rs := randRecords(r)
		enc, err := Encode(base, rs)
		if err != nil {
			t.Fatalf("case %d: Encode(%s): %v%s", i, base, err, dump(rs))
		}
		got, err := Decode(enc, base, typesOf(rs))
		if err != nil {
			t.Fatalf("case %d: Decode(%s): %v\n% X", i, base, err, enc)
		}
		if !equalRecords(got, rs) {
			t.Fatalf("case %d: base %s\n got%s\nwant%s", i, base, dump(got), dump(rs))
		}
	}
}

// fuzzBases are the bases FuzzDecode tries, chosen by the fuzzer's selector.
var fuzzBases = []lwm2m.Path{
	lwm2m.MustParsePath("/3"), lwm2m.MustParsePath("/3/0"), lwm2m.MustParsePath("/3/0/7"),
	lwm2m.MustParsePath("/3/0/7/1"), lwm2m.MustParsePath("/2"), lwm2m.MustParsePath("/1"),
	lwm2m.MustParsePath("/65/0"), lwm2m.MustParsePath("/66"), lwm2m.MustParsePath("/3/0/0"),
	lwm2m.MustParsePath("/3303"),
}

func FuzzDecode(f *testing.F) {
	for _, g := range goldens {
		base := lwm2m.MustParsePath(g.base)
		for i, b := range fuzzBases {
			if b == base {
				f.Add(readHex(f, g.file), uint8(i))
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.hex"))
	for _, name := range files {
		f.Add(readHex(f, strings.TrimPrefix(name, "testdata"+string(filepath.Separator))), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		base := fuzzBases[int(sel)%len(fuzzBases)]
		rs, err := Decode(data, base, specTypeOf)
		if err != nil {
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("error %v is not a DecodeError with an offset in the input", err)
			}
			return
		}
		// Whatever decodes re-encodes, and decodes to the same records.
		enc, err := Encode(base, rs)
		if err != nil {
			t.Fatalf("Encode of decoded records: %v%s", err, dump(rs))
		}
		again, err := Decode(enc, base, specTypeOf)
		if err != nil {
			t.Fatalf("Decode of re-encoded records: %v", err)
		}
		lwm2m.SortRecords(rs)
		if !equalRecords(again, rs) {
			t.Fatalf("round trip changed the records:%s\nto%s", dump(rs), dump(again))
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "notification.hex"))
	if err != nil {
		b.Fatal(err)
	}
	payload := parseHex(b, string(data))
	base := lwm2m.MustParsePath("/3303")
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(payload, base, specTypeOf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	base := lwm2m.MustParsePath("/3303")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(base, notification); err != nil {
			b.Fatal(err)
		}
	}
}
