package jobs

import (
	"context"
	"errors"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// verdict is what one attempt's outcome means for the operation.
type verdict uint8

const (
	// confirmed: the device answered with success.
	confirmed verdict = iota + 1
	// retry: the attempt counts; the operation goes back to QUEUED (FAILED
	// when it was the last attempt) and its next attempt waits for the
	// device's next wake. The rest of the device's queue waits behind it.
	retry
	// fail: the attempt counts and the operation is FAILED at once:
	// sending the same request again cannot succeed.
	fail
	// reject: the request never left the server and never can (it does
	// not fit the device): FAILED at once, no attempt counted.
	reject
	// notSent: the device went offline between the check and the send:
	// nothing was sent, nothing counts, the operation stays QUEUED.
	notSent
)

func (v verdict) String() string {
	switch v {
	case confirmed:
		return "confirmed"
	case retry:
		return "retry"
	case fail:
		return "fail"
	case reject:
		return "reject"
	case notSent:
		return "not sent"
	}
	return "verdict(?)"
}

// retriedClientErrors are the 4.xx answers that are retried; every other
// 4.xx fails the operation at once. permanentServerErrors are the 5.xx
// answers that fail it at once; every other 5.xx is retried. The package
// documentation has the table and the reasons.
var retriedClientErrors = map[codes.Code]bool{
	codes.RequestEntityIncomplete: true, // 4.08: a block-wise transfer was cut
	codes.Conflict:                true, // 4.09: the resource's state may change
	codes.TooManyRequests:         true, // 4.29: the device is busy
}

var permanentServerErrors = map[codes.Code]bool{
	codes.NotImplemented:       true, // 5.01
	codes.ProxyingNotSupported: true, // 5.05
}

// codeVerdict applies the table to a CoAP error code.
func codeVerdict(c codes.Code) verdict {
	switch c >> 5 {
	case 4:
		if retriedClientErrors[c] {
			return retry
		}
		return fail
	case 5:
		if permanentServerErrors[c] {
			return fail
		}
		return retry
	}
	// A response code outside 4.xx and 5.xx that devmgmt still calls an
	// error (1.xx, 3.xx, a 2.xx other than the success codes): the device
	// did something unexpected; the same request will do it again.
	return fail
}

// classify reads the error of one attempt (nil: success) and returns its
// verdict and the CoAP code the device answered ("" when none).
func classify(err error) (verdict, string) {
	if err == nil {
		return confirmed, ""
	}
	var ce *devmgmt.CoAPError
	switch {
	case errors.As(err, &ce):
		return codeVerdict(ce.Code), devmgmt.CodeString(ce.Code)
	case errors.Is(err, devmgmt.ErrOffline):
		return notSent, ""
	case errors.Is(err, devmgmt.ErrInvalid), errors.Is(err, devmgmt.ErrNoObservation), errors.Is(err, devmgmt.ErrVersion):
		return reject, ""
	case errors.Is(err, devmgmt.ErrBadResponse), errors.Is(err, lwm2m.ErrSyntax):
		return fail, ""
	case errors.Is(err, devmgmt.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return retry, ""
	}
	// Transport errors (the socket failed, the connection was closed):
	// the request may or may not have reached the device.
	return retry, ""
}
