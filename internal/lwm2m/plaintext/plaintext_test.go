package plaintext

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

type line struct {
	typ  lwm2m.Type
	off  int // invalid.txt only
	text string
}

// readLines reads a testdata file of "<type> [<offset>] <text>" lines.
func readLines(t testing.TB, name string, withOffset bool) []line {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []line
	for l := range strings.SplitSeq(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, rest, _ := strings.Cut(l, " ")
		typ, err := lwm2m.ParseType(name)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, l, err)
		}
		ln := line{typ: typ, text: rest}
		if withOffset {
			off, text, _ := strings.Cut(rest, " ")
			if ln.off, err = strconv.Atoi(off); err != nil {
				t.Fatalf("%s: %q: %v", name, l, err)
			}
			ln.text = text
		}
		out = append(out, ln)
	}
	return out
}

func TestCanonical(t *testing.T) {
	for _, l := range readLines(t, "canonical.txt", false) {
		v, err := Decode([]byte(l.text), l.typ)
		if err != nil {
			t.Errorf("%s %q: %v", l.typ, l.text, err)
			continue
		}
		if v.Type() != l.typ {
			t.Errorf("%s %q: decoded as %s", l.typ, l.text, v.Type())
		}
		enc, err := Encode(v)
		if err != nil || string(enc) != l.text {
			t.Errorf("%s %q: Encode = %q, %v", l.typ, l.text, enc, err)
		}
	}
}

func TestInvalid(t *testing.T) {
	for _, l := range readLines(t, "invalid.txt", true) {
		v, err := Decode([]byte(l.text), l.typ)
		var de *lwm2m.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s %q: Decode = %#v, %v; want a DecodeError", l.typ, l.text, v, err)
			continue
		}
		if de.Offset != l.off || de.Field != "value" || de.Format != lwm2m.FormatText || !errors.Is(err, lwm2m.ErrSyntax) {
			t.Errorf("%s %q: %v; want offset %d field value", l.typ, l.text, err, l.off)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		typ  lwm2m.Type
		text string
		want lwm2m.Value
	}{
		{lwm2m.TypeInteger, "-42", lwm2m.Int(-42)},
		{lwm2m.TypeInteger, "+42", lwm2m.Int(42)},
		{lwm2m.TypeInteger, "007", lwm2m.Int(7)},
		{lwm2m.TypeInteger, "-9223372036854775808", lwm2m.Int(math.MinInt64)},
		{lwm2m.TypeUnsigned, "18446744073709551615", lwm2m.Uint(math.MaxUint64)},
		{lwm2m.TypeUnsigned, "+5", lwm2m.Uint(5)},
		{lwm2m.TypeFloat, "1.5e3", lwm2m.Float(1500)},
		{lwm2m.TypeFloat, "2E-2", lwm2m.Float(0.02)},
		{lwm2m.TypeFloat, ".5", lwm2m.Float(0.5)},
		{lwm2m.TypeFloat, "5.", lwm2m.Float(5)},
		{lwm2m.TypeFloat, "-0", lwm2m.Float(math.Copysign(0, -1))},
		{lwm2m.TypeFloat, "1e-400", lwm2m.Float(0)},
		{lwm2m.TypeTime, "1367491215", lwm2m.TimeUnix(1367491215)},
		{lwm2m.TypeBoolean, "true", lwm2m.Bool(true)},
		{lwm2m.TypeBoolean, "false", lwm2m.Bool(false)},
		{lwm2m.TypeObjlnk, "66:1", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 1})},
		{lwm2m.TypeOpaque, "AQIDBAU=", lwm2m.Opaque([]byte{1, 2, 3, 4, 5})},
		{lwm2m.TypeOpaque, "AQIDBAU", lwm2m.Opaque([]byte{1, 2, 3, 4, 5})},
		{lwm2m.TypeOpaque, "AQID\r\nBAU=", lwm2m.Opaque([]byte{1, 2, 3, 4, 5})},
		{lwm2m.TypeString, "\xff", lwm2m.String("\xff")},
		{lwm2m.TypeString, "", lwm2m.String("")},
		{lwm2m.TypeNone, "", lwm2m.None()},
		{lwm2m.TypeNone, "abc", lwm2m.String("abc")},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.text), tt.typ)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("Decode(%q, %s) = %#v, %v; want %#v", tt.text, tt.typ, got, err, tt.want)
		}
	}
}

func TestEncodeValues(t *testing.T) {
	tests := []struct {
		v    lwm2m.Value
		want string
	}{
		{lwm2m.Float(1e21), "1000000000000000000000"},
		{lwm2m.Float(5e-324), "0." + strings.Repeat("0", 323) + "5"},
		{lwm2m.Float(25), "25"},
		{lwm2m.Uint(1 << 63), "9223372036854775808"},
		{lwm2m.TimeUnix(-86400), "-86400"},
		{lwm2m.Opaque(nil), ""},
		{lwm2m.Opaque([]byte{0xFB, 0xFF}), "+/8="},
		{lwm2m.None(), ""},
	}
	for _, tt := range tests {
		got, err := Encode(tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("Encode(%#v) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := Encode(lwm2m.Float(f)); err == nil {
			t.Errorf("Encode(%v) succeeded", f)
		}
	}
}

func TestUnknownType(t *testing.T) {
	if _, err := Decode([]byte("1"), lwm2m.Type(200)); !errors.Is(err, ErrType) {
		t.Errorf("Decode: %v", err)
	}
	if _, err := Encode(lwm2m.Value{}); err != nil {
		t.Errorf("Encode(None): %v", err)
	}
}

func randValue(r *rand.Rand) lwm2m.Value {
	randBytes := func() []byte {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	switch lwm2m.Type(1 + r.IntN(int(lwm2m.TypeCorelnk))) {
	case lwm2m.TypeString:
		return lwm2m.String(string(randBytes()))
	case lwm2m.TypeInteger:
		return lwm2m.Int(r.Int64() >> r.IntN(64) * int64(1-2*r.IntN(2)))
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint(r.Uint64() >> r.IntN(64))
	case lwm2m.TypeFloat:
		for {
			f := math.Float64frombits(r.Uint64())
			if r.IntN(2) == 0 {
				f = r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10))
			}
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return lwm2m.Float(f)
			}
		}
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(r.IntN(2) == 0)
	case lwm2m.TypeOpaque:
		return lwm2m.Opaque(randBytes())
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(r.Int64() >> r.IntN(64))
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(r.Uint32()), Instance: uint16(r.Uint32())})
	}
	return lwm2m.Corelnk(string(randBytes()))
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		v := randValue(r)
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		got, err := Decode(enc, v.Type())
		if err != nil || !got.Equal(v) {
			t.Fatalf("Decode(Encode(%#v)) = %#v, %v (text %q)", v, got, err, enc)
		}
	}
}

var fuzzTypes = []lwm2m.Type{
	lwm2m.TypeNone, lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat,
	lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk,
}

func FuzzDecode(f *testing.F) {
	for _, l := range readLines(f, "canonical.txt", false) {
		f.Add([]byte(l.text), uint8(l.typ))
	}
	for _, l := range readLines(f, "invalid.txt", true) {
		f.Add([]byte(l.text), uint8(l.typ))
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		typ := fuzzTypes[int(sel)%len(fuzzTypes)]
		v, err := Decode(data, typ)
		if err != nil {
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("error %v is not a DecodeError with an offset in the input", err)
			}
			return
		}
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		again, err := Decode(enc, typ)
		if err != nil || !again.Equal(v) {
			t.Fatalf("%q decodes to %#v, its encoding %q to %#v, %v", data, v, enc, again, err)
		}
		if typ == lwm2m.TypeString && !bytes.Equal(enc, data) {
			t.Fatalf("string %q re-encoded as %q", data, enc)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, bm := range []struct {
		typ  lwm2m.Type
		text string
	}{
		{lwm2m.TypeFloat, "21.37"},
		{lwm2m.TypeInteger, "-1367491215"},
		{lwm2m.TypeString, "Open Mobile Alliance"},
		{lwm2m.TypeOpaque, "AQIDBAUGBwgJCgsMDQ4PEA=="},
	} {
		data := []byte(bm.text)
		b.Run(bm.typ.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data, bm.typ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, v := range []lwm2m.Value{
		lwm2m.Float(21.37), lwm2m.Int(-1367491215), lwm2m.String("Open Mobile Alliance"),
		lwm2m.Opaque([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}),
	} {
		b.Run(v.Type().String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
