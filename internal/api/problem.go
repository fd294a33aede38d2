package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// Problem is the body of every error response (application/problem+json).
// Code is a stable machine-readable reason; CoAPCode is set when the
// device answered with a CoAP error ("4.04").
type Problem struct {
	Title    string              `json:"title" doc:"Short summary, the HTTP status text"`
	Status   int                 `json:"status" doc:"HTTP status code"`
	Code     string              `json:"code" doc:"Stable reason: bad_request, unauthorized, forbidden, not_found, method_not_allowed, offline, lwm2m_version, timeout, device_error, bad_response, conflict, internal"`
	Detail   string              `json:"detail,omitempty" doc:"What went wrong, for a person"`
	CoAPCode string              `json:"coap_code,omitempty" doc:"CoAP response code from the device, e.g. 4.04"`
	Errors   []*huma.ErrorDetail `json:"errors,omitempty" doc:"Per-field validation errors"`
}

func (p *Problem) Error() string             { return p.Detail }
func (p *Problem) GetStatus() int            { return p.Status }
func (p *Problem) ContentType(string) string { return "application/problem+json" }

var statusCodes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
	409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "bad_request", 502: "device_error",
	503: "unavailable", 504: "timeout",
}

// newProblem replaces huma.NewError so huma's own errors (validation,
// unknown content type) have the same shape as ours.
func newProblem(status int, msg string, errs ...error) huma.StatusError {
	p := &Problem{Title: http.StatusText(status), Status: status, Detail: msg, Code: statusCodes[status]}
	if p.Code == "" {
		p.Code = "internal"
	}
	if status == http.StatusUnprocessableEntity {
		p.Status, p.Title = http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
	}
	for _, e := range errs {
		if e == nil {
			continue
		}
		var d *huma.ErrorDetail
		if errors.As(e, &d) {
			p.Errors = append(p.Errors, d)
		} else {
			p.Errors = append(p.Errors, &huma.ErrorDetail{Message: e.Error()})
		}
	}
	return p
}

func problem(status int, code, detail string) *Problem {
	return &Problem{Title: http.StatusText(status), Status: status, Code: code, Detail: detail}
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// fail maps an error from the layers below to a Problem. This is the one
// place where domain errors become HTTP statuses; unexpected errors are
// logged and answered with a generic 500.
func (a *API) fail(ctx context.Context, err error) error {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var ce *devmgmt.CoAPError
	switch {
	case errors.As(err, &ce):
		p := problem(http.StatusBadGateway, "device_error", err.Error())
		p.CoAPCode = devmgmt.CodeString(ce.Code)
		return p
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, devmgmt.ErrOffline):
		return problem(http.StatusConflict, "offline", "the endpoint is offline (not registered); queue the operation instead")
	case errors.Is(err, devmgmt.ErrVersion):
		// 409, as for offline: the request is well formed and is refused
		// for the state of the endpoint's registration (its LwM2M
		// version); it succeeds once the device registers with a later
		// version. Nothing was sent.
		return problem(http.StatusConflict, "lwm2m_version", err.Error())
	case errors.Is(err, devmgmt.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return problem(http.StatusGatewayTimeout, "timeout", "the device did not answer in time")
	case errors.Is(err, devmgmt.ErrInvalid), errors.Is(err, devmgmt.ErrNoObservation), errors.Is(err, credential.ErrInvalid):
		return problem(http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, devmgmt.ErrBadResponse), errors.Is(err, lwm2m.ErrSyntax):
		return problem(http.StatusBadGateway, "bad_response", err.Error())
	case errors.Is(err, store.ErrConflict):
		return problem(http.StatusConflict, "conflict", err.Error())
	}
	a.opts.Logger.ErrorContext(ctx, "API request failed", "err", err)
	return problem(http.StatusInternalServerError, "internal", "internal error")
}

func badRequest(format string) *Problem { return problem(http.StatusBadRequest, "bad_request", format) }
