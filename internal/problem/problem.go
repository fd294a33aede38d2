// Package problem is the one mapping from the errors of the layers below
// (devmgmt, store, credential, firmware, fwupdate, auth, lwm2m) to what an HTTP client is
// told: a status, a stable code and a message for a person, with no
// internal detail (no error chain such as `store: get endpoint "x": not
// found`). The REST API writes a Problem as application/problem+json
// (RFC 9457); the dashboard renders the same Problem as HTML. Errors it
// does not know are "unexpected": the caller logs them, with the request
// id, and shows only "internal error".
//
// It imports the domain packages whose errors it maps and nothing of the
// HTTP surfaces above it (api, web).
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// FieldError is one field of a request that failed validation.
type FieldError struct {
	Message  string `json:"message,omitempty" doc:"What is wrong"`
	Location string `json:"location,omitempty" doc:"Where in the request, e.g. body.path"`
	Value    any    `json:"value,omitempty" doc:"The value given"`
}

// Problem is the body of every error response. Code is a stable,
// machine-readable reason; CoAPCode is set when the device answered with
// a CoAP error ("4.04"); RequestID names the request in the server's log
// when the error was unexpected.
type Problem struct {
	Title     string        `json:"title" doc:"Short summary, the HTTP status text"`
	Status    int           `json:"status" doc:"HTTP status code"`
	Code      string        `json:"code" doc:"Stable reason: bad_request, unauthorized, forbidden, not_found, method_not_allowed, offline, lwm2m_version, timeout, device_error, bad_response, conflict, in_use, too_large, unsupported_media_type, unavailable, internal, token_scope (a read-only API token writing), rate_limited"`
	Detail    string        `json:"detail,omitempty" doc:"What went wrong, for a person"`
	CoAPCode  string        `json:"coap_code,omitempty" doc:"CoAP response code from the device, e.g. 4.04"`
	RequestID string        `json:"request_id,omitempty" doc:"The request's id in the server's log, for an internal error"`
	Errors    []*FieldError `json:"errors,omitempty" doc:"Per-field validation errors"`
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus is the HTTP status (huma.StatusError).
func (p *Problem) GetStatus() int { return p.Status }

// ContentType is application/problem+json (huma.ContentTypeFilter).
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// statusCodes are the stable codes of the statuses a Problem has without a more
// specific one.
var statusCodes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
	406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "bad_request",
	429: "rate_limited",
	502: "device_error", 503: "unavailable", 504: "timeout",
}

// New returns a Problem of status with code ("" for the status's own) and
// a message for a person.
func New(status int, code, detail string) *Problem {
	if code == "" {
		if code = statusCodes[status]; code == "" {
			code = "internal"
		}
	}
	return &Problem{Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

// BadRequest is New(400, "bad_request", detail).
func BadRequest(detail string) *Problem { return New(http.StatusBadRequest, "bad_request", detail) }

// Internal is the Problem of an unexpected error: its message says nothing
// of the error, and names the request for the log.
func Internal(requestID string) *Problem {
	p := New(http.StatusInternalServerError, "internal", "internal error")
	if requestID != "" {
		p.Detail += " (request " + requestID + ")"
	}
	p.RequestID = requestID
	return p
}

// From maps err to the Problem a client is shown. unexpected is true, and
// p is Internal, for an error of no known kind: the caller logs it.
// Messages are fixed per kind, or the part of a domain error that its
// package wrote for a person: what follows the sentinel it wraps
// ("invalid operation: execute /3/0: want a resource"), never what the
// layers above it added.
func From(err error, requestID string) (p *Problem, unexpected bool) {
	if errors.As(err, &p) {
		return p, false
	}
	var ce *devmgmt.CoAPError
	var fe *fwupdate.Error
	switch {
	case errors.As(err, &fe):
		switch fe.Kind {
		case fwupdate.NotFound:
			p = New(http.StatusNotFound, "not_found", fe.Msg)
		case fwupdate.Conflict:
			p = New(http.StatusConflict, "conflict", fe.Msg)
		default:
			p = BadRequest(fe.Msg)
		}
	case errors.As(err, &ce):
		p = New(http.StatusBadGateway, "device_error", "the device answered "+devmgmt.CodeString(ce.Code))
		p.CoAPCode = devmgmt.CodeString(ce.Code)
	case errors.Is(err, firmware.ErrInvalid):
		p = BadRequest(after(err, firmware.ErrInvalid))
	case errors.Is(err, firmware.ErrTooLarge):
		p = New(http.StatusRequestEntityTooLarge, "too_large", after(err, firmware.ErrTooLarge))
	case errors.Is(err, firmware.ErrExists):
		p = New(http.StatusConflict, "conflict", after(err, firmware.ErrExists))
	case errors.Is(err, firmware.ErrInUse):
		p = New(http.StatusConflict, "in_use", after(err, firmware.ErrInUse))
	case errors.Is(err, firmware.ErrNotFound):
		p = New(http.StatusNotFound, "not_found", "no such firmware image: "+lastPart(err))
	case errors.Is(err, store.ErrNotFound):
		p = New(http.StatusNotFound, "not_found", "not found")
	case errors.Is(err, devmgmt.ErrOffline):
		p = New(http.StatusConflict, "offline", "the endpoint is offline (not registered); queue the operation instead")
	case errors.Is(err, devmgmt.ErrVersion):
		// 409, as for offline: the request is well formed and is refused
		// for the state of the endpoint's registration (its LwM2M
		// version); it succeeds once the device registers with a later
		// version. Nothing was sent.
		p = New(http.StatusConflict, "lwm2m_version", after(err, devmgmt.ErrVersion))
	case errors.Is(err, devmgmt.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		p = New(http.StatusGatewayTimeout, "timeout", "the device did not answer in time")
	case errors.Is(err, devmgmt.ErrInvalid):
		p = BadRequest(after(err, devmgmt.ErrInvalid))
	case errors.Is(err, devmgmt.ErrNoObservation):
		p = BadRequest(after(err, devmgmt.ErrNoObservation))
	case errors.Is(err, credential.ErrInvalid):
		p = BadRequest(after(err, credential.ErrInvalid))
	case errors.Is(err, lwm2m.ErrSyntax):
		msg := lastPart(err)
		if de := (*lwm2m.DecodeError)(nil); errors.As(err, &de) {
			msg = de.Error()
		}
		p = New(http.StatusBadGateway, "bad_response", "the device's answer could not be decoded: "+msg)
	case errors.Is(err, devmgmt.ErrBadResponse):
		p = New(http.StatusBadGateway, "bad_response", after(err, devmgmt.ErrBadResponse))
	case errors.Is(err, credential.ErrKeyMismatch):
		p = New(http.StatusConflict, "conflict",
			"the server's secret key is not the one the stored PSK keys are sealed with: see `flownexus secret rotate`")
	case errors.Is(err, auth.ErrForbidden):
		p = New(http.StatusForbidden, "forbidden", "not allowed")
	case errors.Is(err, store.ErrConflict):
		p = New(http.StatusConflict, "conflict", "conflicts with what is stored")
	default:
		return Internal(requestID), true
	}
	return p, false
}

// after returns the message of err from sentinel's own text on, without
// the package prefix of sentinel ("devmgmt: invalid operation: x" gives
// "invalid operation: x"), or sentinel's text alone when err's message
// does not hold it.
func after(err, sentinel error) string {
	msg, s := err.Error(), sentinel.Error()
	if _, short, ok := strings.Cut(s, ": "); ok && !strings.Contains(short, ": ") {
		s = short // drop the package prefix
	}
	if i := strings.Index(msg, s); i >= 0 {
		return msg[i:]
	}
	return s
}

// lastPart is what follows the last ": " of err's message (the innermost
// cause as its package wrote it).
func lastPart(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// Write writes p as application/problem+json.
func Write(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
