package linkformat

import (
	"errors"
	"reflect"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// addSeeds adds every testdata payload and a few malformed ones.
func addSeeds(f *testing.F) {
	for _, dir := range []string{"registration", "discover"} {
		for _, data := range testdataFiles(f, dir) {
			f.Add(data)
		}
	}
	for _, s := range []string{"", "<", "</3/0", `</>;rt="`, "</1/0>,", "</65535/0>", `</3>;ver=1.1,</3>;ver=1.2`, "</3/0/1>"} {
		f.Add([]byte(s))
	}
}

// checkError fails unless err is nil or a link-format *lwm2m.DecodeError
// pointing inside the input.
func checkError(t *testing.T, data []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *lwm2m.DecodeError
	if !errors.As(err, &de) || de.Format != lwm2m.FormatLinkFormat {
		t.Fatalf("error %v (%T) is not a link-format DecodeError", err, err)
	}
	if de.Offset < 0 || de.Offset > len(data) {
		t.Fatalf("error %v: offset %d outside input of %d bytes", err, de.Offset, len(data))
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := Parse(data)
		checkError(t, data, err)
		if err != nil {
			return
		}
		again, err := Parse(Format(links))
		if err != nil {
			t.Fatalf("Parse(Format(%q)): %v", data, err)
		}
		if !reflect.DeepEqual(again, links) {
			t.Fatalf("round trip of %q\n got %#v\nwant %#v", data, again, links)
		}
	})
}

func FuzzParseRegistration(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := ParseRegistration(data)
		checkError(t, data, err)
		if err != nil {
			return
		}
		text := FormatRegistration(reg)
		again, err := ParseRegistration(text)
		if err != nil {
			t.Fatalf("ParseRegistration(FormatRegistration(%q)) = %v; text %q", data, err, text)
		}
		if !reflect.DeepEqual(again, reg) {
			t.Fatalf("round trip of %q via %q\n got %+v\nwant %+v", data, text, again, reg)
		}
	})
}

func FuzzParseDiscover(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := ParseDiscover(data)
		checkError(t, data, err)
		if err != nil {
			return
		}
		text := FormatDiscover(links)
		again, err := ParseDiscover(text)
		if err != nil {
			t.Fatalf("ParseDiscover(FormatDiscover(%q)) = %v; text %q", data, err, text)
		}
		if !reflect.DeepEqual(again, links) {
			t.Fatalf("round trip of %q via %q", data, text)
		}
	})
}
