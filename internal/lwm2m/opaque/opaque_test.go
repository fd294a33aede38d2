package opaque

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func seeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, data := range seeds(t) {
		v, err := Decode(data)
		if err != nil || v.Type() != lwm2m.TypeOpaque || !bytes.Equal(v.Opaque(), data) {
			t.Fatalf("Decode(% X) = %#v, %v", data, v, err)
		}
		enc, err := Encode(v)
		if err != nil || !bytes.Equal(enc, data) || enc == nil {
			t.Errorf("Encode = % X, %v; want % X", enc, err, data)
		}
	}
}

func TestDecodeCopies(t *testing.T) {
	data := []byte{1, 2, 3}
	v, _ := Decode(data)
	data[0] = 9
	if v.Opaque()[0] != 1 {
		t.Error("value aliases the input")
	}
}

func TestEncodeOtherTypes(t *testing.T) {
	for _, v := range []lwm2m.Value{
		lwm2m.String("abc"), lwm2m.Int(1), lwm2m.Float(1), lwm2m.Bool(true), lwm2m.None(),
		lwm2m.Objlnk(lwm2m.ObjLink{}), lwm2m.TimeUnix(0), lwm2m.Uint(0), lwm2m.Corelnk("</1>"),
	} {
		if _, err := Encode(v); err == nil {
			t.Errorf("Encode(%#v) succeeded", v)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := Encode(v)
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("round trip of % X gave % X, %v", data, enc, err)
		}
		if len(data) > 0 && &enc[0] == &data[0] {
			t.Fatal("decoded value aliases the input")
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data := bytes.Repeat([]byte{0xA5}, 512) // one CoAP block
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	v := lwm2m.Opaque(bytes.Repeat([]byte{0xA5}, 512))
	b.SetBytes(512)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEncodeEmpty(t *testing.T) {
	enc, err := Encode(lwm2m.Opaque(nil))
	if err != nil || enc == nil || len(enc) != 0 {
		t.Errorf("Encode(empty) = %#v, %v", enc, err)
	}
}
