package simulator

import (
	"errors"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
)

// formatSupported reports whether a client of version v reads and writes
// format f. LwM2M 1.0 clients know text, opaque, TLV and OMA-JSON (and
// link-format); 1.1 adds CBOR, SenML-JSON and SenML-CBOR. The simulator
// also speaks LwM2M-CBOR (a 1.2 format) from 1.1 on, so servers can test it
// without a 1.2 client.
func formatSupported(f lwm2m.MediaType, v lwm2m.Version) bool {
	switch f {
	case lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatTLV, lwm2m.FormatJSON, lwm2m.FormatLinkFormat:
		return true
	case lwm2m.FormatCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR:
		return v.AtLeast(lwm2m.V1_1)
	}
	return false
}

// compositeFormat reports whether f may carry composite operations for
// version v: SenML in 1.1, LwM2M-CBOR too in 1.2.
func compositeFormat(f lwm2m.MediaType, v lwm2m.Version) bool {
	switch f {
	case lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR:
		return v.AtLeast(lwm2m.V1_1)
	}
	return false
}

// encode writes records read at base in format f, answering 4.06 for a
// format the device does not produce or a single-value format asked for
// several values.
func encode(f lwm2m.MediaType, base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	b, err := codec.Encode(f, base, rs)
	switch {
	case errors.Is(err, codec.ErrSingleValue):
		return nil, statusf(codes.NotAcceptable, "%v carries one value, not %d", f, len(rs))
	case errors.Is(err, codec.ErrUnsupportedFormat):
		return nil, statusf(codes.NotAcceptable, "format %v not supported", f)
	}
	return b, err
}

// decode reads the payload of a write to base in format f, typing values
// with types. Relative SenML times count from now. A single value for a
// resource the device lacks is 4.04; an unknown format 4.15.
func decode(f lwm2m.MediaType, data []byte, base lwm2m.Path, types lwm2m.TypeFunc, now time.Time) ([]lwm2m.Record, error) {
	if codec.SingleValue(f) && f != lwm2m.FormatOpaque && base.Depth() >= 3 {
		if _, ok := types.Lookup(base); !ok {
			return nil, statusf(codes.NotFound, "resource %s unknown", base)
		}
	}
	recs, err := codec.Options{Now: now}.Decode(f, data, base, types)
	if errors.Is(err, codec.ErrUnsupportedFormat) {
		return nil, statusf(codes.UnsupportedMediaType, "format %v not supported", f)
	}
	return recs, err
}

// decodePaths reads the path list of a Read- or Observe-Composite request.
func decodePaths(f lwm2m.MediaType, data []byte) ([]lwm2m.Path, error) {
	paths, err := codec.DecodePaths(f, data)
	if errors.Is(err, codec.ErrUnsupportedFormat) {
		return nil, statusf(codes.UnsupportedMediaType, "format %v not supported", f)
	}
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, statusf(codes.BadRequest, "no paths")
	}
	return paths, nil
}
