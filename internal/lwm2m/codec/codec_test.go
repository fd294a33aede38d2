package codec_test

import (
	"errors"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

var formats = []lwm2m.MediaType{
	lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatTLV, lwm2m.FormatSenMLJSON,
	lwm2m.FormatSenMLCBOR, lwm2m.FormatJSON, lwm2m.FormatLwM2MCBOR,
}

// TestCodecRoundTrip encodes and decodes the same records in every
// format that can carry them.
func TestCodecRoundTrip(t *testing.T) {
	types := objects.Default().TypeOf
	inst := lwm2m.NewPath(3, 0)
	rs := []lwm2m.Record{
		{Path: lwm2m.NewPath(3, 0, 0), Value: lwm2m.String("flownexus")},
		{Path: lwm2m.NewPath(3, 0, 7, 0), Value: lwm2m.Int(3800)},
		{Path: lwm2m.NewPath(3, 0, 7, 1), Value: lwm2m.Int(5000)},
		{Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(88)},
	}
	for _, f := range []lwm2m.MediaType{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR,
		lwm2m.FormatJSON, lwm2m.FormatLwM2MCBOR} {
		b, err := codec.Encode(f, inst, rs)
		if err != nil {
			t.Fatalf("%s: encode: %v", f, err)
		}
		got, err := codec.Decode(f, b, inst, types)
		if err != nil {
			t.Fatalf("%s: decode: %v", f, err)
		}
		lwm2m.SortRecords(got)
		if len(got) != len(rs) {
			t.Fatalf("%s: %d records", f, len(got))
		}
		for i := range rs {
			if got[i].Path != rs[i].Path || !got[i].Value.Equal(rs[i].Value) {
				t.Errorf("%s: record %d = %v %#v, want %v %#v", f, i, got[i].Path, got[i].Value, rs[i].Path, rs[i].Value)
			}
		}
	}
	one := lwm2m.NewPath(3303, 0, 5700)
	for _, f := range []lwm2m.MediaType{lwm2m.FormatText, lwm2m.FormatCBOR} {
		b, err := codec.Encode(f, one, []lwm2m.Record{{Path: one, Value: lwm2m.Float(21.5)}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := codec.Decode(f, b, one, types)
		if err != nil || len(got) != 1 || got[0].Value.FloatValue() != 21.5 {
			t.Fatalf("%s: %v %v", f, got, err)
		}
	}
	if _, err := codec.Decode(lwm2m.MediaType(50), []byte("{}"), one, types); !errors.Is(err, codec.ErrUnsupportedFormat) {
		t.Fatalf("JSON (50): %v", err)
	}
	if _, err := codec.Decode(lwm2m.FormatText, []byte("1"), lwm2m.NewPath(3, 0), types); !errors.Is(err, lwm2m.ErrSyntax) {
		t.Fatalf("text for an instance: %v", err)
	}
}

// FuzzDecode feeds random payloads in every format to Decode: it must not
// panic, and every failure is a syntax error or an unsupported format.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(3), []byte{0x08, 0x00, 0x0b, 0xc1, 0x00, 0x01, 0xc8, 0x09, 0x05, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a}, uint16(3), uint16(0))
	f.Add(uint8(4), []byte(`[{"bn":"/3/0/","n":"0","vs":"x"},{"n":"9","v":88}]`), uint16(3), uint16(0))
	f.Add(uint8(0), []byte("21.5"), uint16(3303), uint16(0))
	f.Add(uint8(5), []byte{0x81, 0xa2, 0x00, 0x6b, 0x2f, 0x33, 0x2f, 0x30, 0x2f, 0x39, 0x02, 0x18, 0x58}, uint16(3), uint16(0))
	types := objects.Default().TypeOf
	f.Fuzz(func(t *testing.T, fi uint8, data []byte, obj, inst uint16) {
		fm := formats[int(fi)%len(formats)]
		base := lwm2m.Root
		if obj <= lwm2m.MaxID && inst <= lwm2m.MaxID {
			base = lwm2m.NewPath(obj, inst)
			if fm == lwm2m.FormatText || fm == lwm2m.FormatOpaque || fm == lwm2m.FormatCBOR {
				base = base.Child(5700)
			}
		}
		rs, err := codec.Decode(fm, data, base, types)
		if err != nil {
			if !errors.Is(err, lwm2m.ErrSyntax) && !errors.Is(err, codec.ErrUnsupportedFormat) {
				t.Fatalf("%s: error not a syntax error: %v", fm, err)
			}
			return
		}
		for _, r := range rs {
			if !r.Path.HasPrefix(base) {
				t.Fatalf("%s: record %s outside %s", fm, r.Path, base)
			}
		}
	})
}
