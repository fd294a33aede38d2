package devmgmt

import (
	"errors"
	"fmt"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
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
	// ErrVersion is matched when the operation needs a later LwM2M
	// version than the one the device registered with: a composite
	// operation (Read-, Write-, Observe-Composite and its Cancel) or a
	// path to a resource instance on a LwM2M 1.0 device. Nothing was sent;
	// sending it again to the same registration cannot succeed. The
	// message names both versions.
	ErrVersion = errors.New("devmgmt: not supported by the device's LwM2M version")
)

// requireVersion returns an error matching ErrVersion when reg's LwM2M
// version is below what the operation op needs: 1.1 for a composite
// operation and for a resource-instance path (LwM2M 1.0 addresses
// resources at most), 1.0 for anything else.
func requireVersion(reg registry.Registration, op string, composite bool, paths ...lwm2m.Path) error {
	need := lwm2m.V1_0
	if composite || slices.ContainsFunc(paths, lwm2m.Path.IsResourceInstance) {
		need = lwm2m.V1_1
	}
	if need == lwm2m.V1_0 || reg.Version.AtLeast(need) {
		return nil
	}
	have := reg.Version
	if have == "" {
		have = lwm2m.V1_0 // an absent lwm2m= parameter means 1.0
	}
	what := op
	if !composite && len(paths) > 0 {
		what += " of " + paths[0].String()
	}
	return fmt.Errorf("%w: %s needs LwM2M %s or later; %q registered with LwM2M %s", ErrVersion, what, need, reg.Endpoint, have)
}

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
