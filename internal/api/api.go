// Package api is the REST API under /api/v1: endpoints, their latest
// values and history, device operations run now against online devices,
// operations queued for delivery when the device is reachable, and a live
// stream of events (Server-Sent Events).
// Requests authenticate with a bearer API token (made by `flownexus token
// create`); the API is never open. Every error has one JSON shape
// (Problem, RFC 9457 problem+json). The OpenAPI 3.1 document is served at
// /api/v1/openapi.json.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/store"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// Options are the API's dependencies. Store, Devices, Objects and Logger
// must not be nil.
type Options struct {
	Store   *store.Store
	Devices *devmgmt.Manager
	Objects *objects.Registry
	Logger  *slog.Logger
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OpTimeout bounds one device operation; 0 means 30 s.
	OpTimeout time.Duration
	// Jobs is the durable operation queue behind /endpoints/{ep}/operations;
	// nil leaves those routes out.
	Jobs *jobs.Queue
	// Credentials manages device DTLS credentials behind /credentials;
	// nil leaves those routes out.
	Credentials *credential.Service
	// Events is the bus behind /events/stream; nil leaves that route out.
	Events *events.Bus
	// Topics are the topics the event stream's filter accepts and its
	// OpenAPI description lists; events of other topics are streamed to
	// clients that do not filter by topic.
	Topics []StreamTopic
	// KeepAlive is how often an event stream sends a keep-alive comment;
	// 0 means 15 s.
	KeepAlive time.Duration
}

// API serves the REST API.
type API struct {
	opts    Options
	handler http.Handler

	closing   chan struct{} // closed by CloseStreams
	closeOnce sync.Once
	feed      *events.Feed // the event streams' readers; set with their route
}

type ctxKey struct{}

// principal is the authenticated caller of a request.
type principal struct {
	User  store.User
	Token store.APIToken
}

func userFrom(ctx context.Context) principal {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p
}

var installErrors sync.Once

// New builds the API. Its Handler serves every path under Prefix.
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 30 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	installErrors.Do(func() { huma.NewError = newProblem })
	a := &API{opts: o, closing: make(chan struct{})}
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("flownexus API", o.Version)
	cfg.Info.Description = "Manage LwM2M devices: endpoints, values, history and device operations."
	cfg.OpenAPIPath = Prefix + "/openapi"
	cfg.DocsPath = "" // the docs page would load scripts from a CDN; serve none
	cfg.SchemasPath = Prefix + "/schemas"
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "API token from `flownexus token create`"},
	}
	cfg.Security = []map[string][]string{{"bearer": {}}}
	hapi := humago.New(mux, cfg)
	hapi.UseMiddleware(a.authenticate(hapi))
	a.routes(hapi)
	if o.Jobs != nil {
		a.queueRoutes(hapi)
	}
	if o.Credentials != nil {
		a.credentialRoutes(hapi)
	}
	if o.Events != nil {
		a.streamRoutes(hapi)
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path).(*Problem))
	})
	a.handler = mux
	return a
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler { return a.handler }

// authenticate checks the bearer token of every API operation. A missing,
// unknown or expired token gets 401 with a WWW-Authenticate challenge.
func (a *API) authenticate(hapi huma.API) func(huma.Context, func(huma.Context)) {
	var mu sync.Mutex
	lastTouch := map[int64]time.Time{}
	return func(ctx huma.Context, next func(huma.Context)) {
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
		// Record use at most once a minute per token: no write per request.
		mu.Lock()
		touch := now.Sub(lastTouch[tok.ID]) > time.Minute
		if touch {
			lastTouch[tok.ID] = now
		}
		mu.Unlock()
		if touch {
			if err := a.opts.Store.TouchAPIToken(ctx.Context(), tok.ID, now); err != nil {
				a.opts.Logger.Warn("recording API token use failed", "err", err)
			}
		}
		next(huma.WithValue(ctx, ctxKey{}, principal{User: user, Token: tok}))
	}
}
