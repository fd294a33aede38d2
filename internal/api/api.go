// Package api is the REST API under /api/v1: endpoints, their latest
// values and history, device operations run now against online devices,
// operations queued for delivery when the device is reachable, device
// credentials, firmware images, and a live stream of events (Server-Sent
// Events).
//
// Requests authenticate with a bearer API token (made by `flownexus token
// create`); only the OpenAPI document and its schemas are open. Every
// operation declares the auth.Permission it needs when it is registered
// (the route table refuses one that does not; Routes lists them), and one
// middleware decides it with auth.Authorize: a missing, bad or expired
// token, or one of a disabled user, is 401; a user without the permission
// gets 403 and the refusal is audited (action "access.denied", at most
// DenialBurst per user per DenialWindow). A token acts as its user: a
// global administrator everywhere, a site member inside the sites whose
// grant allows the route's permission (auth.Subject.Scope). A device
// outside that scope is answered 404 as if it did not exist, lists and
// the event stream leave such devices out, and a firmware update or
// campaign is reached only through its devices (see package auth for the
// table). The OpenAPI document names each operation's
// permission (x-permission).
//
// Every error has one JSON shape (Problem, RFC 9457 problem+json),
// including 404 for an unknown path and 405, with an Allow header, for a
// known path asked with another method. Every response carries a
// Content-Security-Policy that allows nothing (APICSP): API answers are
// data, never pages (the reference page has its own, DocsCSP). The
// OpenAPI 3.1 document is served at /api/v1/openapi.json (Document builds
// it without a server), and rendered as a reference page at DocsPath.
package api

import (
	"context"
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
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/webhook"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// Config is the API's dependencies. Store, Devices, Objects and Logger
// must not be nil.
type Config struct {
	Store   *store.Store
	Devices *devmgmt.Manager
	Objects *objects.Catalog
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
	// It is the bus of logged events (webhook.Config.Logged), whose events
	// carry their id in the durable event log: the stream's message ids,
	// after which a client resumes from the log (Store.EventsAfter).
	// The stream's filter accepts, and its OpenAPI description lists, the
	// topics of events.Topics; events of other topics are streamed to
	// clients that do not filter by topic.
	Events *events.Bus
	// Updates drives firmware updates behind /firmware/updates; nil leaves
	// those routes out.
	Updates *fwupdate.Updater
	// KeepAlive is how often an event stream sends a keep-alive comment;
	// 0 means 15 s.
	KeepAlive time.Duration
	// Firmware is the image store behind /firmware; nil leaves those
	// routes out.
	Firmware *firmware.Images
	// Webhooks manages webhooks behind /webhooks; nil leaves those
	// routes out.
	Webhooks *webhook.Service
	// Rate is how many requests a second one API token may make, in
	// bursts of Burst (see RateLimiter); 0 sets no limit.
	Rate  float64
	Burst int
}

// API serves the REST API.
type API struct {
	opts    Config
	handler http.Handler
	doc     *huma.OpenAPI // the OpenAPI document of its routes
	table   *routeTable
	denials *auth.DenialLimiter
	limiter *RateLimiter // nil: no limit

	closing   chan struct{} // closed by CloseStreams
	closeOnce sync.Once
	feed      *events.Feed        // the event streams' readers; set with their route
	sites     *store.SiteResolver // endpoint → site, for the event streams' scope
}

type ctxKey struct{}

// principal is the authenticated caller of a request.
type principal struct {
	User       store.User
	Token      store.APIToken
	RemoteAddr string
	Permission auth.Permission // the route's, as granted
	// Subject is the user with its site grants, loaded once per request.
	Subject auth.Subject
}

// scope returns the devices the request's user may reach with the
// route's permission: a device outside it is absent (404), and lists
// hold only devices in it.
func (p principal) scope() auth.Scope { return p.Subject.Scope(p.Permission) }

func userFrom(ctx context.Context) principal {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p
}

// New builds the API. Its Handler serves every path under Prefix.
func New(o Config) *API { return build(o, false) }

// Document returns the OpenAPI document of an API with every part
// configured, as a server of this version serves it at
// Prefix/openapi.json, without building one: for `flownexus openapi` and
// the docs site. Its operations are never served.
func Document(version string) *huma.OpenAPI {
	// The parts a route reads when it is registered, empty.
	return build(Config{Version: version, Firmware: &firmware.Images{}}, true).doc
}

// OpenAPI returns the API's OpenAPI document, the one it serves.
func (a *API) OpenAPI() *huma.OpenAPI { return a.doc }

// build builds the API of o; everything registers every route whatever
// parts o lacks, for the document alone.
func build(o Config, everything bool) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 30 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	a := &API{opts: o, closing: make(chan struct{}), denials: auth.NewDenialLimiter(DenialBurst, DenialWindow, o.Now),
		limiter: NewRateLimiter(o.Rate, o.Burst, o.Now)}
	if o.Store != nil {
		a.sites = o.Store.SiteResolver(0)
	}
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
	// huma's own errors (validation, content types) take the shape of
	// ours; no global of huma's is changed.
	cfg.Transformers = append(cfg.Transformers, humaErrors)
	a.table = &routeTable{Adapter: humago.NewAdapter(mux, ""), docs: map[string]bool{
		cfg.OpenAPIPath + ".json": true, cfg.OpenAPIPath + "-3.0.json": true,
		cfg.OpenAPIPath + ".yaml": true, cfg.OpenAPIPath + "-3.0.yaml": true,
		cfg.SchemasPath + "/{schema}": true,
	}}
	hapi := huma.NewAPI(cfg, a.table)
	a.doc = hapi.OpenAPI()
	hapi.UseMiddleware(a.guard(hapi))
	a.routes(hapi)
	a.adminRoutes(hapi)
	a.docsRoutes(hapi)
	if o.Jobs != nil || everything {
		a.queueRoutes(hapi)
	}
	if o.Credentials != nil || everything {
		a.credentialRoutes(hapi)
	}
	if o.Updates != nil || everything {
		a.updateRoutes(hapi)
		a.campaignRoutes(hapi)
	}
	if o.Events != nil || everything {
		a.streamRoutes(hapi)
	}
	if o.Firmware != nil || everything {
		a.firmwareRoutes(hapi)
	}
	if o.Webhooks != nil || everything {
		a.webhookRoutes(hapi)
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			problem.Write(w, problem.New(http.StatusMethodNotAllowed, "method_not_allowed",
				r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", ")))
			return
		}
		problem.Write(w, problem.New(http.StatusNotFound, "not_found", "no such API route: "+r.Method+" "+r.URL.Path))
	})
	a.handler = validationIs400(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", APICSP)
		mux.ServeHTTP(w, r)
	}))
	return a
}

// APICSP is the Content-Security-Policy of every API response: no
// content of any kind may load, and no page may frame it.
const APICSP = "default-src 'none'; frame-ancestors 'none'"

// probeMethods are the methods allowedMethods tries, in the order an
// Allow header lists them.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete}

// allowedMethods returns the methods that have a route for r's path in
// mux, other than the catch-all: empty when the path is unknown. The mux
// is asked, so the answer is always its route table's.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range probeMethods {
		probe := *r
		probe.Method = m
		if _, pattern := mux.Handler(&probe); pattern != "" && pattern != Prefix+"/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler { return a.handler }
