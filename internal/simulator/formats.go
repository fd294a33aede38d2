package simulator

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/cborvalue"
	"github.com/flownexus/flownexus/internal/lwm2m/lwm2mcbor"
	"github.com/flownexus/flownexus/internal/lwm2m/omajson"
	"github.com/flownexus/flownexus/internal/lwm2m/opaque"
	"github.com/flownexus/flownexus/internal/lwm2m/plaintext"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
	"github.com/flownexus/flownexus/internal/lwm2m/tlv"
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

// singleValueFormat reports whether f carries exactly one resource value.
func singleValueFormat(f lwm2m.MediaType) bool {
	return f == lwm2m.FormatText || f == lwm2m.FormatOpaque || f == lwm2m.FormatCBOR
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

// encode writes records read at base in format f. Single-value formats
// need exactly one record.
func encode(f lwm2m.MediaType, base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	if singleValueFormat(f) {
		if len(rs) != 1 {
			return nil, statusf(codes.NotAcceptable, "%v carries one value, not %d", f, len(rs))
		}
		switch f {
		case lwm2m.FormatText:
			return plaintext.Encode(rs[0].Value)
		case lwm2m.FormatOpaque:
			return opaque.Encode(rs[0].Value)
		default:
			return cborvalue.Encode(rs[0].Value)
		}
	}
	switch f {
	case lwm2m.FormatTLV:
		return tlv.Encode(base, rs)
	case lwm2m.FormatSenMLJSON:
		return senml.EncodeJSON(base, rs)
	case lwm2m.FormatSenMLCBOR:
		return senml.EncodeCBOR(base, rs)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Encode(base, rs)
	case lwm2m.FormatJSON:
		return omajson.Encode(base, rs)
	}
	return nil, statusf(codes.NotAcceptable, "format %v not supported", f)
}

// decode reads the payload of a write to base in format f, typing values
// with types. Relative SenML times count from now.
func decode(f lwm2m.MediaType, data []byte, base lwm2m.Path, types lwm2m.TypeFunc, now time.Time) ([]lwm2m.Record, error) {
	if singleValueFormat(f) {
		if base.Depth() < 3 {
			return nil, statusf(codes.BadRequest, "%v carries one resource value, not %s", f, base)
		}
		var v lwm2m.Value
		var err error
		switch f {
		case lwm2m.FormatOpaque:
			v, err = opaque.Decode(data)
		default:
			t, ok := types.Lookup(base)
			if !ok {
				return nil, statusf(codes.NotFound, "resource %s unknown", base)
			}
			if f == lwm2m.FormatText {
				v, err = plaintext.Decode(data, t)
			} else {
				v, err = cborvalue.Decode(data, t)
			}
		}
		if err != nil {
			return nil, err
		}
		return []lwm2m.Record{{Path: base, Value: v}}, nil
	}
	switch f {
	case lwm2m.FormatTLV:
		return tlv.Decode(data, base, types)
	case lwm2m.FormatSenMLJSON:
		return senml.DecodeOptions{Now: now}.DecodeJSON(data, base, types)
	case lwm2m.FormatSenMLCBOR:
		return senml.DecodeOptions{Now: now}.DecodeCBOR(data, base, types)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Decode(data, base, types)
	case lwm2m.FormatJSON:
		return omajson.Decode(data, base, types)
	}
	return nil, statusf(codes.UnsupportedMediaType, "format %v not supported", f)
}

// decodePaths reads the path list of a Read- or Observe-Composite request.
func decodePaths(f lwm2m.MediaType, data []byte) ([]lwm2m.Path, error) {
	var paths []lwm2m.Path
	var err error
	switch f {
	case lwm2m.FormatSenMLJSON:
		paths, err = senml.DecodePathsJSON(data)
	case lwm2m.FormatSenMLCBOR:
		paths, err = senml.DecodePathsCBOR(data)
	default:
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
