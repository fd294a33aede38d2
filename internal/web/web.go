package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

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
)

// StaticPrefix is the URL path under which the static assets are served.
const StaticPrefix = "/static/"

// Patterns are the URL patterns the dashboard must be mounted at on the
// HTTP server's mux (each to Handler): together they are all its routes.
var Patterns = []string{"/{$}", "/login", "/logout", StaticPrefix, "/devices", "/devices/{endpoint}",
	"/admin/", "/profile", "/profile/", "/site", "/firmware", "/firmware/", "/operations", "/operations/"}

// The defaults of Config's zero fields.
const (
	DefaultIdleTimeout     = 12 * time.Hour
	DefaultAbsoluteTimeout = 7 * 24 * time.Hour
	DefaultLoginFailures   = 10
	DefaultLoginWindow     = 15 * time.Minute
)

// Audit actions the dashboard records.
const (
	// ActionDenied is a request refused for a missing permission (the
	// API records the same action).
	ActionDenied = "access.denied"
	// ActionLoginFailed is a failed login: a wrong username or password,
	// a disabled user, or a rate-limited attempt. Its target is the
	// username given, its detail the reason.
	ActionLoginFailed = "login.failed"
	// ActionLogin is a successful login.
	ActionLogin = "login"
)

// Config configures the dashboard. Store is required; the parts after it
// are those the API uses too, and a nil one leaves its pages and actions
// out.
type Config struct {
	Store   *store.Store
	Objects *objects.Catalog // names of resources; nil: none
	// Devices runs device operations now (read, write, execute, ...).
	Devices *devmgmt.Manager
	// Jobs is the durable operation queue (operations for sleeping or
	// offline devices, the operations page).
	Jobs *jobs.Queue
	// Events is the bus the pages' live updates come from.
	Events *events.Bus
	// Credentials manages device DTLS credentials.
	Credentials *credential.Service
	// Firmware is the image store; Updates drives updates and campaigns.
	Firmware *firmware.Images
	Updates  *fwupdate.Updater
	// OpTimeout bounds one device operation run from a page; 0 means 30 s.
	OpTimeout time.Duration
	Logger    *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
	// Debug is development mode: session cookies are Secure only on
	// requests that came over HTTPS. Without it they always are.
	Debug bool
	// TrustedOrigins are origins ("https://dash.example.com") trusted for
	// state-changing requests besides the request's own host: those of a
	// proxy in front of the server (FLOWNEXUS_CSRF_ORIGINS).
	TrustedOrigins []string
	// IdleTimeout ends a session not used for so long; 0 means
	// DefaultIdleTimeout. AbsoluteTimeout ends any session that old; 0
	// means DefaultAbsoluteTimeout.
	IdleTimeout, AbsoluteTimeout time.Duration
	// LoginFailures failed logins within LoginWindow, of one account or
	// from one client address, refuse further attempts (429) until the
	// oldest leaves the window; 0 means the defaults.
	LoginFailures int
	LoginWindow   time.Duration
}

// Route is one route of the dashboard: its method, its path pattern and
// the permission it needs.
type Route struct {
	Method     string
	Path       string
	Permission auth.Permission
}

// Web serves the dashboard. It is safe for concurrent use.
type Web struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []Route
	assets  *assets
	pages   map[string]*page
	limiter *loginLimiter
	// refusedAudits bounds the audit entries of rate-limited login
	// attempts per client address (the others are only logged).
	refusedAudits *loginLimiter
	denials       *auth.DenialLimiter
	live          *liveHub // the live streams (live.go)
}

// handlerFunc is a dashboard handler; the error it returns is rendered by
// fail.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// New builds the dashboard: it parses the templates and reads the static
// files.
func New(cfg Config) (*Web, error) {
	if cfg.Store == nil {
		return nil, errors.New("web: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.OpTimeout = cmpOr(cfg.OpTimeout, 30*time.Second)
	cfg.IdleTimeout = cmpOr(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.AbsoluteTimeout = cmpOr(cfg.AbsoluteTimeout, DefaultAbsoluteTimeout)
	cfg.LoginWindow = cmpOr(cfg.LoginWindow, DefaultLoginWindow)
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = DefaultLoginFailures
	}
	w := &Web{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		limiter:       newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow),
		refusedAudits: newLoginLimiter(cfg.LoginFailures, cfg.LoginWindow),
		denials:       auth.NewDenialLimiter(10, time.Minute, cfg.Now)}
	var err error
	if w.assets, err = loadAssets(); err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	if w.pages, err = w.parsePages(); err != nil {
		return nil, err
	}
	w.route("GET "+StaticPrefix, auth.Public, func(rw http.ResponseWriter, r *http.Request, _ *session) error {
		return w.assets.serve(rw, r)
	})
	w.route("GET /login", auth.Public, w.loginForm)
	w.route("POST /login", auth.Public, w.login)
	w.route("POST /logout", auth.Public, w.logout)
	w.route("GET /{$}", auth.ViewOverview, w.overview)
	w.route("GET /devices", auth.ViewOverview, w.devices)
	w.route("GET /devices/{endpoint}", auth.ViewData, w.device)
	w.accessRoutes()
	w.fleetRoutes()
	w.dataRoutes()
	return w, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Routes returns every route of the dashboard with the permission it
// needs, in the order they were registered.
func (w *Web) Routes() []Route { return slices.Clone(w.routes) }

// Handler serves the dashboard's routes (Patterns). The security
// headers are set before routing, so that the mux's own answers (405 for
// a method a path has no route for, 404) carry them too.
func (w *Web) Handler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		securityHeaders(rw.Header())
		w.mux.ServeHTTP(rw, r)
	})
}

// route registers a handler needing perm. Every route goes through it:
// an unknown permission panics, so no route is served without an
// authorization decision.
func (w *Web) route(pattern string, perm auth.Permission, h handlerFunc) {
	if !auth.Known(perm) {
		panic(fmt.Sprintf("web: route %s: unknown permission %q", pattern, perm))
	}
	method, path, _ := strings.Cut(pattern, " ")
	w.routes = append(w.routes, Route{Method: method, Path: path, Permission: perm})
	w.mux.Handle(pattern, w.guard(perm, h))
}

// guard wraps every route, in this order: security headers; a
// state-changing request must come from a trusted origin and carry the
// CSRF token (403 otherwise); the session is read from the cookie; a
// route needing more than auth.Public sends an anonymous request to the
// login form (303) and refuses a user without the permission (403, logged
// and audited, rate limited per user).
func (w *Web) guard(perm auth.Permission, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		securityHeaders(rw.Header())
		s, err := w.session(r)
		if err != nil {
			w.fail(rw, r, nil, err)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := w.checkOrigin(r); err != nil {
				w.fail(rw, r, s, err)
				return
			}
			if err := w.checkCSRF(r, s); err != nil {
				w.fail(rw, r, s, err)
				return
			}
		}
		if perm != auth.Public {
			if s == nil {
				http.Redirect(rw, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			if err := auth.Authorize(s.subject(), perm); err != nil {
				w.refused(r, s, perm)
				w.fail(rw, r, s, problem.New(http.StatusForbidden, "forbidden",
					fmt.Sprintf("user %q may not see this page: it needs permission %s", s.user.Username, perm)))
				return
			}
		}
		if err := h(rw, r, s); err != nil {
			w.fail(rw, r, s, err)
		}
	})
}

// securityHeaders sets the headers of every dashboard response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// fail renders err as an error page: its status and message come from
// problem.From, as the API's do; an unexpected error is logged with a
// request id and shown as "internal error".
func (w *Web) fail(rw http.ResponseWriter, r *http.Request, s *session, err error) {
	id := newID()
	p, unexpected := problem.From(err, id)
	if unexpected {
		w.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "request_id", id, "err", err)
	}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, p.Status, "error", s, map[string]any{"Problem": p})
}

func notFound(detail string) error { return problem.New(http.StatusNotFound, "not_found", detail) }

func forbidden(detail string) error { return problem.New(http.StatusForbidden, "forbidden", detail) }

// refused logs and audits a request refused for a missing permission,
// unless the user's refusals are over the limit.
func (w *Web) refused(r *http.Request, s *session, perm auth.Permission) {
	record, suppressed := w.denials.Record(s.user.ID)
	if !record {
		return
	}
	target := r.Method + " " + r.URL.Path
	if len(target) > 512 {
		target = strings.ToValidUTF8(target[:512], "")
	}
	detail := map[string]any{"permission": perm, "surface": "dashboard"}
	if suppressed > 0 {
		detail["suppressed"] = suppressed
	}
	w.log.Warn("dashboard request forbidden", "user", s.user.Username, "method", r.Method, "path", r.URL.Path,
		"permission", perm, "remote_addr", r.RemoteAddr, "suppressed", suppressed)
	w.audit(r.Context(), store.AuditEntry{UserID: s.user.ID, Actor: s.user.Username, Action: ActionDenied,
		Target: target, RemoteAddr: r.RemoteAddr}, detail)
}

func (w *Web) audit(ctx context.Context, e store.AuditEntry, detail map[string]any) {
	e.Detail, _ = json.Marshal(detail)
	if _, err := w.cfg.Store.AppendAudit(ctx, e); err != nil {
		w.log.Error("audit failed", "action", e.Action, "err", err)
	}
}

// newID returns 16 random hex digits.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
