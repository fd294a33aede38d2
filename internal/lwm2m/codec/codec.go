// Package codec picks the content-format codec for a CoAP Content-Format
// number: it decodes and encodes LwM2M payloads of every format the
// project speaks, and the path lists of composite requests. It is pure
// (bytes in, records out) like the codecs it dispatches to; server and
// simulator both use it, so a format is added in one place.
package codec

import (
	"errors"
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/cborvalue"
	"github.com/flownexus/flownexus/internal/lwm2m/lwm2mcbor"
	"github.com/flownexus/flownexus/internal/lwm2m/omajson"
	"github.com/flownexus/flownexus/internal/lwm2m/opaque"
	"github.com/flownexus/flownexus/internal/lwm2m/plaintext"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
	"github.com/flownexus/flownexus/internal/lwm2m/tlv"
)

// ErrUnsupportedFormat is matched for a content format no codec handles.
var ErrUnsupportedFormat = errors.New("unsupported content format")

// ErrSingleValue is matched when Encode is asked to put other than one
// value into a single-value format (text/plain, opaque, CBOR).
var ErrSingleValue = errors.New("a single-value format carries exactly one resource value")

// Supported reports whether Decode and Encode handle f.
func Supported(f lwm2m.MediaType) bool {
	switch f {
	case lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatTLV, lwm2m.FormatSenMLJSON,
		lwm2m.FormatSenMLCBOR, lwm2m.FormatJSON, lwm2m.FormatLwM2MCBOR:
		return true
	}
	return false
}

// SingleValue reports whether f carries exactly one resource value.
func SingleValue(f lwm2m.MediaType) bool {
	return f == lwm2m.FormatText || f == lwm2m.FormatOpaque || f == lwm2m.FormatCBOR
}

// Options tune decoding. The zero value is ready to use.
type Options struct {
	// Now is the time relative SenML times count from; zero means
	// time.Now().
	Now time.Time
}

// Decode is Options{}.Decode.
func Decode(f lwm2m.MediaType, data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	return Options{}.Decode(f, data, base, types)
}

// Decode decodes a payload of format f about base (the path read,
// observed or written; lwm2m.Root for a Send or a composite payload),
// typing values with types. Single-value formats need a resource or
// resource-instance base. Malformed payloads give the codec's
// *lwm2m.DecodeError (so does a single-value payload for a shallower
// base); an unknown format matches ErrUnsupportedFormat.
func (o Options) Decode(f lwm2m.MediaType, data []byte, base lwm2m.Path, types lwm2m.TypeFunc) ([]lwm2m.Record, error) {
	if SingleValue(f) {
		if base.Depth() < 3 {
			return nil, lwm2m.Errorf(f, -1, "", "a single value cannot answer for %s", base)
		}
		t, _ := types.Lookup(base)
		var v lwm2m.Value
		var err error
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
	}
	switch f {
	case lwm2m.FormatTLV:
		if base.IsRoot() {
			return nil, lwm2m.Errorf(f, -1, "", "TLV cannot carry values for the root path")
		}
		return tlv.Decode(data, base, types)
	case lwm2m.FormatSenMLJSON:
		return senml.DecodeOptions{Now: o.Now}.DecodeJSON(data, base, types)
	case lwm2m.FormatSenMLCBOR:
		return senml.DecodeOptions{Now: o.Now}.DecodeCBOR(data, base, types)
	case lwm2m.FormatJSON:
		return omajson.DecodeOptions{Now: o.Now}.Decode(data, base, types)
	case lwm2m.FormatLwM2MCBOR:
		return lwm2mcbor.Decode(data, base, types)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedFormat, f)
}

// Encode encodes records about base in format f. Single-value formats
// take exactly one record.
func Encode(f lwm2m.MediaType, base lwm2m.Path, rs []lwm2m.Record) ([]byte, error) {
	if SingleValue(f) {
		if len(rs) != 1 {
			return nil, fmt.Errorf("%w: %s, not %d values", ErrSingleValue, f, len(rs))
		}
		switch f {
		case lwm2m.FormatOpaque:
			return opaque.Encode(rs[0].Value)
		case lwm2m.FormatCBOR:
			return cborvalue.Encode(rs[0].Value)
		}
		return plaintext.Encode(rs[0].Value)
	}
	switch f {
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

// EncodePaths encodes the path list of a Read-Composite or
// Observe-Composite request (SenML-JSON or SenML-CBOR).
func EncodePaths(f lwm2m.MediaType, paths []lwm2m.Path) ([]byte, error) {
	switch f {
	case lwm2m.FormatSenMLJSON:
		return senml.EncodePathsJSON(paths)
	case lwm2m.FormatSenMLCBOR:
		return senml.EncodePathsCBOR(paths)
	}
	return nil, fmt.Errorf("%w: %s for a path list", ErrUnsupportedFormat, f)
}

// DecodePaths decodes the path list of a composite request.
func DecodePaths(f lwm2m.MediaType, data []byte) ([]lwm2m.Path, error) {
	switch f {
	case lwm2m.FormatSenMLJSON:
		return senml.DecodePathsJSON(data)
	case lwm2m.FormatSenMLCBOR:
		return senml.DecodePathsCBOR(data)
	}
	return nil, fmt.Errorf("%w: %s for a path list", ErrUnsupportedFormat, f)
}
