package senml

import (
	"errors"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func FuzzDecodeJSON(f *testing.F) { fuzzDecode(f, senmlJSON) }
func FuzzDecodeCBOR(f *testing.F) { fuzzDecode(f, senmlCBOR) }

// fuzzDecode checks that any input decodes to resource records or a
// *lwm2m.DecodeError, and that what decodes, encoded again, decodes to the
// same records.
func fuzzDecode(f *testing.F, form format) {
	for _, name := range testdataFiles(f, form.ext) {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFuzzPaths(t, data, form.decodePaths)
		for _, types := range []lwm2m.TypeFunc{nil, testTypes} {
			rs, err := form.decode(testOpts, data, lwm2m.Root, types)
			if !checkFuzzResult(t, rs, err) {
				continue
			}
			b, err := form.encode(lwm2m.Root, rs)
			if err != nil {
				continue // times before 1978 cannot be written back
			}
			checkReDecode(t, b, rs, form)
		}
	})
}

func checkFuzzPaths(t *testing.T, data []byte, decode func([]byte) ([]lwm2m.Path, error)) {
	if _, err := decode(data); err != nil {
		var de *lwm2m.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("path list error %v is %T, not *lwm2m.DecodeError", err, err)
		}
	}
}

// checkFuzzResult checks a decode outcome and reports whether it succeeded.
func checkFuzzResult(t *testing.T, rs []lwm2m.Record, err error) bool {
	if err != nil {
		var de *lwm2m.DecodeError
		if !errors.As(err, &de) || !errors.Is(err, lwm2m.ErrSyntax) {
			t.Fatalf("error %v is %T, not *lwm2m.DecodeError", err, err)
		}
		return false
	}
	for _, r := range rs {
		if d := r.Path.Depth(); d != 3 && d != 4 {
			t.Fatalf("record path %s is not a resource", r.Path)
		}
		if r.Value.Type() == lwm2m.TypeNone {
			t.Fatalf("record %s has no value", r.Path)
		}
	}
	return true
}

// checkReDecode decodes an encoding of rs with rs's own types and compares.
// Times beyond 2^32 seconds may move by float64 rounding.
func checkReDecode(t *testing.T, b []byte, rs []lwm2m.Record, f format) {
	types := map[lwm2m.Path]lwm2m.Type{}
	for _, r := range rs {
		if old, ok := types[r.Path]; ok && old != r.Value.Type() {
			return // a path with values of two types cannot be retyped
		}
		types[r.Path] = r.Value.Type()
	}
	got, err := f.decode(testOpts, b, lwm2m.Root, func(p lwm2m.Path) (lwm2m.Type, bool) {
		typ, ok := types[p]
		return typ, ok
	})
	if err != nil {
		t.Fatalf("re-decoding %q: %v", b, err)
	}
	if len(got) != len(rs) {
		t.Fatalf("re-decoded %d records, want %d", len(got), len(rs))
	}
	for i := range got {
		g, w := got[i], rs[i]
		if g.Path != w.Path || !g.Value.Equal(w.Value) {
			t.Fatalf("record %d: re-decoded %s %#v, want %s %#v", i, g.Path, g.Value, w.Path, w.Value)
		}
		d := g.Time.Sub(w.Time).Abs()
		if w.Time.Unix() < 1<<32 && d != 0 || d > time.Millisecond {
			t.Fatalf("record %d: re-decoded time %v, want %v", i, g.Time, w.Time)
		}
	}
}
