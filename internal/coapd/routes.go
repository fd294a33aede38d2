package coapd

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Handler serves the requests of one route (Server.Handle). It returns
// the answer, or an error that the server maps to a CoAP code (codeFor:
// 4.00 for a payload that fails to decode, 4.04, 5.00 for anything it
// does not know, ...) and logs once with the request's attributes. It
// runs on the worker goroutine of the device's connection, which handles
// one message of the connection at a time, over plain CoAP and over DTLS
// alike, and must not keep req past its return.
type Handler func(req *Request) (Response, error)

// Request is a device request routed to a Handler.
type Request struct {
	// Msg is the request: its options and payload (Msg.ReadBody). Its
	// context ends when the device's connection closes.
	Msg *pool.Message
	// Endpoint names the endpoint the request concerns, for the log line
	// of a refused request; the handler sets it once it knows.
	Endpoint string

	conn  *udpclient.Conn
	peer  *peer    // nil over plain CoAP
	path  []string // Uri-Path segments
	route *route   // the route that matched
}

// Context is the request's context: it ends when the device's connection
// closes.
func (r *Request) Context() context.Context { return r.Msg.Context() }

// Path returns the request's Uri-Path segments; the caller must not
// modify them.
func (r *Request) Path() []string { return r.path }

// Var returns the path segment the route's "{name}" matched, "" when the
// pattern has no such segment.
func (r *Request) Var(name string) string {
	for i, seg := range r.route.segs {
		if seg.isVar && seg.text == name {
			return r.path[i]
		}
	}
	return ""
}

// RemoteAddr returns the device's address (IPv4-mapped addresses
// unmapped).
func (r *Request) RemoteAddr() netip.AddrPort { return connAddr(r.conn) }

// Identity returns what the DTLS handshake established about the device:
// its identity ("psk:ID" or "x509:CN") and the endpoint that identity is
// bound to. Both are "" over plain CoAP, where a device is not
// authenticated.
func (r *Request) Identity() (identity, endpoint string) {
	if r.peer == nil {
		return "", ""
	}
	return r.peer.identity, r.peer.endpoint
}

// Response is a Handler's answer.
type Response struct {
	Code codes.Code
	// Format is the content format of Body; it is sent only with a Body.
	Format message.MediaType
	// Body is the payload, nil for none. A payload larger than a block
	// goes block-wise (Block2): go-coap keeps Body and reads the following
	// blocks from it as the device asks for them, after the handler has
	// returned, and never closes it. Give a reader over memory or an
	// io.SectionReader of a file that outlives the exchange.
	Body io.ReadSeeker
	// Options are further options of the answer (ETag, Max-Age, ...).
	Options message.Options
	// Location are the Location-Path segments of a created resource.
	Location []string
}

// segment is one segment of a route's pattern: a literal, or a variable
// that matches any one segment.
type segment struct {
	text  string // the literal, or the variable's name
	isVar bool
}

// route is one entry of the route table.
type route struct {
	method  codes.Code
	pattern string
	segs    []segment
	handler Handler
}

// parsePattern splits a route pattern into its segments.
func parsePattern(pattern string) ([]segment, error) {
	if pattern == "" || strings.HasPrefix(pattern, "/") || strings.HasSuffix(pattern, "/") {
		return nil, fmt.Errorf("pattern %q: want segments joined by \"/\", without a leading or trailing one", pattern)
	}
	var segs []segment
	for p := range strings.SplitSeq(pattern, "/") {
		switch {
		case p == "":
			return nil, fmt.Errorf("pattern %q: empty segment", pattern)
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && len(p) > 2:
			name := p[1 : len(p)-1]
			if strings.ContainsAny(name, "{}") || slices.ContainsFunc(segs, func(s segment) bool { return s.isVar && s.text == name }) {
				return nil, fmt.Errorf("pattern %q: bad or repeated variable %q", pattern, p)
			}
			segs = append(segs, segment{text: name, isVar: true})
		case strings.ContainsAny(p, "{}"):
			return nil, fmt.Errorf("pattern %q: segment %q is neither a literal nor a whole {variable}", pattern, p)
		default:
			segs = append(segs, segment{text: p})
		}
	}
	return segs, nil
}

// matches reports whether path has the segments of r's pattern.
func (r *route) matches(path []string) bool {
	if len(path) != len(r.segs) {
		return false
	}
	for i, seg := range r.segs {
		if !seg.isVar && seg.text != path[i] {
			return false
		}
	}
	return true
}

// sameShape reports whether r and o match the same paths.
func (r *route) sameShape(o *route) bool {
	return slices.EqualFunc(r.segs, o.segs, func(a, b segment) bool {
		return a.isVar == b.isVar && (a.isVar || a.text == b.text)
	})
}

// Handle adds a route to the server's route table: requests with method
// whose Uri-Path matches pattern are served by h. A pattern is the path's
// segments joined by "/", without a leading one ("rd", "rd/{id}",
// "fw/{image}/{file}"); a segment "{name}" matches any one segment, which
// the handler reads with Request.Var. Routes are tried in the order they
// were added, the first that matches method and path serves; a request
// whose path only matches routes of other methods is answered 4.05, one
// whose path matches none 4.04. New adds the LwM2M routes the same way:
// POST rd (Register), POST and DELETE rd/{id} (Update, De-register), POST
// dp (Send). Notifications are not requests: they are routed by their
// token, not by this table.
//
// Handle may be called while the server serves; a request sees the table
// as it was when the request arrived. It panics when method is not a
// request method, h is nil, pattern is malformed or method already has a
// route with the same pattern (variable names aside): those are
// programming errors.
func (s *Server) Handle(method codes.Code, pattern string, h Handler) {
	if method <= codes.Empty || method >= codes.Created || h == nil {
		panic(fmt.Sprintf("coapd: Handle(%v, %q): want a request method and a handler", method, pattern))
	}
	segs, err := parsePattern(pattern)
	if err != nil {
		panic("coapd: Handle: " + err.Error())
	}
	r := &route{method: method, pattern: pattern, segs: segs, handler: h}
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	var table []*route
	if old := s.routes.Load(); old != nil {
		table = *old
	}
	for _, o := range table {
		if o.method == method && o.sameShape(r) {
			panic(fmt.Sprintf("coapd: Handle(%v, %q): the route %q serves those requests already", method, pattern, o.pattern))
		}
	}
	table = append(slices.Clip(table), r)
	s.routes.Store(&table)
}

// route finds the route of a request with method and path: the route,
// or nil and errMethod (the path is served for other methods only) or
// errNotFound.
func (s *Server) route(method codes.Code, path []string) (*route, error) {
	table := s.routes.Load()
	if table == nil {
		return nil, errNotFound
	}
	err := errNotFound
	for _, r := range *table {
		if !r.matches(path) {
			continue
		}
		if r.method == method {
			return r, nil
		}
		err = errMethod
	}
	return nil, err
}
