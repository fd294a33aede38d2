package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// Route is one route of the API: its method, its path pattern, its OpenAPI
// operation id ("" for the OpenAPI document and schema routes) and the
// permission it needs.
type Route struct {
	Method      string
	Path        string
	OperationID string
	Permission  auth.Permission
}

// permissionKey is the huma.Operation Metadata key holding the route's
// auth.Permission.
const permissionKey = "flownexus.permission"

// register adds an operation that needs perm. Every API operation is
// registered through it: the route table refuses any other. A request
// body larger than op.MaxBodyBytes (0: DefaultMaxBody) is refused, 413.
func register[I, O any](h huma.API, perm auth.Permission, op huma.Operation, handler func(context.Context, *I) (*O, error)) {
	if !auth.Known(perm) {
		panic(fmt.Sprintf("api: operation %s: unknown permission %q", op.OperationID, perm))
	}
	if op.MaxBodyBytes == 0 {
		op.MaxBodyBytes = DefaultMaxBody // larger bodies: 413
	}
	op.Metadata = maps(op.Metadata)
	op.Metadata[permissionKey] = perm
	op.Extensions = maps(op.Extensions)
	op.Extensions["x-permission"] = string(perm)
	who := "global administrators, and site members granted it, for their sites' devices"
	if auth.FlagOf(perm) == 0 {
		who = "global administrators only"
	}
	if perm != auth.Public {
		op.Description = strings.TrimSpace(op.Description + "\n\nNeeds permission `" + string(perm) + "` (" + who + ").")
		op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	}
	huma.Register(h, op, handler)
}

func maps(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func permissionOf(op *huma.Operation) (auth.Permission, bool) {
	if op == nil {
		return "", false
	}
	p, ok := op.Metadata[permissionKey].(auth.Permission)
	return p, ok && auth.Known(p)
}

// routeTable is the huma adapter that sees every route the API mounts: it
// records them and panics on a route that declares no permission, so no
// route can be served without an authorization decision. huma's own
// document routes (docs, GET only) are public.
type routeTable struct {
	huma.Adapter
	docs   map[string]bool
	routes []Route
}

func (t *routeTable) Handle(op *huma.Operation, handler func(huma.Context)) {
	perm, ok := permissionOf(op)
	if !ok {
		if op.Method != http.MethodGet || !t.docs[op.Path] {
			panic(fmt.Sprintf("api: route %s %s has no permission: register it with register()", op.Method, op.Path))
		}
		perm = auth.Public
	}
	t.routes = append(t.routes, Route{Method: op.Method, Path: op.Path, OperationID: op.OperationID, Permission: perm})
	t.Adapter.Handle(op, handler)
}

// Routes returns every route of the API with the permission it needs, in
// the order they were registered.
func (a *API) Routes() []Route { return slices.Clone(a.table.routes) }

// DenialBurst and DenialWindow bound the refusals recorded per user: at
// most DenialBurst in DenialWindow (see auth.DenialLimiter).
const (
	DenialBurst  = 10
	DenialWindow = time.Minute
)

// guard authenticates and authorizes every API operation, in this order:
// a route needing auth.Public passes; a missing, unknown or expired token,
// or one of a disabled user, gets 401 with a WWW-Authenticate challenge; a
// token over its request rate gets 429 with Retry-After; a user without
// the route's permission gets 403, and so does a read-only token asking
// anything but GET or HEAD (code token_scope); either refusal is logged
// and audited (rate limited per user).
func (a *API) guard(hapi huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		perm, ok := permissionOf(ctx.Operation())
		if !ok { // the route table refuses such routes; fail closed all the same
			a.opts.Logger.Error("API route without a permission", "path", ctx.URL().Path)
			huma.WriteErr(hapi, ctx, http.StatusInternalServerError, "internal error")
			return
		}
		if perm == auth.Public {
			next(ctx)
			return
		}
		deny := func(msg string) {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="flownexus"`)
			huma.WriteErr(hapi, ctx, http.StatusUnauthorized, msg)
		}
		h := ctx.Header("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			deny("missing bearer token: send Authorization: Bearer <token> (make one with `flownexus token create`)")
			return
		}
		tok, user, err := a.opts.Store.GetAPITokenByHash(ctx.Context(), auth.HashToken(strings.TrimSpace(token)))
		if errors.Is(err, store.ErrNotFound) {
			deny("invalid API token")
			return
		}
		if err != nil {
			a.opts.Logger.Error("API token lookup failed", "err", err)
			huma.WriteErr(hapi, ctx, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		now := a.opts.Now()
		if tok.Expired(now) {
			deny("API token expired")
			return
		}
		if user.Disabled() {
			deny("the token's user is disabled")
			return
		}
		// Record use at most about once a minute per token, judged by the
		// stored last use: no write per request, and no state per token
		// here (requests arriving together may each write once).
		if now.Sub(tok.LastUsedAt) > time.Minute {
			if err := a.opts.Store.TouchAPIToken(ctx.Context(), tok.ID, now); err != nil {
				a.opts.Logger.Warn("recording API token use failed", "err", err)
			}
		}
		if ok, wait := a.limiter.Allow(tok.ID); !ok {
			tooManyRequests(ctx, wait)
			return
		}
		subject, err := a.opts.Store.Subject(ctx.Context(), user)
		if err != nil {
			a.opts.Logger.Error("loading a user's memberships failed", "user", user.Username, "err", err)
			huma.WriteErr(hapi, ctx, http.StatusServiceUnavailable, "authorization unavailable")
			return
		}
		if err := auth.Authorize(subject, perm); err != nil {
			a.refused(ctx, subject, perm)
			huma.WriteErr(hapi, ctx, http.StatusForbidden,
				fmt.Sprintf("user %q may not do this: it needs permission %s", user.Username, perm))
			return
		}
		if tok.ReadOnly() && !readMethod(ctx.Method()) {
			a.refused(ctx, subject, perm)
			writeProblem(ctx, problem.New(http.StatusForbidden, "token_scope", "this token is read-only"))
			return
		}
		next(huma.WithValue(ctx, ctxKey{}, principal{User: user, Token: tok, RemoteAddr: ctx.RemoteAddr(), Permission: perm, Subject: subject}))
	}
}

// readMethod reports whether a read-only token may make a request of the
// method.
func readMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// stillAuthorized reports whether the caller of a long-lived request (an
// event stream) may still make it: its token still stored and unexpired,
// its user enabled and granted the route's permission. Event streams ask
// at every keep-alive, so revoking a token or disabling or deleting a user
// ends their streams within one keep-alive interval. A database error
// counts as no.
//
// While it is, the subject returned is the user as it now is, so that a
// stream follows changes of its user's grants.
func (a *API) stillAuthorized(ctx context.Context) (auth.Subject, bool) {
	p := userFrom(ctx)
	tok, user, err := a.opts.Store.GetAPITokenByHash(ctx, p.Token.TokenHash)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			a.opts.Logger.Warn("event stream ended: its token could not be checked", "user", p.User.Username, "err", err)
		}
		return auth.Subject{}, false
	}
	s, err := a.opts.Store.Subject(ctx, user)
	return s, err == nil && !tok.Expired(a.opts.Now()) && auth.Authorize(s, p.Permission) == nil
}

// maxAuditTarget bounds the request line kept in an audit entry.
const maxAuditTarget = 512

// refused logs and audits a refused request, unless the user's refusals
// are over the limit; then it is only counted, and the count goes with the
// user's next recorded refusal.
func (a *API) refused(ctx huma.Context, s auth.Subject, perm auth.Permission) {
	record, suppressed := a.denials.Record(s.UserID)
	if !record {
		return
	}
	u := ctx.URL()
	target := ctx.Method() + " " + u.Path
	if len(target) > maxAuditTarget {
		target = strings.ToValidUTF8(target[:maxAuditTarget], "")
	}
	detail := map[string]any{"permission": perm, "operation": ctx.Operation().OperationID}
	if suppressed > 0 {
		detail["suppressed"] = suppressed
	}
	a.opts.Logger.Warn("API request forbidden", "user", s.Name, "method", ctx.Method(), "path", u.Path,
		"permission", perm, "remote_addr", ctx.RemoteAddr(), "suppressed", suppressed)
	d, _ := json.Marshal(detail)
	_, err := a.opts.Store.AppendAudit(ctx.Context(), store.AuditEntry{
		UserID: s.UserID, Actor: s.Name, Action: ActionDenied, Target: target, Detail: d, RemoteAddr: ctx.RemoteAddr(),
	})
	if err != nil {
		a.opts.Logger.Error("audit of a forbidden request failed", "user", s.Name, "err", err)
	}
}

// ActionDenied is the audit action of a refused request; its target is
// the request's method and path, its detail the permission it needed, the
// operation, and how many refusals of the same user before it were not
// recorded ("suppressed", when any).
const ActionDenied = "access.denied"

// actorOf is the request's user as the audit log names it.
func actorOf(ctx context.Context) store.Actor {
	p := userFrom(ctx)
	return store.Actor{UserID: p.User.ID, Name: p.User.Username, RemoteAddr: p.RemoteAddr}
}
