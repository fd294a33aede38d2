package lwm2mcbor

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var P = lwm2m.MustParsePath

// deviceTypes types the Device object (/3) as the OMA model does and the
// test object 3442 with one resource per data type.
func deviceTypes(p lwm2m.Path) (lwm2m.Type, bool) {
	switch p.Object() {
	case 3:
		switch p.Resource() {
		case 0, 1, 2, 3, 14, 15, 16, 17, 18, 19:
			return lwm2m.TypeString, true
		case 6, 7, 8, 9, 10, 11, 20, 21:
			return lwm2m.TypeInteger, true
		case 13:
			return lwm2m.TypeTime, true
		}
	case 3442:
		switch p.Resource() {
		case 110, 200:
			return lwm2m.TypeString, true
		case 120:
			return lwm2m.TypeUnsigned, true
		case 130, 210:
			return lwm2m.TypeInteger, true
		case 140, 141, 142, 143:
			return lwm2m.TypeFloat, true
		case 150, 151:
			return lwm2m.TypeBoolean, true
		case 160:
			return lwm2m.TypeOpaque, true
		case 170, 171:
			return lwm2m.TypeTime, true
		case 180:
			return lwm2m.TypeObjlnk, true
		case 190:
			return lwm2m.TypeCorelnk, true
		}
	}
	return lwm2m.TypeNone, false
}

type hexFile struct {
	base lwm2m.Path
	data []byte
}

// readHex reads a testdata file: '#' comment lines, the first of which is
// "# base: /path", and hex digits.
func readHex(t testing.TB, name string) hexFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f hexFile
	var digits strings.Builder
	for line := range strings.Lines(string(raw)) {
		line = strings.TrimSpace(line)
		if b, ok := strings.CutPrefix(line, "# base:"); ok {
			f.base = P(strings.TrimSpace(b))
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		digits.WriteString(strings.ReplaceAll(line, " ", ""))
	}
	if f.data, err = hex.DecodeString(digits.String()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func hexFiles(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for i, p := range paths {
		paths[i] = filepath.Base(p)
	}
	return paths
}

func rec(path string, v lwm2m.Value) lwm2m.Record { return lwm2m.Record{Path: P(path), Value: v} }

func deviceRecords(currentTime lwm2m.Value) []lwm2m.Record {
	return []lwm2m.Record{
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
		rec("/3/0/13", currentTime),
		rec("/3/0/14", lwm2m.String("+02:00")),
		rec("/3/0/16", lwm2m.String("U")),
	}
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

func formatRecords(rs []lwm2m.Record) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("\n\t" + r.Path.String() + " = " + r.Value.GoString())
	}
	return b.String()
}

func TestDecodeGolden(t *testing.T) {
	allTypes := func(objlnk, corelnk, unsigned lwm2m.Value) []lwm2m.Record {
		return []lwm2m.Record{
			rec("/3442/0/110", lwm2m.String("string")),
			rec("/3442/0/120", unsigned),
			rec("/3442/0/130", lwm2m.Int(-42)),
			rec("/3442/0/140", lwm2m.Float(3.14)),
			rec("/3442/0/141", lwm2m.Float(1.5)),
			rec("/3442/0/142", lwm2m.Float(4.5)),
			rec("/3442/0/143", lwm2m.Float(0.25)),
			rec("/3442/0/150", lwm2m.Bool(true)),
			rec("/3442/0/151", lwm2m.Bool(false)),
			rec("/3442/0/160", lwm2m.Opaque([]byte{0, 0xff, 0x10})),
			rec("/3442/0/170", lwm2m.TimeUnix(1600000000)),
			rec("/3442/0/171", lwm2m.TimeUnix(1600000000)),
			rec("/3442/0/180", objlnk),
			rec("/3442/0/190", corelnk),
			rec("/3442/0/200", lwm2m.None()),
			rec("/3442/0/210/0", lwm2m.Int(1)),
			rec("/3442/0/210/7", lwm2m.Int(2)),
		}
	}
	lightweight := []lwm2m.Record{rec("/3/0/1", lwm2m.String("Lightweight M2M Client"))}
	cases := []struct {
		file  string
		types lwm2m.TypeFunc
		want  []lwm2m.Record
	}{
		{"device-instance.hex", deviceTypes, deviceRecords(lwm2m.TimeUnix(1367491215))},
		{"device-instance.hex", nil, deviceRecords(lwm2m.TimeUnix(1367491215))},
		{"device-instance-compressed.hex", deviceTypes, deviceRecords(lwm2m.TimeUnix(1367491215))},
		{"device-instance-compressed.hex", nil, deviceRecords(lwm2m.Int(1367491215))},
		{"read-composite.hex", deviceTypes, []lwm2m.Record{
			rec("/1/0/1", lwm2m.Int(86400)),
			rec("/3/0/0", lwm2m.String("Open Mobile Alliance")),
			rec("/3303/0/5700", lwm2m.Float(22.5)),
		}},
		{"multi-instance-resource.hex", deviceTypes, []lwm2m.Record{
			rec("/3/0/7/0", lwm2m.Int(3800)), rec("/3/0/7/1", lwm2m.Int(5000))}},
		{"indefinite.hex", nil, lightweight},
		{"mixed-keys.hex", nil, []lwm2m.Record{
			rec("/3/0/0", lwm2m.String("Open Mobile Alliance")),
			rec("/3/0/1", lwm2m.String("Lightweight M2M Client")),
			rec("/3/0/2", lwm2m.String("345000123")),
		}},
		{"all-types.hex", deviceTypes, allTypes(lwm2m.Objlnk(lwm2m.ObjLink{Object: 3}), lwm2m.Corelnk("</3/0>"), lwm2m.Uint(math.MaxUint64))},
		{"all-types.hex", nil, allTypes(lwm2m.String("3:0"), lwm2m.String("</3/0>"), lwm2m.Uint(math.MaxUint64))},
		{"notification.hex", deviceTypes, []lwm2m.Record{
			rec("/3/0/0", lwm2m.String("Open Mobile Alliance")),
			rec("/3/0/1", lwm2m.String("Lightweight M2M Client")),
			rec("/3/0/2", lwm2m.String("345000123")),
			rec("/3/0/3", lwm2m.String("1.0")),
			rec("/3/0/9", lwm2m.Int(100)),
			rec("/3/0/10", lwm2m.Int(15)),
			rec("/3/0/13", lwm2m.TimeUnix(1367491215)),
			rec("/3/0/14", lwm2m.String("+02:00")),
			rec("/3/0/16", lwm2m.String("U")),
			rec("/3/0/17", lwm2m.String("nRF9160")),
		}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.file] = true
		t.Run(c.file, func(t *testing.T) {
			f := readHex(t, c.file)
			got, err := Decode(f.data, f.base, c.types)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalRecords(got, c.want) {
				t.Errorf("Decode\n got %s\nwant %s", formatRecords(got), formatRecords(c.want))
			}
			// Decoding below the root works for every document.
			if _, err := Decode(f.data, lwm2m.Root, c.types); err != nil {
				t.Errorf("Decode at /: %v", err)
			}
		})
	}
	for _, name := range hexFiles(t) {
		if !covered[name] {
			t.Errorf("testdata/%s has no golden case", name)
		}
	}
}

// TestEncodeGolden checks that the encoder reproduces the files written in
// its own folded form byte for byte.
func TestEncodeGolden(t *testing.T) {
	for _, name := range []string{"notification.hex", "read-composite.hex", "multi-instance-resource.hex"} {
		f := readHex(t, name)
		rs, err := Decode(f.data, f.base, deviceTypes)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(f.base, rs)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s: Encode\n got %x\nwant %x", name, got, f.data)
		}
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		name string
		base lwm2m.Path
		rs   []lwm2m.Record
		want string // hex
	}{
		{"empty", lwm2m.Root, nil, "a0"},
		{"single resource", P("/3/0/1"), []lwm2m.Record{rec("/3/0/1", lwm2m.Int(42))}, "a183030001182a"},
		{"resource instance", P("/3/0/7/1"), []lwm2m.Record{rec("/3/0/7/1", lwm2m.Uint(5000))}, "a18403000701191388"},
		{"two objects", lwm2m.Root, []lwm2m.Record{
			rec("/13/26/1", lwm2m.Int(42)), rec("/13/26/2", lwm2m.Int(21)),
			rec("/14/27/1", lwm2m.Int(43)), rec("/14/27/2", lwm2m.Int(22))},
			// {[13, 26]: {1: 42, 2: 21}, [14, 27]: {1: 43, 2: 22}}
			"a2820d181aa201182a0215820e181ba201182b0216"},
		{"split at the resource", lwm2m.Root, []lwm2m.Record{
			rec("/13/26/1", lwm2m.Int(42)), rec("/13/26/3/21", lwm2m.Float(69.68)), rec("/13/26/3/37", lwm2m.Bool(false))},
			// {[13, 26]: {1: 42, 3: {21: 69.68, 37: false}}}
			"a1820d181aa201182a03a215fb40516b851eb851ec1825f4"},
		{"values", lwm2m.Root, []lwm2m.Record{
			rec("/1/0/0", lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 1})),
			rec("/1/0/1", lwm2m.Opaque(nil)),
			rec("/1/0/2", lwm2m.TimeUnix(-1)),
			rec("/1/0/3", lwm2m.None()),
			rec("/1/0/4", lwm2m.Float(math.Copysign(0, -1))),
			rec("/1/0/5", lwm2m.Float(math.Inf(1))),
			rec("/1/0/6", lwm2m.Corelnk("</1>")),
			rec("/1/0/7", lwm2m.Int(-1)),
		},
			// {[1, 0]: {0: "3:1", 1: h'', 2: 1(-1), 3: null, 4: -0.0, 5: Infinity, 6: "</1>", 7: -1}}
			"a1820100a80063333a31014002c12003f604f9800005f97c0006643c2f313e0720"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Encode(c.base, c.rs)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != c.want {
				t.Errorf("Encode = %x, want %s", got, c.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		base lwm2m.Path
		rs   []lwm2m.Record
	}{
		{"instance path", lwm2m.Root, []lwm2m.Record{rec("/3/0", lwm2m.Int(1))}},
		{"outside base", P("/3/1"), []lwm2m.Record{rec("/3/0/1", lwm2m.Int(1))}},
		{"duplicate", lwm2m.Root, []lwm2m.Record{rec("/3/0/1", lwm2m.Int(1)), rec("/3/0/1", lwm2m.Int(2))}},
		{"time series", lwm2m.Root, []lwm2m.Record{
			{Path: P("/3/0/1"), Value: lwm2m.Int(1), Time: time.Unix(1, 0)},
			{Path: P("/3/0/1"), Value: lwm2m.Int(2), Time: time.Unix(2, 0)}}},
		{"resource and instance", lwm2m.Root, []lwm2m.Record{rec("/3/0/7", lwm2m.Int(1)), rec("/3/0/7/0", lwm2m.Int(2))}},
		{"invalid utf-8", lwm2m.Root, []lwm2m.Record{rec("/3/0/1", lwm2m.String("\xff"))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if b, err := Encode(c.base, c.rs); err == nil {
				t.Errorf("Encode = %x, want an error", b)
			}
		})
	}
}

func TestEncodeIgnoresTime(t *testing.T) {
	b, err := Encode(lwm2m.Root, []lwm2m.Record{{Path: P("/3/0/9"), Value: lwm2m.Int(5), Time: time.Unix(1700000000, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Decode(b, lwm2m.Root, nil)
	if err != nil || len(rs) != 1 || !rs[0].Time.IsZero() {
		t.Errorf("Decode(Encode) = %v, %v; want one record with a zero time", rs, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name   string
		base   lwm2m.Path
		in     string // hex
		field  string
		offset int
	}{
		{"empty input", lwm2m.Root, "", "map", 0},
		{"not a map", lwm2m.Root, "00", "map", 0},
		{"array at top", lwm2m.Root, "8401020304", "map", 0},
		{"truncated map head", lwm2m.Root, "b900", "map", 0},
		{"reserved head", lwm2m.Root, "bc", "map", 0},
		{"trailing bytes", lwm2m.Root, "a000", "map", 1},
		{"map without pairs", lwm2m.Root, "a1", "key", 1},
		{"key without value", lwm2m.Root, "a1830300 01", "value", 5},
		{"huge pair count", lwm2m.Root, "bbffffffffffffffff 830300 01 01", "key", 14},
		{"huge nested pair count", lwm2m.Root, "a1820300bbffffffffffffffff", "key", 13},
		{"indefinite map not terminated", lwm2m.Root, "bf8303000101", "map", 6},
		{"huge text length", lwm2m.Root, "a1830300017bffffffffffffffff41", "value", 5},
		{"huge byte length", lwm2m.Root, "a1830300015affffffff00", "value", 5},
		{"huge key array", lwm2m.Root, "a19bffffffffffffffff00", "key", 1},
		{"long key array", lwm2m.Root, "a198ff" + strings.Repeat("00", 255) + "01", "path", 1},
		{"truncated key array", lwm2m.Root, "a19f0300", "key", 1},
		{"indefinite key array", lwm2m.Root, "a19f030001ff01a0", "map", 7},
		{"negative key", lwm2m.Root, "a120a10001", "key", 1},
		{"text key", lwm2m.Root, "a16133a1000101", "key", 1},
		{"float key", lwm2m.Root, "a1f94000a1000101", "key", 1},
		{"float in key array", lwm2m.Root, "a1830300f93c0001", "key", 1},
		{"empty key array", lwm2m.Root, "a18001", "key", 1},
		{"key 65535", lwm2m.Root, "a1830300 19ffff 01", "key", 1},
		{"key 65536", lwm2m.Root, "a103a100a11a0001000001", "key", 5},
		{"key array too long", lwm2m.Root, "a1850300010203 01", "path", 1},
		{"key chain too deep", lwm2m.Root, "a103a100a101a102a10301", "path", 8},
		{"map below resource instance", lwm2m.Root, "a184030001 02a10001", "path", 6},
		{"value at object", lwm2m.Root, "a10301", "path", 1},
		{"value at instance", lwm2m.Root, "a182030001", "path", 1},
		{"outside base", P("/3/1"), "a1830300 01 01", "path", 1},
		{"outside resource base", P("/3/0/1/2"), "a1830300 01 01", "path", 1},
		{"duplicate path", lwm2m.Root, "a2830300 01 01 03a100a10102", "path", 10},
		{"duplicate key", lwm2m.Root, "a2830300 01 01 830300 01 02", "path", 6},
		{"resource and instance", lwm2m.Root, "a2830300 07 01 84030007 00 02", "path", 6},
		{"array value", lwm2m.Root, "a1830300 01 820102", "value", 5},
		{"undefined", lwm2m.Root, "a1830300 01 f7", "value", 5},
		{"simple value", lwm2m.Root, "a1830300 01 f0", "value", 5},
		{"unknown tag", lwm2m.Root, "a1830300 01 d8206178", "value", 5},
		{"tag around a map", lwm2m.Root, "a1830300 01 c1a0", "value", 5},
		{"tags nested too deep", lwm2m.Root, "a1830300 01 c4c4c4c4c48200 01", "value", 5},
		{"bad decimal fraction", lwm2m.Root, "a1830300 01 c4820061 78", "value", 5},
		{"huge decimal fraction", lwm2m.Root, "a1830300 01 c482 1903e8 01", "value", 5},
		{"time tag with text", lwm2m.Root, "a1830300 01 c16178", "value", 5},
		{"invalid utf-8", lwm2m.Root, "a1830300 01 62fffe", "value", 5},
		{"negative int overflow", lwm2m.Root, "a1830300 01 3bffffffffffffffff", "value", 5},
		{"negative bignum overflow", lwm2m.Root, "a1830300 01 c349 010000000000000000", "value", 5},
		{"truncated value", lwm2m.Root, "a1830300 01 19ff", "value", 5},
		{"string for integer", lwm2m.Root, "a1830300 09 6161", "value", 5},
		{"unsigned beyond integer", lwm2m.Root, "a1830300 09 1bffffffffffffffff", "value", 5},
		{"bytes for string", lwm2m.Root, "a1830300 00 4161", "value", 5},
		{"bad objlnk", lwm2m.Root, "a183190d72 00 18b4 6178", "value", 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := hex.DecodeString(strings.ReplaceAll(c.in, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Decode(data, c.base, deviceTypes)
			if err == nil {
				t.Fatalf("Decode(%s) = %s, want an error", c.in, formatRecords(rs))
			}
			if rs != nil {
				t.Errorf("Decode returned records with an error")
			}
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, lwm2m.ErrSyntax) {
				t.Fatalf("error %v (%T) is not a *lwm2m.DecodeError", err, err)
			}
			if de.Format != lwm2m.FormatLwM2MCBOR || de.Field != c.field || de.Offset != c.offset {
				t.Errorf("error = %v, want field %q at offset %d", err, c.field, c.offset)
			}
		})
	}
}

func TestDecodeConversions(t *testing.T) {
	types := func(p lwm2m.Path) (lwm2m.Type, bool) {
		return []lwm2m.Type{lwm2m.TypeFloat, lwm2m.TypeUnsigned, lwm2m.TypeTime, lwm2m.TypeBoolean, lwm2m.TypeObjlnk}[p.Resource()], true
	}
	// {[5, 0]: {0: 25, 1: 7, 2: 1700000000, 3: 1, 4: "65535:65535"}}
	data, _ := hex.DecodeString("a1820500a5001819010702" + "1a6553f100" + "0301" + "046b36353533353a3635353335")
	rs, err := Decode(data, lwm2m.Root, types)
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Record{
		rec("/5/0/0", lwm2m.Float(25)),
		rec("/5/0/1", lwm2m.Uint(7)),
		rec("/5/0/2", lwm2m.TimeUnix(1700000000)),
		rec("/5/0/3", lwm2m.Bool(true)),
		rec("/5/0/4", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})),
	}
	if !equalRecords(rs, want) {
		t.Errorf("got %s\nwant %s", formatRecords(rs), formatRecords(want))
	}
}

// randomRecords builds records at distinct, non-conflicting paths with
// values of every type, and a TypeFunc that knows their types.
func randomRecords(r *rand.Rand) ([]lwm2m.Record, lwm2m.TypeFunc) {
	types := map[lwm2m.Path]lwm2m.Type{}
	var rs []lwm2m.Record
	allTypes := []lwm2m.Type{lwm2m.TypeString, lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat,
		lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk, lwm2m.TypeNone}
	id := func() uint16 {
		if r.IntN(4) == 0 {
			return uint16(r.IntN(lwm2m.MaxID + 1))
		}
		return uint16(r.IntN(30))
	}
	seen := map[lwm2m.Path]bool{}
	for range r.IntN(25) {
		res := lwm2m.NewPath(id(), id(), id())
		if seen[res] {
			continue
		}
		seen[res] = true
		t := allTypes[r.IntN(len(allTypes))]
		types[res] = t
		if r.IntN(3) == 0 {
			for range 1 + r.IntN(4) {
				p := res.Child(id())
				if !seen[p] {
					seen[p] = true
					rs = append(rs, lwm2m.Record{Path: p, Value: randomValue(r, t)})
				}
			}
			continue
		}
		rs = append(rs, lwm2m.Record{Path: res, Value: randomValue(r, t)})
	}
	return rs, func(p lwm2m.Path) (lwm2m.Type, bool) {
		t, ok := types[p.Truncate(3)]
		return t, ok
	}
}

func randomValue(r *rand.Rand, t lwm2m.Type) lwm2m.Value {
	switch t {
	case lwm2m.TypeString:
		return lwm2m.String(strings.Repeat("héllo ", r.IntN(4)))
	case lwm2m.TypeInteger:
		return lwm2m.Int(int64(r.Uint64()) >> r.IntN(64))
	case lwm2m.TypeUnsigned:
		return lwm2m.Uint(r.Uint64() >> r.IntN(64))
	case lwm2m.TypeFloat:
		return lwm2m.Float([]float64{r.NormFloat64() * 1e6, float64(r.IntN(100)), 0.5, math.Inf(-1),
			math.NaN(), math.Float64frombits(r.Uint64()), float64(float32(r.Float64()))}[r.IntN(7)])
	case lwm2m.TypeBoolean:
		return lwm2m.Bool(r.IntN(2) == 0)
	case lwm2m.TypeOpaque:
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return lwm2m.Opaque(b)
	case lwm2m.TypeTime:
		return lwm2m.TimeUnix(r.Int64N(1<<40) - 1<<39)
	case lwm2m.TypeObjlnk:
		return lwm2m.Objlnk(lwm2m.ObjLink{Object: uint16(r.Uint32()), Instance: uint16(r.Uint32())})
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk("</3/0>;ver=1.1")
	}
	return lwm2m.None()
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 3000 {
		rs, types := randomRecords(r)
		b, err := Encode(lwm2m.Root, rs)
		if err != nil {
			t.Fatalf("case %d: Encode: %v", i, err)
		}
		got, err := Decode(b, lwm2m.Root, types)
		if err != nil {
			t.Fatalf("case %d: Decode(%x): %v", i, b, err)
		}
		want := append([]lwm2m.Record(nil), rs...)
		lwm2m.SortRecords(want)
		if !equalRecords(got, want) {
			t.Fatalf("case %d: round trip via %x\n got %s\nwant %s", i, b, formatRecords(got), formatRecords(want))
		}
		again, err := Encode(lwm2m.Root, got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("case %d: re-encoding differs: %x vs %x (%v)", i, again, b, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range hexFiles(f) {
		f.Add(readHex(f, name).data)
	}
	for _, s := range []string{"a0", "a1830300 01 01", "bf0380ff", "a19bffffffffffffffff00", "a103a100a101a102a10301"} {
		b, _ := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data, lwm2m.Root, deviceTypes)
		if err != nil {
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) || de.Format != lwm2m.FormatLwM2MCBOR {
				t.Fatalf("error %v (%T) is not an LwM2M-CBOR DecodeError", err, err)
			}
			if de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("error %v: offset outside input of %d bytes", err, len(data))
			}
			return
		}
		b, err := Encode(lwm2m.Root, rs)
		if err != nil {
			t.Fatalf("Encode of decoded %x: %v", data, err)
		}
		again, err := Decode(b, lwm2m.Root, deviceTypes)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%x))) = %v", data, err)
		}
		if !equalRecords(again, rs) {
			t.Fatalf("round trip of %x\n got %s\nwant %s", data, formatRecords(again), formatRecords(rs))
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	f := readHex(b, "notification.hex")
	b.SetBytes(int64(len(f.data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(f.data, f.base, deviceTypes); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	f := readHex(b, "notification.hex")
	rs, err := Decode(f.data, f.base, deviceTypes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(f.base, rs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHugeLengthsDoNotAllocate decodes items that claim lengths and counts
// of up to 2^64-1 and checks that memory use stays small.
func TestHugeLengthsDoNotAllocate(t *testing.T) {
	inputs := []string{
		"bbffffffffffffffff830300 01 01",
		"a1830300 01 7bffffffffffffffff41",
		"a1830300 01 5bffffffffffffffff41",
		"a1830300 01 5f5bffffffffffffffff41ff",
		"a19bffffffffffffffff00",
		"a1830300 01 c29bffffffffffffffff",
		"a1830300 01 c45bffffffffffffffff",
	}
	for _, in := range inputs {
		data, err := hex.DecodeString(strings.ReplaceAll(in, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := Decode(data, lwm2m.Root, nil); err == nil {
				t.Fatalf("Decode(%s) succeeded", in)
			}
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("Decode(%s) ten times allocated %d bytes", in, n)
		}
	}
}
