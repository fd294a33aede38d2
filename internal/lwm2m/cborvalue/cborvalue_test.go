package cborvalue

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

type valueLine struct {
	typ  lwm2m.Type
	data []byte
	want lwm2m.Value
}

func fields(t testing.TB, name string, n int) [][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for l := range strings.SplitSeq(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, strings.SplitN(l, " ", n))
		}
	}
	return out
}

func mustType(t testing.TB, s string) lwm2m.Type {
	t.Helper()
	typ, err := lwm2m.ParseType(s)
	if err != nil {
		t.Fatal(err)
	}
	return typ
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readValues reads canonical.txt or accepted.txt: "<type> <hex> <value
// type> <text>".
func readValues(t testing.TB, name string) []valueLine {
	t.Helper()
	var out []valueLine
	for _, f := range fields(t, name, 4) {
		if len(f) != 4 {
			t.Fatalf("%s: bad line %q", name, f)
		}
		want, err := lwm2m.ParseText(mustType(t, f[2]), f[3])
		if err != nil {
			t.Fatalf("%s: %q: %v", name, f, err)
		}
		out = append(out, valueLine{mustType(t, f[0]), mustHex(t, f[1]), want})
	}
	return out
}

func TestCanonical(t *testing.T) {
	for _, l := range readValues(t, "canonical.txt") {
		got, err := Decode(l.data, l.typ)
		if err != nil || !got.Equal(l.want) {
			t.Errorf("Decode(%x, %s) = %#v, %v; want %#v", l.data, l.typ, got, err, l.want)
		}
		enc, err := Encode(l.want)
		if err != nil || !bytes.Equal(enc, l.data) {
			t.Errorf("Encode(%#v) = %x, %v; want %x", l.want, enc, err, l.data)
		}
	}
}

func TestAccepted(t *testing.T) {
	for _, l := range readValues(t, "accepted.txt") {
		got, err := Decode(l.data, l.typ)
		if err != nil || !got.Equal(l.want) {
			t.Errorf("Decode(%x, %s) = %#v, %v; want %#v", l.data, l.typ, got, err, l.want)
		}
	}
}

func TestInvalid(t *testing.T) {
	for _, f := range fields(t, "invalid.txt", 4) {
		typ, data := mustType(t, f[0]), mustHex(t, f[3])
		off, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		v, err := Decode(data, typ)
		var de *lwm2m.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("Decode(%x, %s) = %#v, %v; want a DecodeError", data, typ, v, err)
			continue
		}
		if de.Offset != off || de.Field != f[2] || de.Format != lwm2m.FormatCBOR || !errors.Is(err, lwm2m.ErrSyntax) {
			t.Errorf("Decode(%x, %s): %v; want offset %d field %s", data, typ, err, off, f[2])
		}
	}
}

// A byte or text string header claiming 4 GiB in a short payload must fail
// without allocating for the claim.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	for _, h := range []string{"5affffffff00", "7affffffff00", "5bffffffffffffffff00", "9affffffff00", "baffffffff00"} {
		data := mustHex(t, h)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := Decode(data, lwm2m.TypeOpaque); err == nil {
				t.Fatalf("%s: no error", h)
			}
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Errorf("%s: %d bytes allocated", h, d)
		}
	}
}

func TestDecodeCopies(t *testing.T) {
	data := mustHex(t, "43010203")
	v, err := Decode(data, lwm2m.TypeOpaque)
	if err != nil {
		t.Fatal(err)
	}
	data[1] = 9
	if v.Opaque()[0] != 1 {
		t.Error("opaque value aliases the input")
	}
}

func TestErrors(t *testing.T) {
	if _, err := Decode([]byte{0}, lwm2m.Type(99)); !errors.Is(err, ErrType) {
		t.Errorf("Decode with type 99: %v", err)
	}
	if _, err := Encode(lwm2m.None()); err == nil {
		t.Error("Encode(None) succeeded")
	}
}

func randValue(r *rand.Rand) lwm2m.Value {
	randBytes := func() []byte {
		b := make([]byte, r.IntN(3)*r.IntN(40))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	randText := func() string {
		var b strings.Builder
		for range r.IntN(30) {
			b.WriteRune(rune(r.IntN(0x2FFF)))
		}
		return strings.ToValidUTF8(b.String(), "?")
	}
	switch lwm2m.Type(1 + r.IntN(int(lwm2m.TypeCorelnk))) {
	case lwm2m.TypeString:
		return lwm2m.String(randText())
	case lwm2m.TypeInteger:
		return lwm2m.Int(r.Int64() >> r.IntN(64) * int64(1-2*r.IntN(2)))
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint(r.Uint64() >> r.IntN(64))
	case lwm2m.TypeFloat:
		switch r.IntN(3) {
		case 0:
			return lwm2m.Float(float64(float32(r.NormFloat64())))
		case 1:
			return lwm2m.Float(r.NormFloat64() * 1e10)
		}
		return lwm2m.Float(math.Float64frombits(r.Uint64()))
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(r.IntN(2) == 0)
	case lwm2m.TypeOpaque:
		return lwm2m.Opaque(randBytes())
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(r.Int64() >> (20 + r.IntN(44)))
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(r.Uint32()), Instance: uint16(r.Uint32())})
	}
	return lwm2m.Corelnk("<" + randText() + ">")
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		v := randValue(r)
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		got, err := Decode(enc, v.Type())
		if err != nil || !got.Equal(v) {
			t.Fatalf("Decode(Encode(%#v)) = %#v, %v (%x)", v, got, err, enc)
		}
	}
}

var fuzzTypes = []lwm2m.Type{
	lwm2m.TypeNone, lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat,
	lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk,
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"canonical.txt", "accepted.txt"} {
		for _, l := range readValues(f, name) {
			f.Add(l.data, uint8(l.typ))
		}
	}
	for _, fl := range fields(f, "invalid.txt", 4) {
		f.Add(mustHex(f, fl[3]), uint8(mustType(f, fl[0])))
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
		if typ != lwm2m.TypeNone && v.Type() != typ {
			t.Fatalf("Decode as %s gave %#v", typ, v)
		}
		if v.Type() == lwm2m.TypeNone {
			return // null and undefined have no encoding
		}
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		again, err := Decode(enc, v.Type())
		if err != nil || !again.Equal(v) {
			t.Fatalf("%x decodes to %#v, its encoding %x to %#v, %v", data, v, enc, again, err)
		}
	})
}

var benchValues = []lwm2m.Value{
	lwm2m.Float(21.37), lwm2m.Int(-1367491215), lwm2m.String("Open Mobile Alliance"),
	lwm2m.Opaque([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}), lwm2m.TimeUnix(1767225600),
}

func BenchmarkDecode(b *testing.B) {
	for _, v := range benchValues {
		data, err := Encode(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(v.Type().String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data, v.Type()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, v := range benchValues {
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
