package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/httpd"
	"github.com/flownexus/flownexus/internal/problem"
)

// Problem is the body of every error response (application/problem+json):
// package problem's, under the name the OpenAPI document gives it.
type Problem = problem.Problem

// fail maps an error of the layers below to the Problem the client gets,
// in package problem, the one place where that is decided; an unexpected
// error is logged here with the request id, and the client is told only
// that id.
func (a *API) fail(ctx context.Context, err error) error {
	id := httpd.RequestID(ctx)
	p, unexpected := problem.From(err, id)
	if unexpected {
		a.opts.Logger.ErrorContext(ctx, "API request failed", "request_id", id, "err", err)
	}
	return p
}

func badRequest(detail string) *Problem { return problem.BadRequest(detail) }

// humaErrors is a huma transformer giving huma's own errors (a body that
// fails validation, an unknown content type) the shape of Problem.
func humaErrors(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	p := problem.New(em.Status, "", em.Detail)
	if em.Status == http.StatusUnprocessableEntity {
		p.Status, p.Title = http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
	}
	for _, d := range em.Errors {
		if d != nil {
			p.Errors = append(p.Errors, &problem.FieldError{Message: d.Message, Location: d.Location, Value: d.Value})
		}
	}
	return p, nil
}

// validationIs400 answers a request huma finds invalid (422 Unprocessable
// Entity) with 400 Bad Request, as every other invalid request is.
func validationIs400(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&status400{ResponseWriter: w}, r)
	})
}

type status400 struct{ http.ResponseWriter }

func (w *status400) WriteHeader(code int) {
	if code == http.StatusUnprocessableEntity {
		code = http.StatusBadRequest
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush for event streams.
func (w *status400) Unwrap() http.ResponseWriter { return w.ResponseWriter }
