package devmgmt

import (
	"fmt"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/cborvalue"
	"github.com/flownexus/flownexus/internal/lwm2m/lwm2mcbor"
	"github.com/flownexus/flownexus/internal/lwm2m/omajson"
	"github.com/flownexus/flownexus/internal/lwm2m/opaque"
	"github.com/flownexus/flownexus/internal/lwm2m/plaintext"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
	"github.com/flownexus/flownexus/internal/lwm2m/tlv"
)

// Decode decodes a payload of content format f that answers a request on
// base (a notification, a Read response, a Send with base lwm2m.Root),
// typing values with types. text/plain and opaque payloads carry one value
// and need a resource or resource-instance base. Malformed payloads give
// the codec's *lwm2m.DecodeError; a format not handled here an error
// matching ErrUnsupportedFormat.
func Decode(f lwm2m.MediaType, data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	switch f {
	case lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR:
		if base.Depth() < 3 {
			return nil, lwm2m.Errorf(f, -1, "", "a single value cannot answer for %s", base)
		}
		var v lwm2m.Value
		var err error
		t, _ := types.Lookup(base)
		switch f {
		case lwm2m.FormatOpaque:
			v, err = opaque.Decode(data)
		case lwm2m.FormatCBOR:
			v, err = cborvalue.Decode(data, t)
		default:
			v, err = plaintext.Decode(data, t)
		}
		if err != nil {
			return nil, err
		}
		return []lwm2m.Record{{Path: base, Value: v}}, nil
	case lwm2m.FormatTLV:
		if base.IsRoot() {
			return nil, lwm2m.Errorf(f, -1, "", "TLV cannot answer for the root path")
		}
		return tlv.Decode(data, base, types)
	case lwm2m.FormatSenMLJSON:
		return senml.DecodeJSON(data, base, types)
	case lwm2m.FormatSenMLCBOR:
		return senml.DecodeCBOR(data, base, types)
	case lwm2m.FormatJSON:
		return omajson.Decode(data, base, types)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Decode(data, base, types)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedFormat, f)
}

// Encode encodes records written to base in content format f. text/plain
// and opaque take exactly one record at base.
func Encode(f lwm2m.MediaType, base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	switch f {
	case lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR:
		if len(rs) != 1 || rs[0].Path != base {
			return nil, fmt.Errorf("%w: %s carries exactly one value of %s", ErrInvalid, f, base)
		}
		switch f {
		case lwm2m.FormatOpaque:
			return opaque.Encode(rs[0].Value)
		case lwm2m.FormatCBOR:
			return cborvalue.Encode(rs[0].Value)
		}
		return plaintext.Encode(rs[0].Value)
	case lwm2m.FormatTLV:
		return tlv.Encode(base, rs)
	case lwm2m.FormatSenMLJSON:
		return senml.EncodeJSON(base, rs)
	case lwm2m.FormatSenMLCBOR:
		return senml.EncodeCBOR(base, rs)
	case lwm2m.FormatJSON:
		return omajson.Encode(base, rs)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Encode(base, rs)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedFormat, f)
}

// Supported reports whether Decode handles f.
func Supported(f lwm2m.MediaType) bool {
	switch f {
	case lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatTLV, lwm2m.FormatSenMLJSON,
		lwm2m.FormatSenMLCBOR, lwm2m.FormatJSON, lwm2m.FormatLwM2MCBOR:
		return true
	}
	return false
}

// encodePaths encodes the path list of a Read-Composite or
// Observe-Composite request.
func encodePaths(f lwm2m.MediaType, paths []lwm2m.Path) ([]byte, error) {
	if f == lwm2m.FormatSenMLJSON {
		return senml.EncodePathsJSON(paths)
	}
	return senml.EncodePathsCBOR(paths)
}
