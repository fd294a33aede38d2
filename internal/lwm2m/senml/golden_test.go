package senml

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// deviceRecords is the Device object instance of the LwM2M 1.1 example
// client (Read /3/0).
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

var typesRecords = []lwm2m.Record{
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
}

var (
	t0 = time.Unix(1700000000, 0).UTC()

	timeseriesRecords = []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), t0),
		recAt("/3303/0/5700", lwm2m.Float(22.9), t0.Add(30500*time.Millisecond)),
		recAt("/3303/0/5700", lwm2m.Float(24.1), t0.Add(60*time.Second)),
	}

	sendRecords = []lwm2m.Record{
		rec("/3/0/9", lwm2m.Int(87)),
		recAt("/3303/0/5700", lwm2m.Float(22.4), t0),
		rec("/3303/0/5701", lwm2m.String("Cel")),
	}

	objlnkRecords = []lwm2m.Record{
		rec("/65/0/0/0", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 0})),
		rec("/65/0/0/1", lwm2m.Objlnk(lwm2m.ObjLink{Object: 66, Instance: 1})),
		rec("/65/0/1", lwm2m.String("8613800755500")),
		rec("/65/0/2", lwm2m.Int(1)),
		rec("/66/0/0", lwm2m.String("myService1")),
		rec("/66/0/1", lwm2m.String("Internet.15.234")),
		rec("/66/0/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 67, Instance: 0})),
		rec("/66/1/0", lwm2m.String("myService2")),
		rec("/66/1/1", lwm2m.String("Internet.15.235")),
		rec("/66/1/2", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})),
		rec("/67/0/0", lwm2m.String("85.76.76.84")),
		rec("/67/0/1", lwm2m.String("85.76.255.255")),
	}
)

// goldenCase is a testdata file and the records it holds. When encoded is
// set the file is also exactly what the encoder writes for the records.
type goldenCase struct {
	file    string
	base    lwm2m.Path
	types   lwm2m.TypeFunc
	want    []lwm2m.Record
	encoded bool
}

var goldenCases = []goldenCase{
	// Read /3/0 (LwM2M 1.1 SenML examples).
	{file: "device", base: lwm2m.MustParsePath("/3/0"), types: testTypes, want: deviceRecords, encoded: true},
	// Read /3/0/7, a multiple-instance resource.
	{file: "resource-instances", base: lwm2m.MustParsePath("/3/0/7"), types: testTypes, encoded: true, want: []lwm2m.Record{
		rec("/3/0/7/0", lwm2m.Int(3800)),
		rec("/3/0/7/1", lwm2m.Int(5000)),
	}},
	// Read /3/0/0, a single resource.
	{file: "single-resource", base: lwm2m.MustParsePath("/3/0/0"), types: testTypes, encoded: true, want: deviceRecords[:1]},
	// Notify of /3303/0/5700 with a time series.
	{file: "timeseries", base: lwm2m.MustParsePath("/3303/0/5700"), types: testTypes, want: timeseriesRecords, encoded: true},
	// Send (POST /dp): full names below the root.
	{file: "send", base: lwm2m.Root, types: testTypes, want: sendRecords, encoded: true},
	// One resource of each type; the same file decodes without types to
	// the natural types.
	{file: "types", base: lwm2m.MustParsePath("/32769/0"), types: testTypes, want: typesRecords, encoded: true},
	{file: "types", base: lwm2m.MustParsePath("/32769"), types: nil, want: untyped(typesRecords)},
	// Objlnk resources across objects 65, 66 and 67 (LwM2M 1.1 example),
	// with a base name per instance.
	{file: "objlnk", base: lwm2m.Root, types: testTypes, want: objlnkRecords},
	// Relative times and base time carried forward.
	{file: "relative-times", base: lwm2m.MustParsePath("/3303/0"), types: testTypes, want: []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), testNow.Add(-60*time.Second)),
		recAt("/3303/0/5700", lwm2m.Float(22.9), testNow.Add(-50*time.Second)),
		recAt("/3303/0/5700", lwm2m.Float(24.1), testNow.Add(-29750*time.Millisecond)),
		recAt("/3303/0/5700", lwm2m.Float(24.3), testNow),
	}},
	// Base value added to v, version, units and unknown labels ignored.
	{file: "base-value", base: lwm2m.MustParsePath("/3303/0"), types: testTypes, want: []lwm2m.Record{
		rec("/3303/0/5700", lwm2m.Float(22.5)),
		rec("/3303/0/5601", lwm2m.Float(16.75)),
		rec("/3303/0/5701", lwm2m.String("Cel")),
		rec("/3303/0/5602", lwm2m.Float(25)),
	}},
	// Send with base names and base time changing along the pack.
	{file: "send-bn", base: lwm2m.Root, types: testTypes, want: []lwm2m.Record{
		recAt("/3303/0/5700", lwm2m.Float(22.4), t0),
		recAt("/3303/0/5700", lwm2m.Float(22.9), t0.Add(time.Minute)),
		recAt("/3303/0/5701", lwm2m.String("Cel"), t0),
		recAt("/3/0/9", lwm2m.Int(87), testNow),
		recAt("/3/0/13", lwm2m.TimeUnix(1700000120), testNow),
	}},
	// CBOR only: indefinite-length pack, half and single precision floats,
	// an integer for a float resource and a non-minimal integer label.
	{file: "indefinite", base: lwm2m.MustParsePath("/3303/0"), types: testTypes, want: []lwm2m.Record{
		rec("/3303/0/5700", lwm2m.Float(22.5)),
		rec("/3303/0/5601", lwm2m.Float(-3.25)),
		rec("/3303/0/5602", lwm2m.Float(25)),
	}},
}

// untyped is what a decoder without type information makes of rs.
func untyped(rs []lwm2m.Record) []lwm2m.Record {
	out := make([]lwm2m.Record, len(rs))
	for i, r := range rs {
		v := r.Value
		switch v.Type() {
		case lwm2m.TypeFloat:
			v = Number{kind: numFloat, f: v.FloatValue()}.natural()
		case lwm2m.TypeUnsigned:
			v = uintNum(v.UintValue()).natural()
		case lwm2m.TypeTime:
			v = lwm2m.Int(v.IntValue())
		case lwm2m.TypeCorelnk:
			v = lwm2m.String(v.StringValue())
		}
		out[i] = lwm2m.Record{Path: r.Path, Value: v, Time: r.Time}
	}
	return out
}

func TestGoldenJSON(t *testing.T) { testGolden(t, senmlJSON) }
func TestGoldenCBOR(t *testing.T) { testGolden(t, senmlCBOR) }

func testGolden(t *testing.T, f format) {
	for _, c := range goldenCases {
		name := c.file + f.ext
		if !exists(name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			data := readTestdata(t, name)
			got, err := f.decode(testOpts, data, c.base, c.types)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, c.want)
			if !c.encoded {
				return
			}
			enc, err := f.encode(c.base, c.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, data) {
				t.Errorf("encoded:\n got %s\nwant %s", f.show(enc), f.show(data))
			}
		})
	}
}

// Every golden case has at least one file, and every file a case.
func TestGoldenFilesUsed(t *testing.T) {
	used := map[string]bool{}
	for _, c := range goldenCases {
		n := 0
		for _, f := range []format{senmlJSON, senmlCBOR} {
			if exists(c.file + f.ext) {
				used[c.file+f.ext] = true
				n++
			}
		}
		if n == 0 {
			t.Errorf("no testdata file for case %s", c.file)
		}
	}
	for _, f := range []format{senmlJSON, senmlCBOR} {
		for _, name := range testdataFiles(t, f.ext) {
			if !used[name] && !strings.HasPrefix(name, "paths") {
				t.Errorf("testdata/%s is not used by a golden case", name)
			}
		}
	}
}

func exists(name string) bool {
	_, err := os.Stat(filepath.Join("testdata", name))
	return err == nil
}
