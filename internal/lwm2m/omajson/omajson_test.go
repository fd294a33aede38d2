package omajson

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var (
	testNow  = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	testOpts = DecodeOptions{Now: testNow}
	t0       = time.Unix(1700000000, 0).UTC()
)

// testTypes knows Device (3), Temperature (3303), the objlnk example
// objects 65-67 of the LwM2M specification and a test object 32769 with one
// resource of each type.
func testTypes(p lwm2m.Path) (lwm2m.Type, bool) {
	if p.Depth() < 3 {
		return lwm2m.TypeNone, false
	}
	o, r := p.Object(), p.Resource()
	switch {
	case o == 3 && (r <= 3 || r >= 14):
		return lwm2m.TypeString, true
	case o == 3 && r == 13:
		return lwm2m.TypeTime, true
	case o == 3:
		return lwm2m.TypeInteger, true
	case o == 3303 && (r == 5701 || r == 5750):
		return lwm2m.TypeString, true
	case o == 3303:
		return lwm2m.TypeFloat, true
	case o == 65 && r == 0, o == 66 && r == 2:
		return lwm2m.TypeObjlnk, true
	case o == 65 && r == 2:
		return lwm2m.TypeInteger, true
	case o >= 65 && o <= 67:
		return lwm2m.TypeString, true
	case o == 32769 && r <= 8:
		return [...]lwm2m.Type{lwm2m.TypeInteger, lwm2m.TypeUnsigned, lwm2m.TypeFloat, lwm2m.TypeString,
			lwm2m.TypeBoolean, lwm2m.TypeOpaque, lwm2m.TypeTime, lwm2m.TypeObjlnk, lwm2m.TypeCorelnk}[r], true
	}
	return lwm2m.TypeNone, false
}

func rec(path string, v lwm2m.Value) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v}
}

func recAt(path string, v lwm2m.Value, t time.Time) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v, Time: t}
}

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
	rec("/3/0/15", lwm2m.String("U")),
}

var goldenCases = []struct {
	file    string
	base    lwm2m.Path
	types   lwm2m.TypeFunc
	want    []lwm2m.Record
	encoded bool // the file is exactly what Encode writes
}{
	// Read /3/0 (LwM2M 1.0 JSON example), with and without bn.
	{"device.json", lwm2m.MustParsePath("/3/0"), testTypes, deviceRecords, true},
	{"device-nobn.json", lwm2m.MustParsePath("/3/0"), testTypes, deviceRecords, false},
	// Objlnk resources across objects 65-67 (LwM2M 1.0 JSON example).
	{"objlnk.json", lwm2m.Root, testTypes, []lwm2m.Record{
		rec("/65/0/0/0", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 0})),
		rec("/65/0/0/1", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 1})),
		rec("/65/0/1", lwm2m.String("8613800755500")),
		rec("/66/0/0", lwm2m.String("myService1")),
		rec("/66/0/1", lwm2m.String("Internet.15.234")),
		rec("/66/0/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 67, Instance: 0})),
		rec("/66/1/0", lwm2m.String("myService2")),
		rec("/66/1/1", lwm2m.String("Internet.15.235")),
		rec("/66/1/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})),
		rec("/67/0/0", lwm2m.String("85.76.76.84")),
		rec("/67/0/1", lwm2m.String("85.76.255.255")),
	}, true},
	// Timestamped values of one resource (modelled on the LwM2M 1.0
	// example): bn names the resource, t is relative to bt.
	{"timestamped.json", lwm2m.MustParsePath("/3303/0/5700"), testTypes, []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), t0.Add(-5*time.Second)),
		recAt("/3303/0/5700", lwm2m.Float(22.9), t0.Add(-30*time.Second)),
		recAt("/3303/0/5700", lwm2m.Float(24.1), t0.Add(-50*time.Second)),
	}, false},
	{"timeseries.json", lwm2m.MustParsePath("/3303/0/5700"), testTypes, []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), t0),
		recAt("/3303/0/5700", lwm2m.Float(22.9), t0.Add(30500*time.Millisecond)),
		recAt("/3303/0/5700", lwm2m.Float(24.1), t0.Add(time.Minute)),
	}, true},
	// Times relative to now, without bt.
	{"relative-times.json", lwm2m.MustParsePath("/3303/0"), testTypes, []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), testNow.Add(-5*time.Second)),
		rec("/3303/0/5700", lwm2m.Float(22.9)),
		recAt("/3303/0/5701", lwm2m.String("Cel"), testNow.Add(-500*time.Millisecond)),
	}, false},
	// One resource of each type.
	{"types.json", lwm2m.MustParsePath("/32769/0"), testTypes, []lwm2m.Record{
		rec("/32769/0/0/0", lwm2m.Int(-1)),
		rec("/32769/0/0/1", lwm2m.Int(math.MinInt64)),
		rec("/32769/0/0/2", lwm2m.Int(math.MaxInt64)),
		rec("/32769/0/1/0", lwm2m.Uint(math.MaxUint64)),
		rec("/32769/0/1/1", lwm2m.Uint(0)),
		rec("/32769/0/2/0", lwm2m.Float(22.5)),
		rec("/32769/0/2/1", lwm2m.Float(-1e-300)),
		rec("/32769/0/2/2", lwm2m.Float(3)),
		rec("/32769/0/3/0", lwm2m.String("")),
		rec("/32769/0/3/1", lwm2m.String(`Zürich "q" <b> & \ é`)),
		rec("/32769/0/4", lwm2m.Bool(false)),
		rec("/32769/0/5/0", lwm2m.Opaque([]byte{0x00, 0xff, 0x10, 0xfb, 0xff})),
		rec("/32769/0/5/1", lwm2m.Opaque([]byte{})),
		rec("/32769/0/6", lwm2m.TimeUnix(1700000000)),
		rec("/32769/0/7", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})),
		rec("/32769/0/8", lwm2m.Corelnk("</3/0>;ct=110,</1/0>")),
	}, true},
}

func TestGolden(t *testing.T) {
	used := map[string]bool{}
	for _, c := range goldenCases {
		used[c.file] = true
		t.Run(c.file, func(t *testing.T) {
			data := readTestdata(t, c.file)
			got, err := testOpts.Decode(data, c.base, c.types)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, c.want)
			if !c.encoded {
				return
			}
			enc, err := Encode(c.base, c.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Errorf("Encode:\n got %s\nwant %s", enc, data)
			}
		})
	}
	for _, f := range testdataFiles(t) {
		if !used[f] {
			t.Errorf("testdata/%s is not used by a golden case", f)
		}
	}
}

// Without types, numbers and strings take their natural types.
func TestUntyped(t *testing.T) {
	got, err := Decode(readTestdata(t, "types.json"), lwm2m.MustParsePath("/32769/0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]lwm2m.Value{
		"/32769/0/1/0": lwm2m.Uint(math.MaxUint64),
		"/32769/0/1/1": lwm2m.Int(0),
		"/32769/0/2/2": lwm2m.Int(3),
		"/32769/0/5/0": lwm2m.String("AP8Q+/8="),
		"/32769/0/6":   lwm2m.Int(1700000000),
		"/32769/0/8":   lwm2m.String("</3/0>;ct=110,</1/0>"),
	}
	for _, r := range got {
		if w, ok := want[r.Path.String()]; ok && !r.Value.Equal(w) {
			t.Errorf("%s: got %#v, want %#v", r.Path, r.Value, w)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	base30 := lwm2m.MustParsePath("/3/0")
	base9 := lwm2m.MustParsePath("/32769/0")
	cases := []struct {
		name   string
		in     string
		base   lwm2m.Path
		offset int
		field  string
	}{
		{"empty", ``, base30, -1, ""},
		{"array", `[{"n":"9","v":1}]`, base30, -1, ""},
		{"truncated", `{"e":[{"n":"9","v":1}]`, base30, -1, ""},
		{"trailing garbage", `{"e":[]} {}`, base30, -1, ""},
		{"no e", `{"bn":"/3/0/"}`, base30, -1, "e"},
		{"e object", `{"e":{"n":"9","v":1}}`, base30, -1, "e"},
		{"e null", `{"e":null}`, base30, -1, "e"},
		{"labels are case-sensitive", `{"E":[{"n":"9","v":1}]}`, base30, -1, "e"},
		{"truncated object", `{"e":[]`, base30, -1, ""},
		{"missing colon", `{"e" []}`, base30, -1, ""},
		{"entry not object", `{"e":[{"n":"9","v":1},3]}`, base30, -1, "e"},
		{"null entry", `{"e":[{"n":"9","v":1},null]}`, base30, 1, ""},
		{"bn number", `{"bn":3,"e":[]}`, base30, -1, "bn"},
		{"bn relative", `{"bn":"3/0/","e":[]}`, base30, -1, "bn"},
		{"bn ID out of range", `{"bn":"/3/99999/","e":[]}`, lwm2m.Root, -1, "bn"},
		{"bn outside base", `{"bn":"/4/0/","e":[]}`, base30, -1, "bn"},
		{"bt string", `{"bt":"now","e":[]}`, base30, -1, "bt"},
		{"bt out of range", `{"bt":1e400,"e":[]}`, base30, -1, "bt"},
		{"name runs into bn", `{"bn":"/3/0/1","e":[{"n":"2","v":1}]}`, base30, 0, "n"},
		{"name not a string", `{"e":[{"n":9,"v":1}]}`, base30, 0, "n"},
		{"name too shallow", `{"bn":"/3/","e":[{"n":"0","v":1}]}`, lwm2m.Root, 0, "n"},
		{"name too deep", `{"e":[{"n":"9/0/1","v":1}]}`, base30, 0, "n"},
		{"name outside base", `{"e":[{"n":"/3/1/9","v":1}]}`, base30, 0, "n"},
		{"no value", `{"e":[{"n":"9","v":1},{"n":"10"}]}`, base30, 1, "v"},
		{"two values", `{"e":[{"n":"9","v":1,"sv":"1"}]}`, base30, 0, "sv"},
		{"v string", `{"e":[{"n":"9","v":"1"}]}`, base30, 0, "v"},
		{"v out of range", `{"e":[{"n":"9","v":-1e999}]}`, base30, 0, "v"},
		{"sv number", `{"e":[{"n":"0","sv":1}]}`, base30, 0, "sv"},
		{"bv number", `{"e":[{"n":"4","bv":1}]}`, base9, 0, "bv"},
		{"ov bad", `{"e":[{"n":"7","ov":"3"}]}`, base9, 0, "ov"},
		{"ov number", `{"e":[{"n":"7","ov":3}]}`, base9, 0, "ov"},
		{"opaque bad base64", `{"e":[{"n":"5","sv":"!!"}]}`, base9, 0, "sv"},
		{"t string", `{"e":[{"n":"9","v":1,"t":"x"}]}`, base30, 0, "t"},
		{"t out of range", `{"e":[{"n":"9","v":1,"t":1e300}]}`, base30, 0, "t"},
		{"bt pushes time out of range", `{"bt":-9e9,"e":[{"n":"9","v":1}]}`, base30, 0, "bt"},
		{"string for integer", `{"e":[{"n":"9","sv":"1"}]}`, base30, 0, "sv"},
		{"fraction for integer", `{"e":[{"n":"9","v":0.5}]}`, base30, 0, "v"},
		{"negative unsigned", `{"e":[{"n":"1","v":-1}]}`, base9, 0, "v"},
		{"number for boolean", `{"e":[{"n":"4","v":1}]}`, base9, 0, "v"},
		{"boolean for string", `{"e":[{"n":"3","bv":true}]}`, base9, 0, "bv"},
		{"objlnk for string", `{"e":[{"n":"3","ov":"1:2"}]}`, base9, 0, "ov"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := testOpts.Decode([]byte(c.in), c.base, testTypes)
			if err == nil {
				t.Fatalf("no error, records %v", rs)
			}
			var de *lwm2m.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, lwm2m.ErrSyntax) {
				t.Fatalf("error %v (%T) is not a *lwm2m.DecodeError", err, err)
			}
			if de.Format != lwm2m.FormatJSON || de.Offset != c.offset || de.Field != c.field {
				t.Errorf("got format %d offset %d field %q (%v), want offset %d field %q",
					de.Format, de.Offset, de.Field, err, c.offset, c.field)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		base string
		rs   []lwm2m.Record
		want string
	}{
		{"/", nil, `{"bn":"/","e":[]}`},
		{"/3/0/9", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1))}, `{"bn":"/3/0/","e":[{"n":"9","v":1}]}`},
		{"/", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1)), rec("/4/0/1", lwm2m.Bool(true))}, `{"bn":"/","e":[{"n":"3/0/9","v":1},{"n":"4/0/1","bv":true}]}`},
		{"/3", []lwm2m.Record{rec("/3/0/9", lwm2m.Int(1)), rec("/3/1/9", lwm2m.Int(2))}, `{"bn":"/3/","e":[{"n":"0/9","v":1},{"n":"1/9","v":2}]}`},
	}
	for _, c := range cases {
		got, err := Encode(lwm2m.MustParsePath(c.base), c.rs)
		if err != nil || string(got) != c.want {
			t.Errorf("Encode(%s, %v) = %s, %v; want %s", c.base, c.rs, got, err, c.want)
		}
	}
	for _, r := range []lwm2m.Record{
		rec("/3/1/9", lwm2m.Int(1)),
		{Path: lwm2m.MustParsePath("/3/0"), Value: lwm2m.Int(1)},
		rec("/3/0/4", lwm2m.None()),
		rec("/3/0/9", lwm2m.Float(math.NaN())),
		recAt("/3/0/9", lwm2m.Int(1), time.Unix(5, 0)),
	} {
		if _, err := Encode(lwm2m.MustParsePath("/3/0"), []lwm2m.Record{r}); err == nil {
			t.Errorf("Encode(%v): no error", r)
		}
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testdataFiles(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

func sameRecords(t testing.TB, got, want []lwm2m.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Path != w.Path || !g.Value.Equal(w.Value) || !g.Time.Equal(w.Time) {
			t.Errorf("record %d: got %s %#v %v, want %s %#v %v", i, g.Path, g.Value, g.Time, w.Path, w.Value, w.Time)
		}
	}
}
