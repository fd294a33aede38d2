package senml

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// testNow is the "now" of every decode in the tests.
var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var testOpts = DecodeOptions{Now: testNow}

// testTypes knows the resources used in testdata: Device (3), Temperature
// (3303), the objlnk example objects 65-67 of the LwM2M specification, and a
// test object 32769 with one resource of each type.
func testTypes(p lwm2m.Path) (lwm2m.Type, bool) {
	if p.Depth() < 3 {
		return lwm2m.TypeNone, false
	}
	t, ok := resourceTypes[[2]uint16{p.Object(), p.Resource()}]
	return t, ok
}

var resourceTypes = map[[2]uint16]lwm2m.Type{
	{3, 0}: lwm2m.TypeString, {3, 1}: lwm2m.TypeString, {3, 2}: lwm2m.TypeString,
	{3, 3}: lwm2m.TypeString, {3, 6}: lwm2m.TypeInteger, {3, 7}: lwm2m.TypeInteger,
	{3, 8}: lwm2m.TypeInteger, {3, 9}: lwm2m.TypeInteger, {3, 10}: lwm2m.TypeInteger,
	{3, 11}: lwm2m.TypeInteger, {3, 13}: lwm2m.TypeTime, {3, 14}: lwm2m.TypeString,
	{3, 15}: lwm2m.TypeString, {3, 16}: lwm2m.TypeString, {3, 4}: lwm2m.TypeNone,

	{3303, 5700}: lwm2m.TypeFloat, {3303, 5701}: lwm2m.TypeString,
	{3303, 5601}: lwm2m.TypeFloat, {3303, 5602}: lwm2m.TypeFloat,
	{3303, 5603}: lwm2m.TypeFloat, {3303, 5604}: lwm2m.TypeFloat,
	{3303, 5750}: lwm2m.TypeString, {3303, 5518}: lwm2m.TypeTime,

	{65, 0}: lwm2m.TypeObjlnk, {65, 1}: lwm2m.TypeString, {65, 2}: lwm2m.TypeInteger,
	{66, 0}: lwm2m.TypeString, {66, 1}: lwm2m.TypeString, {66, 2}: lwm2m.TypeObjlnk,
	{67, 0}: lwm2m.TypeString, {67, 1}: lwm2m.TypeString,

	{32769, 0}: lwm2m.TypeInteger, {32769, 1}: lwm2m.TypeUnsigned,
	{32769, 2}: lwm2m.TypeFloat, {32769, 3}: lwm2m.TypeString,
	{32769, 4}: lwm2m.TypeBoolean, {32769, 5}: lwm2m.TypeOpaque,
	{32769, 6}: lwm2m.TypeTime, {32769, 7}: lwm2m.TypeObjlnk,
	{32769, 8}: lwm2m.TypeCorelnk,
}

// format is one of the two SenML formats under test, so that one test body
// serves both.
type format struct {
	media       lwm2m.MediaType
	ext         string // of its testdata files
	json        bool
	decode      func(DecodeOptions, []byte, lwm2m.Path, lwm2m.TypeFunc) ([]lwm2m.Record, error)
	encode      func(lwm2m.Path, []lwm2m.Record) ([]byte, error)
	decodePaths func([]byte) ([]lwm2m.Path, error)
}

var (
	senmlJSON = format{lwm2m.FormatSenMLJSON, ".json", true, DecodeOptions.DecodeJSON, EncodeJSON, DecodePathsJSON}
	senmlCBOR = format{lwm2m.FormatSenMLCBOR, ".cbor.hex", false, DecodeOptions.DecodeCBOR, EncodeCBOR, DecodePathsCBOR}
)

// input is test input written as text: JSON as is, CBOR as hex (see unhex).
func (f format) input(t testing.TB, s string) []byte {
	if f.json {
		return []byte(s)
	}
	return unhex(t, s)
}

// show formats encoded data for messages: JSON as text, CBOR as hex.
func (f format) show(b []byte) string {
	if f.json {
		return string(b)
	}
	return hex.EncodeToString(b)
}

func rec(path string, v lwm2m.Value) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v}
}

func recAt(path string, v lwm2m.Value, t time.Time) lwm2m.Record {
	return lwm2m.Record{Path: lwm2m.MustParsePath(path), Value: v, Time: t}
}

// readTestdata returns a file of testdata/; files ending in .hex hold hex
// digits with whitespace and '#' comment lines, and are returned decoded.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, ".hex") {
		return b
	}
	return unhex(t, string(b))
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.Lines(s) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			digits.WriteString(f)
		}
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

// testdataFiles lists testdata files with the given suffix.
func testdataFiles(t testing.TB, suffix string) []string {
	t.Helper()
	ents, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// sameRecords compares record lists: paths, values (bitwise for floats)
// and times.
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
