// Package httpd is the operator-facing HTTP server: it owns the listener,
// the middleware every request passes (security headers, Host allow-list,
// panic recovery, access metrics and logging), and the /healthz and
// /metrics endpoints. The dashboard and the REST API mount their routes on
// it with Handle; each sets its own Content-Security-Policy.
//
// A known path asked with a method it has no route for is answered 405
// with an Allow header (the net/http mux does this); an unknown path 404.
package httpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server. Logger and Registry must not be nil.
type Config struct {
	AllowedHosts []string // see HostAllowed
	Version      string
	Commit       string
	// Ping reports database health for /healthz; nil means no database.
	Ping func(ctx context.Context) error
	// Storage reports whether the database takes writes (nil when it
	// does) for /healthz; nil means not checked.
	Storage  func() error
	Registry *prometheus.Registry
	// SeparateMetrics leaves /metrics off this server: MetricsHandler
	// serves it on a listener of its own.
	SeparateMetrics bool
	Logger          *slog.Logger
}

// Server serves HTTP. Routes must be added with Handle before Serve.
type Server struct {
	opts     Config
	mux      *http.ServeMux
	srv      *http.Server
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New builds a server with /healthz and /metrics routed and its metrics
// registered in o.Registry.
func New(o Config) *Server {
	s := &Server{
		opts: o,
		mux:  http.NewServeMux(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flownexus_http_requests_total",
			Help: "HTTP requests by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flownexus_http_request_duration_seconds",
			Help:    "HTTP request latency.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
	}
	o.Registry.MustRegister(s.requests, s.duration)
	s.mux.HandleFunc("GET /healthz", s.health)
	if !o.SeparateMetrics {
		s.mux.Handle("GET /metrics", s.metrics())
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

func (s *Server) metrics() http.Handler {
	return promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelError),
	})
}

// MetricsHandler serves GET /metrics and GET /healthz alone, for a
// listener of their own (Config.SeparateMetrics) that only monitoring
// reaches: it checks no Host header, so a scraper may use any address.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics())
	mux.HandleFunc("GET /healthz", s.health)
	return securityHeaders(mux)
}

// Handle routes pattern (net/http ServeMux syntax, e.g. "GET /api/v1/x")
// to h behind the server's middleware.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the routed handler wrapped in the middleware.
func (s *Server) Handler() http.Handler {
	return securityHeaders(s.hostCheck(s.observe(s.mux)))
}

// securityHeaders sets the headers every response carries, refusals
// included; a handler may replace them:
//   - X-Content-Type-Options: nosniff, so a browser never runs a JSON,
//     text or metrics answer as a script or page;
//   - Referrer-Policy: no-referrer, so no URL of this server (device names
//     are in API paths) leaks to another site. The dashboard needs no
//     Referer: its cross-origin protection reads Origin and Sec-Fetch-Site.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// Serve accepts connections on ln until Shutdown; it returns nil after a
// Shutdown and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// OnShutdown registers f to be called, in its own goroutine, when Shutdown
// begins. Shutdown waits for in-flight requests, so a long-lived response
// (an event stream) must use this to end itself, or Shutdown lasts until
// its ctx ends.
func (s *Server) OnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }

// Shutdown stops accepting, waits for in-flight requests to finish until
// ctx ends, then closes remaining connections.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

type health struct {
	Status   string `json:"status"`
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Database string `json:"database"`
	Storage  string `json:"storage,omitempty"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := health{Status: "ok", Version: s.opts.Version, Commit: s.opts.Commit, Database: "none"}
	code := http.StatusOK
	if s.opts.Ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.opts.Ping(ctx); err != nil {
			s.opts.Logger.Warn("health check: database unreachable", "err", err)
			h.Status, h.Database, code = "unavailable", "unreachable", http.StatusServiceUnavailable
		} else {
			h.Database = "ok"
		}
	}
	if s.opts.Storage != nil {
		h.Storage = "ok"
		if err := s.opts.Storage(); err != nil {
			h.Status, h.Storage, code = "unavailable", "failing: "+err.Error(), http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}

// HostAllowed reports whether the Host header value host (with or without
// port) matches the allow list: an exact name or address, "*" for any host,
// or ".example.com" for example.com and all its subdomains. Matching
// ignores case and a trailing dot.
func HostAllowed(allowed []string, host string) bool {
	h := strings.ToLower(stripPort(host))
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	for _, a := range allowed {
		a = strings.ToLower(a)
		switch {
		case a == "*":
			return true
		case strings.HasPrefix(a, "."):
			if h == a[1:] || strings.HasSuffix(h, a) {
				return true
			}
		case a == h || stripBrackets(a) == stripBrackets(h):
			return true
		}
	}
	return false
}

func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.LastIndex(host, "]"); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := strings.LastIndex(host, ":"); i >= 0 && strings.Count(host, ":") == 1 {
		return host[:i]
	}
	return host
}

func stripBrackets(h string) string { return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]") }

func (s *Server) hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !HostAllowed(s.opts.AllowedHosts, r.Host) {
			s.opts.Logger.Warn("request refused: Host not allowed", "host", r.Host, "remote_addr", r.RemoteAddr,
				"hint", "add it to FLOWNEXUS_ALLOWED_HOSTS")
			http.Error(w, "400 Bad Request: Host not allowed", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush for event streams.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe records metrics, logs server errors once, and turns a panic in a
// handler into a 500 that is logged with the request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.opts.Logger.Error("handler panic", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", p)
				if rec.code == 0 {
					http.Error(rec, "500 Internal Server Error", http.StatusInternalServerError)
				}
			}
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			s.requests.WithLabelValues(r.Method, strconv.Itoa(code)).Inc()
			s.duration.WithLabelValues(r.Method).Observe(time.Since(start).Seconds())
			if code >= 500 {
				s.opts.Logger.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "code", code,
					"remote_addr", r.RemoteAddr)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to ("" outside a
// request): the X-Request-Id a proxy in front set, when it is a plain
// token of at most 64 characters, or one made here. Every response carries
// it in X-Request-Id, and log lines about the request name it.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
