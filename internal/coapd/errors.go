package coapd

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/registry"
)

// Domain errors of the device-facing handlers. Handlers wrap them with
// details; codeFor maps them to CoAP codes.
var (
	errBadRequest  = errors.New("bad request")
	errForbidden   = errors.New("not allowed")
	errVersion     = errors.New("unsupported LwM2M version")
	errFormat      = errors.New("unsupported content format")
	errNotFound    = errors.New("not found")
	errMethod      = errors.New("method not allowed")
	errUnavailable = errors.New("server shutting down")
)

// codeFor maps a handler error to the CoAP response code and a short
// diagnostic payload. It is the only place where that mapping is made.
func codeFor(err error) (codes.Code, string) {
	var de *lwm2m.DecodeError
	switch {
	case errors.Is(err, errBadRequest):
		return codes.BadRequest, diag(err)
	case errors.As(err, &de):
		return codes.BadRequest, diag(de)
	case errors.Is(err, lwm2m.ErrSyntax):
		return codes.BadRequest, diag(err)
	case errors.Is(err, errForbidden):
		return codes.Forbidden, "not registered"
	case errors.Is(err, errDenied):
		return codes.Forbidden, "forbidden"
	case errors.Is(err, errUnknown):
		return codes.Forbidden, "unknown endpoint"
	case errors.Is(err, errVersion):
		return codes.PreconditionFailed, diag(err)
	case errors.Is(err, errFormat), errors.Is(err, codec.ErrUnsupportedFormat):
		return codes.UnsupportedMediaType, ""
	case errors.Is(err, errNotFound), errors.Is(err, registry.ErrNotFound):
		return codes.NotFound, ""
	case errors.Is(err, errMethod):
		return codes.MethodNotAllowed, ""
	case errors.Is(err, errUnavailable), errors.Is(err, ingest.ErrClosed):
		return codes.ServiceUnavailable, ""
	}
	return codes.InternalServerError, ""
}

// codeString formats a CoAP code the way RFC 7252 writes it: "4.04".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}

// diag shortens an error message for a diagnostic payload.
func diag(err error) string {
	s := err.Error()
	const max = 120
	if len(s) > max {
		s = s[:max]
	}
	return s
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
}
