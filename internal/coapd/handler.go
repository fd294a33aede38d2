package coapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/dtlsmux"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
)

// handle is the one go-coap handler: it routes requests by method and
// path through the route table (Server.Handle) and notifications by
// token, and writes the answer or the mapped error.
func (s *Server) handle(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
	defer func() {
		// A handler bug must not take the server down; the device gets
		// 5.00 and the log the panic.
		if p := recover(); p != nil {
			s.log.Error("coap handler panic", "remote_addr", remoteAddr(w).String(), "panic", fmt.Sprint(p))
			_ = w.SetResponse(codes.InternalServerError, message.TextPlain, nil)
		}
	}()
	code := r.Code()
	switch {
	case code == codes.Empty:
		return // empty ACK/RST of something we sent: nothing to answer
	case code >= codes.Created:
		s.notification(w, r)
		return
	}
	req := &Request{Msg: r, conn: w.Conn(), peer: peerOf(w.Conn()), path: pathSegments(r)}
	var resp Response
	rt, err := s.route(code, req.path)
	if err == nil {
		req.route = rt
		resp, err = rt.handler(req)
	}
	if err != nil {
		c, msg := codeFor(err)
		var body io.ReadSeeker
		if msg != "" {
			body = bytes.NewReader([]byte(msg))
		}
		_ = w.SetResponse(c, message.TextPlain, body)
		lvl := s.log.Info
		if c >= codes.InternalServerError {
			lvl = s.log.Error
		}
		attrs := []any{"endpoint", req.Endpoint, "remote_addr", remoteAddr(w).String(),
			"path", "/" + strings.Join(req.path, "/"), "method", code.String(), "code", codeString(c), "err", err}
		if req.peer != nil {
			attrs = append(attrs, "identity", req.peer.identity)
		}
		lvl("coap request refused", attrs...)
		return
	}
	if err := w.SetResponse(resp.Code, resp.Format, resp.Body, resp.Options...); err != nil {
		s.log.Error("coap response failed", "endpoint", req.Endpoint, "remote_addr", remoteAddr(w).String(), "err", err)
		return
	}
	for _, l := range resp.Location {
		w.Message().AddOptionString(message.LocationPath, l)
	}
}

// pathSegments returns the Uri-Path options of r.
func pathSegments(r *pool.Message) []string {
	opts := r.Options()
	var segs []string
	for _, o := range opts {
		if o.ID == message.URIPath {
			segs = append(segs, string(o.Value))
		}
	}
	return segs
}

func remoteAddr(w *responsewriter.ResponseWriter[*udpclient.Conn]) netip.AddrPort {
	return connAddr(w.Conn())
}

// connAddr is the remote address of a connection, IPv4-mapped addresses
// unmapped so that one device has one key on dual-stack sockets.
func connAddr(cc *udpclient.Conn) netip.AddrPort {
	if a, ok := cc.RemoteAddr().(*net.UDPAddr); ok {
		return dtlsmux.Unmapped(a.AddrPort())
	}
	return netip.AddrPort{}
}

// maxSMS bounds the sms parameter (an MSISDN has at most 15 digits).
const maxSMS = 64

// checkText accepts a device-given string the store keeps as text: at
// most max bytes of UTF-8 without control characters, as every engine
// holds it the same way.
func checkText(v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.ValidString(v) {
		return errors.New("not valid UTF-8")
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return fmt.Errorf("control character %U", c)
		}
	}
	return nil
}

// capLifetime returns lt, or the server's maximum lifetime when lt is
// longer: the device is then taken offline when the maximum passes
// without an Update from it, and registers again when its next Update is
// refused.
func (s *Server) capLifetime(endpoint string, lt uint32) uint32 {
	if s.maxLifetime == 0 || lt <= s.maxLifetime {
		return lt
	}
	s.log.Info("registration lifetime capped", "endpoint", endpoint, "lifetime", lt, "max_lifetime", s.maxLifetime)
	return s.maxLifetime
}

// regParams are the query parameters of Register and Update.
type regParams struct {
	ep, lwm2m, b, sms       string
	hasEP, hasVersion, hasB bool
	hasSMS, queue           bool
	lt                      uint32
	hasLT                   bool
}

func parseParams(r *pool.Message) (regParams, error) {
	var p regParams
	for _, o := range r.Options() {
		if o.ID != message.URIQuery {
			continue
		}
		q := string(o.Value)
		k, v, hasV := strings.Cut(q, "=")
		switch k {
		case "ep":
			p.ep, p.hasEP = v, true
		case "lt":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return p, badRequest("lt=%q is not a positive integer", v)
			}
			p.lt, p.hasLT = uint32(n), true
		case "lwm2m":
			p.lwm2m, p.hasVersion = v, true
		case "b":
			if v == "" || strings.Trim(v, "UQSNT") != "" {
				return p, badRequest("b=%q is not a binding", v)
			}
			p.b, p.hasB = v, true
		case "sms":
			if err := checkText(v, maxSMS); err != nil {
				return p, badRequest("sms: %v", err)
			}
			p.sms, p.hasSMS = v, true
		case "Q":
			if hasV {
				return p, badRequest("Q takes no value")
			}
			p.queue = true
		}
	}
	return p, nil
}

// objectLinks reads and parses the link-format payload of Register or
// Update; ok is false when there is none.
func objectLinks(r *pool.Message) (reg linkformat.Registration, raw []byte, ok bool, err error) {
	if cf, err := r.ContentFormat(); err == nil && cf != message.AppLinkFormat {
		return reg, nil, false, fmt.Errorf("%w: %s, want link-format", errFormat, lwm2m.MediaType(cf))
	}
	raw, err = r.ReadBody()
	if err != nil {
		return reg, nil, false, badRequest("payload: %v", err)
	}
	if len(raw) == 0 {
		return reg, nil, false, nil
	}
	if !utf8.Valid(raw) || bytes.IndexByte(raw, 0) >= 0 {
		return reg, nil, false, badRequest("object links: not valid UTF-8 text")
	}
	reg, err = linkformat.ParseRegistration(raw)
	if err != nil {
		return reg, nil, false, err
	}
	return reg, raw, true, nil
}

// register is the Register route (POST /rd).
func (s *Server) register(rq *Request) (Response, error) {
	r, cc, pr := rq.Msg, rq.conn, rq.peer
	addr := connAddr(cc)
	p, err := parseParams(r)
	if err != nil {
		rq.Endpoint = p.ep
		return Response{}, err
	}
	if !p.hasEP || p.ep == "" {
		return Response{}, badRequest("missing endpoint name (ep)")
	}
	if err := lwm2m.CheckEndpointName(p.ep); err != nil {
		return Response{}, badRequest("ep: %v", err)
	}
	rq.Endpoint = p.ep
	if err := s.checkRegister(r.Context(), pr, p.ep, addr); err != nil {
		return Response{}, err
	}
	if err := s.checkKnown(r.Context(), pr, p.ep); err != nil {
		return Response{}, err
	}
	ver, err := lwm2m.ParseVersion(p.lwm2m)
	if err != nil {
		return Response{}, fmt.Errorf("%w: lwm2m=%q", errVersion, p.lwm2m)
	}
	if !p.hasVersion {
		ver = lwm2m.V1_0
	}
	links, raw, _, err := objectLinks(r)
	if err != nil {
		return Response{}, err
	}
	if links.RootPath == "" {
		links.RootPath = "/"
	}
	req := registry.RegisterRequest{
		Endpoint:    p.ep,
		Lifetime:    s.lifetime,
		Version:     ver,
		Binding:     p.b,
		Queue:       p.queue || (ver == lwm2m.V1_0 && strings.Contains(p.b, "Q")),
		SMS:         p.sms,
		Objects:     links,
		ObjectLinks: string(raw),
		Addr:        addr,
		Transport:   pr.transport(),
	}
	if p.hasLT {
		req.Lifetime = s.capLifetime(p.ep, p.lt)
	}
	req.CheckCredentials = s.checkPlain(pr)
	reg, err := s.reg.Register(r.Context(), req)
	if err != nil {
		return Response{}, s.refusal(r.Context(), err, p.ep, addr)
	}
	if pr != nil {
		s.bindSession(reg.Endpoint, cc)
	}
	s.log.Info("registered", "endpoint", reg.Endpoint, "remote_addr", addr.String(), "registration", reg.ID,
		"lwm2m", string(reg.Version), "lifetime", reg.Lifetime, "binding", reg.Binding, "queue", reg.Queue)
	s.activity(r, Activity{Kind: ActivityRegister, Registration: reg})
	rq.Endpoint = reg.Endpoint
	return Response{Code: codes.Created, Location: []string{"rd", reg.ID}}, nil
}

// update is the Update route (POST /rd/{id}).
func (s *Server) update(rq *Request) (Response, error) {
	r, id, cc, pr := rq.Msg, rq.Var("id"), rq.conn, rq.peer
	addr := connAddr(cc)
	cur, err := s.reg.Lookup(r.Context(), id)
	if err != nil {
		return Response{}, err
	}
	rq.Endpoint = cur.Endpoint
	if err := s.checkRegistration(r.Context(), pr, cur, addr); err != nil {
		return Response{}, err
	}
	p, err := parseParams(r)
	if err != nil {
		return Response{}, err
	}
	links, raw, hasLinks, err := objectLinks(r)
	if err != nil {
		return Response{}, err
	}
	if p.hasLT {
		p.lt = s.capLifetime(cur.Endpoint, p.lt)
	}
	req := registry.UpdateRequest{
		Lifetime:   p.lt,
		Binding:    p.b,
		Queue:      p.queue || strings.Contains(p.b, "Q"),
		SMS:        p.sms,
		HasSMS:     p.hasSMS,
		HasObjects: hasLinks,
		Objects:    links,
		Addr:       addr,
		Transport:  pr.transport(),
	}
	if hasLinks {
		req.ObjectLinks = string(raw)
	}
	req.CheckCredentials = s.checkPlain(pr)
	reg, err := s.reg.Update(r.Context(), id, req)
	if err != nil {
		return Response{}, s.refusal(r.Context(), err, cur.Endpoint, addr)
	}
	if pr != nil {
		s.bindSession(reg.Endpoint, cc)
	}
	s.log.Debug("registration updated", "endpoint", reg.Endpoint, "remote_addr", addr.String(), "registration", reg.ID)
	s.activity(r, Activity{Kind: ActivityUpdate, Registration: reg})
	rq.Endpoint = reg.Endpoint
	return Response{Code: codes.Changed}, nil
}

// deregister is the De-register route (DELETE /rd/{id}).
func (s *Server) deregister(rq *Request) (Response, error) {
	r, id, addr, pr := rq.Msg, rq.Var("id"), rq.RemoteAddr(), rq.peer
	cur, err := s.reg.Lookup(r.Context(), id)
	if err != nil {
		return Response{}, err
	}
	rq.Endpoint = cur.Endpoint
	if err := s.checkRegistration(r.Context(), pr, cur, addr); err != nil {
		return Response{}, err
	}
	deregister := s.reg.Deregister
	if s.checkPlain(pr) {
		deregister = s.reg.DeregisterChecked
	}
	reg, err := deregister(r.Context(), id)
	if err != nil {
		return Response{}, s.refusal(r.Context(), err, cur.Endpoint, addr)
	}
	s.log.Info("deregistered", "endpoint", reg.Endpoint, "registration", reg.ID)
	rq.Endpoint = reg.Endpoint
	return Response{Code: codes.Deleted}, nil
}

// send is the Send route (POST /dp): SenML or LwM2M-CBOR values of the
// device, stored as one event. Over DTLS the device is the endpoint its
// identity is bound to; over plain CoAP, the one registered from the
// source address.
func (s *Server) send(rq *Request) (Response, error) {
	r, cc, pr := rq.Msg, rq.conn, rq.peer
	addr := connAddr(cc)
	var reg registry.Registration
	var err error
	if pr != nil {
		rq.Endpoint = pr.endpoint
		reg, err = s.reg.LookupEndpoint(r.Context(), pr.endpoint)
	} else {
		reg, err = s.reg.LookupAddr(r.Context(), addr)
	}
	switch {
	case errors.Is(err, registry.ErrNotFound):
		rq.Endpoint = ""
		return Response{}, fmt.Errorf("%w: send from %s", errForbidden, addr)
	case err != nil:
		return Response{}, err
	}
	rq.Endpoint = reg.Endpoint
	if err := s.checkRegistration(r.Context(), pr, reg, addr); err != nil {
		return Response{}, err
	}
	cf, err := r.ContentFormat()
	if err != nil {
		return Response{}, fmt.Errorf("%w: send without content format", errFormat)
	}
	f := lwm2m.MediaType(cf)
	switch f {
	case lwm2m.FormatSenMLCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatLwM2MCBOR:
	default:
		return Response{}, fmt.Errorf("%w: %s for send", errFormat, f)
	}
	body, err := r.ReadBody()
	if err != nil {
		return Response{}, badRequest("payload: %v", err)
	}
	recs, err := codec.Decode(f, body, lwm2m.Root, s.types)
	if err != nil {
		return Response{}, err
	}
	if len(recs) == 0 {
		return Response{}, badRequest("send without values")
	}
	item := ingest.Report(reg.EndpointID, ingest.KindSend, recs, s.reg.Now())
	if s.checkPlain(pr) {
		item.NoCredential = reg.Endpoint
	}
	// Not cut short by the connection closing: the answer must say
	// whether the values are stored (see Server.Shutdown).
	if err := s.ingest.Write(context.WithoutCancel(r.Context()), item); err != nil {
		return Response{}, storeError(s.refusal(r.Context(), err, reg.Endpoint, addr))
	}
	s.seen(r.Context(), reg, cc, pr)
	s.activity(r, Activity{Kind: ActivitySend, Registration: reg, Records: recs})
	return Response{Code: codes.Changed}, nil
}

// storeError marks a failure to store as the server's, not the device's.
func storeError(err error) error {
	if errors.Is(err, ingest.ErrClosed) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

// notifyReport is the ingest item of a notification of obs: the values
// of a composite observation are one event, even one value.
func notifyReport(reg registry.Registration, obs registry.Observation, recs []lwm2m.Record, recv time.Time) ingest.Item {
	if obs.Composite {
		return ingest.ReportGroup(reg.EndpointID, ingest.KindNotify, recs, recv)
	}
	return ingest.Report(reg.EndpointID, ingest.KindNotify, recs, recv)
}

// notification handles a message with a response code: a notification of
// an observation, found by token in memory or, after a restart, in the
// store. Its values are stored before the handler returns, so go-coap's
// ACK of a confirmable notification follows the commit. An unknown token
// is answered with Reset.
func (s *Server) notification(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
	obs, reg, ok := s.reg.Observation(r.Token())
	if !ok && len(r.Token()) > 0 {
		// Not in memory: an observation made before a restart is in the
		// store.
		var err error
		obs, reg, err = s.reg.LookupObservation(r.Context(), r.Token())
		switch {
		case err == nil:
			ok = true
		case !errors.Is(err, registry.ErrNotFound):
			// Not known yet whether it is ours: no answer, so the device
			// retransmits instead of dropping the observation.
			s.log.Error("observation lookup failed", "remote_addr", remoteAddr(w).String(), "err", err)
			_ = w.SetResponse(codes.Empty, message.TextPlain, nil)
			w.Message().SetOptionUint32(optAnswer, answerNone)
			return
		}
	}
	pr := peerOf(w.Conn())
	if ok && ((pr == nil) != (reg.Transport == registry.TransportUDP) || (pr != nil && pr.endpoint != reg.Endpoint)) {
		// A token of another device's observation, or of a DTLS device
		// arriving in clear: not ours to take.
		ok = false
	}
	if !ok {
		// processReceived turns this empty answer into a Reset.
		_ = w.SetResponse(codes.Empty, message.TextPlain, nil)
		w.Message().SetOptionUint32(optAnswer, answerReset)
		s.log.Debug("notification for unknown token", "remote_addr", remoteAddr(w).String(),
			"token", fmt.Sprintf("%x", []byte(r.Token())), "code", codeString(r.Code()))
		return
	}
	path := obs.Path().String()
	if r.Code() != codes.Content && r.Code() != codes.Changed {
		// An error code ends the observation (RFC 7641 §4.2).
		s.reg.RemoveObservation(obs.Token)
		s.log.Info("observation ended by device", "endpoint", reg.Endpoint, "remote_addr", remoteAddr(w).String(),
			"path", path, "code", codeString(r.Code()))
		return
	}
	f := obs.Format
	if cf, err := r.ContentFormat(); err == nil {
		f = lwm2m.MediaType(cf)
	}
	var recs []lwm2m.Record
	body, err := r.ReadBody()
	if err == nil {
		recs, err = codec.Decode(f, body, obs.Path(), s.types)
		if err == nil && len(recs) > 0 {
			item := notifyReport(reg, obs, recs, s.reg.Now())
			// As for Send: the outcome of the commit, whatever happens to
			// the connection meanwhile.
			if err = s.ingest.Write(context.WithoutCancel(r.Context()), item); err != nil {
				// Not stored: no ACK, so the device retransmits.
				s.log.Error("notification not stored", "endpoint", reg.Endpoint, "remote_addr", remoteAddr(w).String(),
					"path", path, "err", err)
				_ = w.SetResponse(codes.Empty, message.TextPlain, nil)
				w.Message().SetOptionUint32(optAnswer, answerNone)
				return
			}
		}
	}
	if err != nil {
		// Acknowledged anyway: a retransmission carries the same bad
		// payload.
		recs = nil
		c, _ := codeFor(err)
		s.log.Info("bad notification", "endpoint", reg.Endpoint, "remote_addr", remoteAddr(w).String(),
			"path", path, "code", codeString(c), "err", err)
	}
	s.seen(r.Context(), reg, w.Conn(), pr)
	s.emit(Activity{Kind: ActivityNotify, Registration: reg, Records: recs})
}

// seen records traffic from the device of reg. A DTLS session keeps its
// device across address changes (Connection ID), so a message of a DTLS
// device from a new address moves its registration there and makes the
// session the one requests go out on.
func (s *Server) seen(ctx context.Context, reg registry.Registration, cc *udpclient.Conn, pr *peer) {
	s.reg.Seen(reg.ID)
	if pr == nil {
		return
	}
	s.bindSession(reg.Endpoint, cc)
	if addr := connAddr(cc); addr != reg.Addr || reg.Transport != registry.TransportDTLS {
		if err := s.reg.SetAddr(ctx, reg.ID, addr, registry.TransportDTLS); err != nil {
			s.log.Warn("recording a device's new address failed", "endpoint", reg.Endpoint,
				"remote_addr", addr.String(), "err", err)
		} else {
			s.log.Info("device address changed", "endpoint", reg.Endpoint, "remote_addr", addr.String(),
				"previous_addr", reg.Addr.String())
		}
	}
}
