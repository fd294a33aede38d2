package opaque

import (
	"fmt"
	"slices"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Decode returns data as an lwm2m.Opaque value. Every byte sequence is a
// valid payload, the empty one included, so the error is always nil; it is
// there so that Decode has the shape of the other codecs. The value holds a
// copy of data, which may be reused after Decode returns.
func Decode(data []byte) (lwm2m.Value, error) {
	return lwm2m.Opaque(slices.Clone(data)), nil
}

// Encode returns the bytes of an opaque value. The slice is v's own storage
// and must not be modified. Values of any other type are an error: the
// format carries opaque values only.
func Encode(v lwm2m.Value) ([]byte, error) {
	if v.Type() != lwm2m.TypeOpaque {
		return nil, fmt.Errorf("opaque: cannot encode a %s value as %s", v.Type(), lwm2m.FormatOpaque)
	}
	b := v.Opaque()
	if b == nil {
		b = []byte{}
	}
	return b, nil
}
