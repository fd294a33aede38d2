package tlv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// readHex reads a testdata file of hex bytes; whitespace is ignored and '#'
// starts a comment that runs to the end of the line.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return parseHex(t, string(raw))
}

func parseHex(t testing.TB, s string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

// specTypes knows the resources used by the LwM2M specification's TLV
// examples and by the benchmarks.
var specTypes = map[[2]uint16]lwm2m.Type{
	{1, 0}: lwm2m.TypeUnsigned, {1, 1}: lwm2m.TypeUnsigned, {1, 6}: lwm2m.TypeBoolean, {1, 7}: lwm2m.TypeString,
	{2, 0}: lwm2m.TypeUnsigned, {2, 1}: lwm2m.TypeUnsigned, {2, 2}: lwm2m.TypeUnsigned, {2, 3}: lwm2m.TypeUnsigned,
	{3, 0}: lwm2m.TypeString, {3, 1}: lwm2m.TypeString, {3, 2}: lwm2m.TypeString, {3, 3}: lwm2m.TypeString,
	{3, 4}: lwm2m.TypeNone, {3, 6}: lwm2m.TypeInteger, {3, 7}: lwm2m.TypeInteger, {3, 8}: lwm2m.TypeInteger,
	{3, 9}: lwm2m.TypeInteger, {3, 10}: lwm2m.TypeInteger, {3, 11}: lwm2m.TypeInteger, {3, 13}: lwm2m.TypeTime,
	{3, 14}: lwm2m.TypeString, {3, 15}: lwm2m.TypeString, {3, 16}: lwm2m.TypeString,
	{65, 0}: lwm2m.TypeObjlnk, {65, 1}: lwm2m.TypeString, {65, 2}: lwm2m.TypeInteger,
	{66, 0}: lwm2m.TypeString, {66, 1}: lwm2m.TypeString, {66, 2}: lwm2m.TypeObjlnk,
	{3303, 5518}: lwm2m.TypeTime, {3303, 5601}: lwm2m.TypeFloat, {3303, 5602}: lwm2m.TypeFloat,
	{3303, 5700}: lwm2m.TypeFloat, {3303, 5701}: lwm2m.TypeString, {3303, 5750}: lwm2m.TypeString,
}

func specTypeOf(p lwm2m.Path) (lwm2m.Type, bool) {
	t, ok := specTypes[[2]uint16{p.Object(), p.Resource()}]
	return t, ok
}

func rec(path string, v lwm2m.Value) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v}
}

// deviceRecords is the content of the Device object example (/3/0).
var deviceRecords = []lwm2m.Record{
	rec("/3/0/0", lwm2m.String("Open Mobile Alliance")),
	rec("/3/0/1", lwm2m.String("Lightweight M2M Client")),
	rec("/3/0/2", lwm2m.String("345000123")),
	rec("/3/0/3", lwm2m.String("1.0")),
	rec("/3/0/6/0", lwm2m.Int(1)),
	rec("/3/0/6/1", lwm2m.Int(5)),
	rec("/3/0/7/0", lwm2m.Int(3800)),
	rec("/3/0/7/1", lwm2m.Int(5000)),
	rec("/3/0/8/0", lwm2m.Int(125)),
	rec("/3/0/8/1", lwm2m.Int(900)),
	rec("/3/0/9", lwm2m.Int(100)),
	rec("/3/0/10", lwm2m.Int(15)),
	rec("/3/0/11/0", lwm2m.Int(0)),
	rec("/3/0/13", lwm2m.TimeUnix(1367491215)),
	rec("/3/0/14", lwm2m.String("+02:00")),
	rec("/3/0/16", lwm2m.String("U")),
}

var goldens = []struct {
	file   string
	base   string
	want   []lwm2m.Record
	encode bool // Encode(base, want) reproduces the file byte for byte
}{
	{"device_instance.hex", "/3/0", deviceRecords, true},
	{"device_wrapped.hex", "/3/0", deviceRecords, false},
	{"device_wrapped.hex", "/3", deviceRecords, true},
	{"acl_object.hex", "/2", []lwm2m.Record{
		rec("/2/0/0", lwm2m.Uint(1)),
		rec("/2/0/1", lwm2m.Uint(0)),
		rec("/2/0/2/127", lwm2m.Uint(7)),
		rec("/2/0/3", lwm2m.Uint(127)),
		rec("/2/2/0", lwm2m.Uint(3)),
		rec("/2/2/1", lwm2m.Uint(0)),
		rec("/2/2/2/127", lwm2m.Uint(7)),
		rec("/2/2/2/310", lwm2m.Uint(1)),
		rec("/2/2/3", lwm2m.Uint(127)),
	}, true},
	{"server_object.hex", "/1", []lwm2m.Record{
		rec("/1/0/0", lwm2m.Uint(1)),
		rec("/1/0/1", lwm2m.Uint(86400)),
		rec("/1/0/6", lwm2m.Bool(true)),
		rec("/1/0/7", lwm2m.String("U")),
	}, true},
	{"objlnk_instance.hex", "/65/0", []lwm2m.Record{
		rec("/65/0/0/0", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 0})),
		rec("/65/0/0/1", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 1})),
		rec("/65/0/1", lwm2m.String("8613800755500")),
		rec("/65/0/2", lwm2m.Int(0x12345678)),
	}, true},
	{"objlnk_object.hex", "/66", []lwm2m.Record{
		rec("/66/0/0", lwm2m.String("myService 1")),
		rec("/66/0/1", lwm2m.String("Internet.15.234")),
		rec("/66/0/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 67, Instance: 0})),
		rec("/66/1/0", lwm2m.String("myService 2")),
		rec("/66/1/1", lwm2m.String("Internet.15.235")),
		rec("/66/1/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})),
	}, true},
	{"manufacturer.hex", "/3/0/0", deviceRecords[:1], true},
	{"voltage_multi.hex", "/3/0/7", deviceRecords[6:8], true},
	{"voltage_instance.hex", "/3/0/7/1", deviceRecords[7:8], true},
	{"notification.hex", "/3303", notification, true},
}

func equalRecords(a, b []lwm2m.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !a[i].Value.Equal(b[i].Value) || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

func dump(rs []lwm2m.Record) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("\n\t" + r.Path.String() + " = " + r.Value.GoString())
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.file+" "+g.base, func(t *testing.T) {
			data := readHex(t, g.file)
			base := lwm2m.MustParsePath(g.base)
			got, err := Decode(data, base, specTypeOf)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalRecords(got, g.want) {
				t.Errorf("Decode:%s\nwant:%s", dump(got), dump(g.want))
			}
			if !g.encode {
				return
			}
			enc, err := Encode(base, g.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(enc, data) {
				t.Errorf("Encode:\n got % X\nwant % X", enc, data)
			}
		})
	}
}

// The multi-instance Device resources of the specification example, one by
// one, as they appear when /3/0 is read.
func TestDeviceMultiInstanceResources(t *testing.T) {
	got, err := Decode(readHex(t, "device_instance.hex"), lwm2m.MustParsePath("/3/0"), specTypeOf)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := lwm2m.Tree(lwm2m.MustParsePath("/3/0"), got)
	if err != nil {
		t.Fatal(err)
	}
	multi := map[uint16]int{}
	for _, n := range nodes {
		if n.Kind == lwm2m.KindMultiResource {
			multi[n.Path.Resource()] = len(n.Children)
		}
	}
	want := map[uint16]int{6: 2, 7: 2, 8: 2, 11: 1}
	if len(multi) != len(want) {
		t.Fatalf("multiple resources %v, want %v", multi, want)
	}
	for id, n := range want {
		if multi[id] != n {
			t.Errorf("resource %d has %d instances, want %d", id, multi[id], n)
		}
	}
}

// A resource instance read may be answered inside its Multiple Resource TLV.
func TestWrappedResourceInstance(t *testing.T) {
	got, err := Decode(parseHex(t, "84 07 42 01 13 88"), lwm2m.MustParsePath("/3/0/7/1"), specTypeOf)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, deviceRecords[7:8]) {
		t.Errorf("got%s", dump(got))
	}
}

func TestUnknownResourcesStayOpaque(t *testing.T) {
	got, err := Decode(readHex(t, "voltage_multi.hex"), lwm2m.MustParsePath("/3/0/7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{
		rec("/3/0/7/0", lwm2m.Opaque([]byte{0x0E, 0xD8})),
		rec("/3/0/7/1", lwm2m.Opaque([]byte{0x13, 0x88})),
	}
	if !equalRecords(got, want) {
		t.Errorf("got%s\nwant%s", dump(got), dump(want))
	}
}

func TestDecodeCopiesInput(t *testing.T) {
	data := []byte{0xC3, 0x01, 'a', 'b', 'c'}
	got, err := Decode(data, lwm2m.MustParsePath("/9/0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	data[2] = 'X'
	if string(got[0].Value.Opaque()) != "abc" {
		t.Errorf("opaque value aliases the input: %q", got[0].Value.Opaque())
	}
}

// Each value is written as resource /9/0/1 and read back with its type.
func TestValues(t *testing.T) {
	tests := []struct {
		name string
		v    lwm2m.Value
		hex  string // the whole Resource TLV
	}{
		{"int 0", lwm2m.Int(0), "C1 01 00"},
		{"int -1", lwm2m.Int(-1), "C1 01 FF"},
		{"int 127", lwm2m.Int(127), "C1 01 7F"},
		{"int 128", lwm2m.Int(128), "C2 01 0080"},
		{"int -128", lwm2m.Int(-128), "C1 01 80"},
		{"int -129", lwm2m.Int(-129), "C2 01 FF7F"},
		{"int max32", lwm2m.Int(math.MaxInt32), "C4 01 7FFFFFFF"},
		{"int max32+1", lwm2m.Int(math.MaxInt32 + 1), "C8 01 08 0000000080000000"},
		{"int min64", lwm2m.Int(math.MinInt64), "C8 01 08 8000000000000000"},
		{"int max64", lwm2m.Int(math.MaxInt64), "C8 01 08 7FFFFFFFFFFFFFFF"},
		{"uint 127", lwm2m.Uint(127), "C1 01 7F"},
		{"uint 200", lwm2m.Uint(200), "C2 01 00C8"},
		{"uint 40000", lwm2m.Uint(40000), "C4 01 00009C40"},
		{"uint max64", lwm2m.Uint(math.MaxUint64), "C8 01 08 FFFFFFFFFFFFFFFF"},
		{"uint 2^63", lwm2m.Uint(1 << 63), "C8 01 08 8000000000000000"},
		{"float 1.5", lwm2m.Float(1.5), "C4 01 3FC00000"},
		{"float -0", lwm2m.Float(math.Copysign(0, -1)), "C4 01 80000000"},
		{"float inf", lwm2m.Float(math.Inf(1)), "C4 01 7F800000"},
		{"float 0.1", lwm2m.Float(0.1), "C8 01 08 3FB999999999999A"},
		{"float 1e300", lwm2m.Float(1e300), "C8 01 08 7E37E43C8800759C"},
		{"bool true", lwm2m.Bool(true), "C1 01 01"},
		{"bool false", lwm2m.Bool(false), "C1 01 00"},
		{"string empty", lwm2m.String(""), "C0 01"},
		{"string", lwm2m.String("héllo"), "C6 01 68C3A96C6C6F"},
		{"corelnk", lwm2m.Corelnk("</3/0>"), "C6 01 3C2F332F303E"},
		{"opaque", lwm2m.Opaque([]byte{0, 1, 0xFF}), "C3 01 0001FF"},
		{"opaque empty", lwm2m.Opaque(nil), "C0 01"},
		{"objlnk", lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 0}), "C4 01 00030000"},
		{"objlnk null", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535}), "C4 01 FFFFFFFF"},
		{"time", lwm2m.TimeUnix(1367491215), "C4 01 5182428F"},
		{"time before 1970", lwm2m.TimeUnix(-1), "C1 01 FF"},
		{"time 2106", lwm2m.TimeUnix(1 << 32), "C8 01 08 0000000100000000"},
	}
	p := lwm2m.MustParsePath("/9/0/1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := parseHex(t, tt.hex)
			enc, err := Encode(p, []lwm2m.Record{{Path: p, Value: tt.v}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, want) {
				t.Errorf("Encode = % X, want % X", enc, want)
			}
			typ := tt.v.Type()
			got, err := Decode(want, p, func(lwm2m.Path) (lwm2m.Type, bool) { return typ, true })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Path != p || !got[0].Value.Equal(tt.v) {
				t.Errorf("Decode = %s, want %#v", dump(got), tt.v)
			}
		})
	}
}

// Devices may send any of the allowed widths; the decoder takes them all.
func TestDecodeWidths(t *testing.T) {
	tests := []struct {
		typ  lwm2m.Type
		hex  string
		want lwm2m.Value
	}{
		{lwm2m.TypeInteger, "C8 01 08 FFFFFFFFFFFFFFFE", lwm2m.Int(-2)},
		{lwm2m.TypeInteger, "C4 01 FFFFFF85", lwm2m.Int(-123)},
		{lwm2m.TypeInteger, "C2 01 8000", lwm2m.Int(math.MinInt16)},
		{lwm2m.TypeUnsigned, "C1 01 C8", lwm2m.Uint(200)},
		{lwm2m.TypeUnsigned, "C2 01 FFFF", lwm2m.Uint(65535)},
		{lwm2m.TypeUnsigned, "C4 01 FFFFFFFF", lwm2m.Uint(math.MaxUint32)},
		{lwm2m.TypeFloat, "C8 01 08 3FF8000000000000", lwm2m.Float(1.5)},
		{lwm2m.TypeFloat, "C4 01 3DCCCCCD", lwm2m.Float(float64(float32(0.1)))},
		{lwm2m.TypeTime, "C8 01 08 000000005182428F", lwm2m.TimeUnix(1367491215)},
		{lwm2m.TypeNone, "C0 01", lwm2m.None()},
		// Bits 2-0 are ignored when the length has its own field.
		{lwm2m.TypeString, "CF 01 01 41", lwm2m.String("A")},
		// A 16-bit identifier and a 24-bit length where 8 bits would do.
		{lwm2m.TypeString, "F8 00 01 00 00 01 41", lwm2m.String("A")},
		// Invalid UTF-8 is kept as it is.
		{lwm2m.TypeString, "C2 01 FFFE", lwm2m.String("\xff\xfe")},
	}
	p := lwm2m.MustParsePath("/9/0/1")
	for _, tt := range tests {
		got, err := Decode(parseHex(t, tt.hex), p, func(lwm2m.Path) (lwm2m.Type, bool) { return tt.typ, true })
		if err != nil {
			t.Errorf("%s %s: %v", tt.typ, tt.hex, err)
			continue
		}
		if len(got) != 1 || !got[0].Value.Equal(tt.want) {
			t.Errorf("%s %s = %s, want %#v", tt.typ, tt.hex, dump(got), tt.want)
		}
	}
}

func TestLengthAndIdentifierWidths(t *testing.T) {
	p := lwm2m.MustParsePath("/9/0")
	for _, tt := range []struct {
		id     uint16
		n      int
		header string
	}{
		{1, 0, "C0 01"},
		{1, 7, "C7 01"},
		{1, 8, "C8 01 08"},
		{1, 255, "C8 01 FF"},
		{1, 256, "D0 01 0100"},
		{1, 65535, "D0 01 FFFF"},
		{1, 65536, "D8 01 010000"},
		{255, 1, "C1 FF"},
		{256, 1, "E1 0100"},
		{lwm2m.MaxID, 300, "F0 FFFE 012C"},
	} {
		val := bytes.Repeat([]byte{'x'}, tt.n)
		rp := p.Child(tt.id)
		enc, err := Encode(p, []lwm2m.Record{{Path: rp, Value: lwm2m.Opaque(val)}})
		if err != nil {
			t.Fatal(err)
		}
		want := append(parseHex(t, tt.header), val...)
		if !bytes.Equal(enc, want) {
			t.Errorf("id %d len %d: header % X, want % X", tt.id, tt.n, enc[:min(len(enc), 6)], want[:min(len(want), 6)])
		}
		got, err := Decode(enc, p, nil)
		if err != nil || len(got) != 1 || got[0].Path != rp || !bytes.Equal(got[0].Value.Opaque(), val) {
			t.Errorf("id %d len %d: Decode = %d records, %v", tt.id, tt.n, len(got), err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	p := lwm2m.MustParsePath
	tests := []struct {
		name string
		base string
		rs   []lwm2m.Record
	}{
		{"outside base", "/3/0", []lwm2m.Record{rec("/3/1/0", lwm2m.Int(1))}},
		{"not a resource", "/3", []lwm2m.Record{{Path: p("/3/0"), Value: lwm2m.Int(1)}}},
		{"duplicate", "/3/0", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1)), rec("/3/0/9", lwm2m.Int(2))}},
		{"resource and instances", "/3/0", []lwm2m.Record{rec("/3/0/6/0", lwm2m.Int(1)), rec("/3/0/6", lwm2m.Int(2))}},
		{"too long", "/5/0/0", []lwm2m.Record{rec("/5/0/0", lwm2m.Opaque(make([]byte, maxValueLen+1)))}},
		{"too long inside", "/5", []lwm2m.Record{
			rec("/5/0/0", lwm2m.Opaque(make([]byte, maxValueLen-4))),
			rec("/5/0/1", lwm2m.Opaque(make([]byte, 10))),
		}},
	}
	for _, tt := range tests {
		if _, err := Encode(p(tt.base), tt.rs); err == nil {
			t.Errorf("%s: Encode succeeded", tt.name)
		}
	}
	if _, err := Encode(lwm2m.Root, nil); !errors.Is(err, ErrRootBase) {
		t.Errorf("root base: %v", err)
	}
	if _, err := Decode(nil, lwm2m.Root, nil); !errors.Is(err, ErrRootBase) {
		t.Errorf("root base: %v", err)
	}
}

func TestEncodeSortsAndKeepsInput(t *testing.T) {
	rs := []lwm2m.Record{deviceRecords[3], deviceRecords[0], deviceRecords[7], deviceRecords[6]}
	orig := append([]lwm2m.Record(nil), rs...)
	enc, err := Encode(lwm2m.MustParsePath("/3/0"), rs)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(rs, orig) {
		t.Error("Encode reordered its argument")
	}
	got, err := Decode(enc, lwm2m.MustParsePath("/3/0"), specTypeOf)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{deviceRecords[0], deviceRecords[3], deviceRecords[6], deviceRecords[7]}
	if !equalRecords(got, want) {
		t.Errorf("got%s\nwant%s", dump(got), dump(want))
	}
}

func TestEmptyPayload(t *testing.T) {
	for _, base := range []string{"/3", "/3/0", "/3/0/7", "/3/0/7/1"} {
		got, err := Decode(nil, lwm2m.MustParsePath(base), specTypeOf)
		if err != nil || len(got) != 0 {
			t.Errorf("%s: %v, %v", base, got, err)
		}
	}
	// Empty containers carry no records.
	got, err := Decode(parseHex(t, "08 00 02 80 06"), lwm2m.MustParsePath("/3"), specTypeOf)
	if err != nil || len(got) != 0 {
		t.Errorf("empty containers: %v, %v", got, err)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name  string
		base  string
		hex   string
		off   int
		field string
	}{
		{"truncated identifier", "/3/0", "C8", 1, "identifier"},
		{"truncated 16-bit identifier", "/3/0", "E8 01", 1, "identifier"},
		{"truncated length", "/3/0", "C8 00", 2, "length"},
		{"truncated 16-bit length", "/3/0", "D0 00 01", 2, "length"},
		{"truncated 24-bit length", "/3/0", "C1 09 64 D8 00 01 00", 5, "length"},
		{"length past end", "/3/0", "C8 00 05 41 42", 2, "length"},
		{"length in type byte past end", "/3/0", "C3 00 41", 0, "length"},
		{"16 MiB length", "/3/0", "D8 00 FF FF FF 00", 2, "length"},
		{"container past end", "/3/0", "88 07 08 42 00 0E D8 42 01 13", 2, "length"},
		{"element past its container", "/3/0", "82 07 41 00 01", 2, "length"},
		{"identifier overflow", "/3/0", "E1 FF FF 00", 1, "identifier"},
		{"identifier overflow inside", "/3", "08 00 04 E1 FF FF 00", 4, "identifier"},
		{"multiple resource in multiple resource", "/3/0", "85 06 83 00 41 00 01", 2, "type"},
		{"resource instance in object instance", "/3", "08 00 03 41 00 01", 3, "type"},
		{"object instance in object instance", "/3", "08 00 03 08 01 00", 3, "type"},
		{"resource in multiple resource", "/3/0", "83 06 C1 00 01", 2, "type"},
		{"object instance in multiple resource", "/3/0", "82 06 00 01", 2, "type"},
		{"resource under an object", "/3", "C1 09 64", 0, "type"},
		{"resource instance under an instance", "/3/0", "41 00 01", 0, "type"},
		{"wrong instance", "/3/0", "08 01 03 C1 09 64", 1, "identifier"},
		{"wrong resource", "/3/0/7", "C1 08 01", 1, "identifier"},
		{"wrong multiple resource", "/3/0/7/1", "84 08 42 01 13 88", 1, "identifier"},
		{"wrong resource instance", "/3/0/7/1", "42 00 13 88", 1, "identifier"},
		{"wrong resource inside instance", "/3/0/7", "08 00 03 C1 08 01", 4, "identifier"},
		{"resource above resource instance", "/3/0/7/1", "C1 07 01", 0, "type"},
		{"bad boolean", "/1/0", "C1 06 02", 2, "value"},
		{"3-byte integer", "/3/0", "C3 09 00 00 01", 2, "value"},
		{"empty integer", "/3/0", "C1 0A 0F C0 09", 5, "value"},
		{"5-byte unsigned", "/1/0", "C5 01 00 00 00 00 01", 2, "value"},
		{"2-byte float", "/3303/0", "E2 16 44 3F 80", 3, "value"},
		{"other instance in wrapper", "/3/0/7/1", "88 07 08 42 00 0E D8 42 01 13 88", 4, "identifier"},
		{"3-byte objlnk", "/66/0", "C3 02 00 43 00", 2, "value"},
		{"empty time", "/3/0", "C0 0D", 2, "value"},
		{"duplicate resource", "/3/0", "C1 09 64 C1 09 65", 4, "identifier"},
		{"duplicate after others", "/3/0", "C1 09 64 C1 0A 0F C1 09 65", 7, "identifier"},
		{"duplicate instance", "/3", "08 00 03 C1 09 64 08 00 03 C1 0A 0F", 7, "identifier"},
		{"duplicate wrapper", "/3/0/7/1", "84 07 42 01 13 88 84 07 42 01 13 88", 7, "identifier"},
		{"resource and its instances", "/3/0", "C1 06 01 83 06 41 00 01", 4, "identifier"},
		{"resource and empty multiple resource", "/3/0", "C1 06 01 80 06", 4, "identifier"},
		{"instances then the resource", "/3/0", "83 06 41 00 01 C1 06 01", 6, "identifier"},
		{"wrapped and bare resource", "/3/0", "08 00 03 C1 09 64 C1 09 64", 7, "identifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := parseHex(t, tt.hex)
			got, err := Decode(data, lwm2m.MustParsePath(tt.base), specTypeOf)
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %s, %v; want a *lwm2m.DecodeError", dump(got), err)
			}
			if !errors.Is(err, lwm2m.ErrSyntax) || de.Format != lwm2m.FormatTLV {
				t.Errorf("error %v does not wrap ErrSyntax or names format %v", err, de.Format)
			}
			if de.Offset != tt.off || de.Field != tt.field {
				t.Errorf("error at offset %d field %q, want %d %q: %v", de.Offset, de.Field, tt.off, tt.field, err)
			}
		})
	}
}

// A length field claiming far more than the input holds must not make the
// decoder allocate for it.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	data := parseHex(t, "D8 00 FF FF FF 00 01 02")
	base := lwm2m.MustParsePath("/3/0")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Decode(data, base, specTypeOf); err == nil {
			t.Fatal("no error")
		}
	})
	if allocs > 4 {
		t.Errorf("%v allocations for a bad 8-byte input", allocs)
	}
}
