package senml

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var composePaths = []lwm2m.Path{
	lwm2m.MustParsePath("/3/0/1"),
	lwm2m.MustParsePath("/1/0"),
	lwm2m.MustParsePath("/3303"),
	lwm2m.MustParsePath("/3/0/7/1"),
}

func TestPathsGolden(t *testing.T) {
	data := readTestdata(t, "paths.json")
	got, err := DecodePathsJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, composePaths) {
		t.Errorf("DecodePathsJSON = %v, want %v", got, composePaths)
	}
	enc, err := EncodePathsJSON(composePaths)
	if err != nil || !bytes.Equal(enc, data) {
		t.Errorf("EncodePathsJSON = %s, %v; want %s", enc, err, data)
	}

	data = readTestdata(t, "paths.cbor.hex")
	got, err = DecodePathsCBOR(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, composePaths) {
		t.Errorf("DecodePathsCBOR = %v, want %v", got, composePaths)
	}
	enc, err = EncodePathsCBOR(composePaths)
	if err != nil || !bytes.Equal(enc, data) {
		t.Errorf("EncodePathsCBOR = %x, %v; want %x", enc, err, data)
	}
}

func TestPathsBaseNames(t *testing.T) {
	got, err := DecodePathsJSON(readTestdata(t, "paths-bn.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []lwm2m.Path{
		lwm2m.MustParsePath("/3/0/1"),
		lwm2m.MustParsePath("/3/0/2"),
		lwm2m.MustParsePath("/3/0/7/0"),
		lwm2m.MustParsePath("/1/0"),
		lwm2m.MustParsePath("/3303"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPathsErrors(t *testing.T) {
	cases := []struct {
		in     string
		offset int
		field  string
	}{
		{`{"n":"/3"}`, -1, ""},
		{`[{"n":"/3/0/1","v":1}]`, 0, "v"},
		{`[{"n":"/3"},{"n":"/3/0/1","vs":"x"}]`, 1, "vs"},
		{`[{"n":"/3"},{}]`, 1, "n"},
		{`[{"n":"3/x"}]`, 0, "n"},
		{`[{"n":"/3/0/1/2/3"}]`, 0, "n"},
		{`[{"bn":"3/0/","n":"1"}]`, 0, "bn"},
		{`[{"n":5}]`, 0, "n"},
	}
	for _, c := range cases {
		_, err := DecodePathsJSON([]byte(c.in))
		checkDecodeError(t, c.in, err, lwm2m.FormatSenMLJSON, c.offset, c.field)
	}
	// The same checks hold for CBOR: a value and a missing name.
	for _, c := range []struct {
		hex    string
		offset int
		field  string
	}{
		{"81a200662f332f302f310201", 0, "v"}, // [{0: "/3/0/1", 2: 1}]
		{"82a100622f33a0", 1, "n"},           // [{0: "/3"}, {}]
		{"a0", -1, ""},                       // {}
	} {
		_, err := DecodePathsCBOR(unhex(t, c.hex))
		checkDecodeError(t, c.hex, err, lwm2m.FormatSenMLCBOR, c.offset, c.field)
	}
}

// checkDecodeError requires err to be a *lwm2m.DecodeError of the given
// format, offset and field.
func checkDecodeError(t *testing.T, in string, err error, f lwm2m.MediaType, offset int, field string) {
	t.Helper()
	var de *lwm2m.DecodeError
	if !errors.As(err, &de) {
		t.Errorf("%s: error %v (%T) is not a *lwm2m.DecodeError", in, err, err)
		return
	}
	if !errors.Is(err, lwm2m.ErrSyntax) {
		t.Errorf("%s: error %v does not wrap lwm2m.ErrSyntax", in, err)
	}
	if de.Format != f || de.Offset != offset || de.Field != field {
		t.Errorf("%s: got format %d offset %d field %q (%v), want %d %d %q", in, de.Format, de.Offset, de.Field, err, f, offset, field)
	}
}
