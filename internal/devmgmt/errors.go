package devmgmt

import (
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

var (
	// ErrOffline is matched when the endpoint has no live registration.
	ErrOffline = errors.New("devmgmt: endpoint is not registered")
	// ErrTimeout is matched when the device did not answer in time.
	ErrTimeout = errors.New("devmgmt: device did not answer in time")
	// ErrBadResponse is matched when the device's answer could not be
	// used: an unsupported content format or a payload that fails to
	// decode (then lwm2m.ErrSyntax matches too).
	ErrBadResponse = errors.New("devmgmt: unusable response")
	// ErrInvalid is matched when the operation's arguments are wrong
	// (a path of the wrong depth, no values to write, ...).
	ErrInvalid = errors.New("devmgmt: invalid operation")
	// ErrNoObservation is matched by Cancel when no observation of the
	// path is held.
	ErrNoObservation = errors.New("devmgmt: no such observation")
)

// CoAPError is the failure of an operation the device answered with a CoAP
// error code (4.xx or 5.xx).
type CoAPError struct {
	Op         string // "read", "write", ...
	Endpoint   string
	Path       string
	Code       codes.Code
	Diagnostic string // the response payload, if any (diagnostic text)
}

func (e *CoAPError) Error() string {
	s := fmt.Sprintf("devmgmt: %s %s on %q: device answered %s %s", e.Op, e.Path, e.Endpoint, CodeString(e.Code), e.Code)
	if e.Diagnostic != "" {
		s += ": " + e.Diagnostic
	}
	return s
}

// CodeString formats a CoAP code as "4.04".
func CodeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}
