package lwm2m

import (
	"errors"
	"fmt"
	"strconv"
)

// MediaType is a CoAP Content-Format number.
type MediaType uint16

// The content formats LwM2M uses (LwM2M 1.1 §7, 1.2 §7).
const (
	FormatText       MediaType = 0
	FormatLinkFormat MediaType = 40
	FormatOpaque     MediaType = 42
	FormatCBOR       MediaType = 60
	FormatSenMLJSON  MediaType = 110
	FormatSenMLCBOR  MediaType = 112
	FormatTLV        MediaType = 11542
	FormatJSON       MediaType = 11543 // OMA-LwM2M-JSON (LwM2M 1.0)
	FormatLwM2MCBOR  MediaType = 11544 // LwM2M 1.2
)

var formatNames = map[MediaType]string{
	FormatText:       "text/plain",
	FormatLinkFormat: "application/link-format",
	FormatOpaque:     "application/octet-stream",
	FormatCBOR:       "application/cbor",
	FormatSenMLJSON:  "application/senml+json",
	FormatSenMLCBOR:  "application/senml+cbor",
	FormatTLV:        "application/vnd.oma.lwm2m+tlv",
	FormatJSON:       "application/vnd.oma.lwm2m+json",
	FormatLwM2MCBOR:  "application/vnd.oma.lwm2m+cbor",
}

// String returns the media type name, or the number for an unknown format.
func (m MediaType) String() string {
	if n, ok := formatNames[m]; ok {
		return n
	}
	return "content-format " + strconv.Itoa(int(m))
}

// Known reports whether m is one of the formats above.
func (m MediaType) Known() bool { _, ok := formatNames[m]; return ok }

// ErrSyntax is wrapped by every DecodeError, so callers can test
// errors.Is(err, lwm2m.ErrSyntax) to tell bad device input from other errors.
var ErrSyntax = errors.New("malformed content")

// DecodeError reports bad input to a decoder: which format, where in the
// input (byte offset, or record index for record-oriented formats) and which
// field. Decoders return *DecodeError for every malformed input.
type DecodeError struct {
	Format MediaType
	Offset int    // byte offset of the bad element in the input, -1 if unknown
	Field  string // the element that is wrong, e.g. "length", "bn", "<"
	Msg    string
}

func (e *DecodeError) Error() string {
	s := e.Format.String() + ": "
	if e.Offset >= 0 {
		s += "offset " + strconv.Itoa(e.Offset) + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

func (e *DecodeError) Unwrap() error { return ErrSyntax }

// Errorf builds a *DecodeError; codecs use it for every syntax error.
func Errorf(f MediaType, offset int, field, format string, args ...any) *DecodeError {
	return &DecodeError{Format: f, Offset: offset, Field: field, Msg: fmt.Sprintf(format, args...)}
}
