package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// The administration resources (users, sites, memberships, tokens, the
// audit log) record every change in the audit log with the same actions
// as the dashboard and the CLI, and detail "surface": "api".

// audit records a change made by the request's user. A failure is
// logged: the change is made already.
func (a *API) audit(ctx context.Context, action, target string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["surface"] = "api"
	d, _ := json.Marshal(detail)
	if _, err := a.opts.Store.AppendAudit(ctx, actorOf(ctx).Entry(action, target, d)); err != nil {
		a.opts.Logger.ErrorContext(ctx, "audit failed", "action", action, "target", target, "err", err)
	}
}

// fieldError is a 400 problem about one field of the request.
func fieldError(location, msg string, value any) *Problem {
	p := badRequest(msg)
	p.Errors = append(p.Errors, &problem.FieldError{Message: msg, Location: location, Value: value})
	return p
}

// notFoundOr maps store.ErrNotFound to 404 "no such <what>: <id>".
func (a *API) notFoundOr(ctx context.Context, err error, what string, id any) error {
	if errors.Is(err, store.ErrNotFound) {
		return problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no such %s: %v", what, id))
	}
	return a.fail(ctx, err)
}

// optTime is t, nil when zero (never).
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// adminRoutes registers the administration resources and the fleet-wide
// views: tokens, users and memberships, sites, the audit log, object
// definitions and the operations of every device.
func (a *API) adminRoutes(h huma.API) {
	a.tokenRoutes(h)
	a.userRoutes(h)
	a.siteRoutes(h)
	a.auditRoutes(h)
	a.objectRoutes(h)
	if a.opts.Jobs != nil {
		a.allOperationsRoutes(h)
	}
}
