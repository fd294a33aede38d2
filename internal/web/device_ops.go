package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// FlashCookie carries the outcome of a device page's action to the page
// the action redirects to (read once, then cleared).
const FlashCookie = "flownexus_flash"

// flash is a one-time message on a page: the outcome of an action.
type flash struct {
	Error bool   `json:"e,omitempty"`
	Text  string `json:"t"`
}

// maxFlash bounds a flash's text, to keep its cookie small.
const maxFlash = 1500

func (w *Web) setFlash(rw http.ResponseWriter, r *http.Request, f flash) {
	if len(f.Text) > maxFlash {
		f.Text = strings.ToValidUTF8(f.Text[:maxFlash], "") + "…"
	}
	b, _ := json.Marshal(f)
	http.SetCookie(rw, &http.Cookie{Name: FlashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/devices/",
		MaxAge: 60, HttpOnly: true, Secure: w.secure(r), SameSite: http.SameSiteLaxMode})
}

// takeFlash returns the request's flash, if any, and clears it.
func (w *Web) takeFlash(rw http.ResponseWriter, r *http.Request) *flash {
	c, err := r.Cookie(FlashCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	http.SetCookie(rw, &http.Cookie{Name: FlashCookie, Path: "/devices/", MaxAge: -1, HttpOnly: true,
		Secure: w.secure(r), SameSite: http.SameSiteLaxMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil || f.Text == "" {
		return nil
	}
	return &f
}

func (w *Web) devicePage(name string) string { return "/devices/" + url.PathEscape(name) }

// deviceOperation is POST /devices/{endpoint}/operations: the form fields
// kind (read, observe, cancel-observe, write, execute, discover), path,
// value (write), args (execute) and queue ("1": always queue). The form
// becomes an operation exactly as the API's body does
// (devmgmt.Manager.Operation); bad input answers the page again with
// status 400 and the message. A device that is online and not in queue
// mode gets it now (Devices.Do, bounded by OpTimeout) and the page shows
// the answer; else, or when asked to, it is queued (Jobs.Enqueue) and the
// page lists it, its status following live. Either way the answer is a
// redirect back to the device page with the outcome as its flash.
func (w *Web) deviceOperation(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	ep, err := w.endpoint(ctx, s, auth.PerformOperations, r.PathValue("endpoint"))
	if err != nil {
		return err
	}
	if w.cfg.Devices == nil || w.cfg.Jobs == nil {
		return problem.New(http.StatusServiceUnavailable, "unavailable", "device operations are not available on this server")
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("the form could not be read")
	}
	kind := r.PostFormValue("kind")
	req := devmgmt.Request{Path: r.PostFormValue("path"), Args: r.PostFormValue("args")}
	if kind == string(devmgmt.KindWrite) {
		v, _ := json.Marshal(r.PostFormValue("value"))
		req.Value = v
	}
	op, err := w.cfg.Devices.Operation(kind, req, ep.ObjectLinks)
	if err != nil {
		p, _ := problem.From(err, "")
		return w.deviceAgain(rw, r, s, ep, p.Detail)
	}
	what := strings.TrimSpace(kind + " " + req.Path)
	if r.PostFormValue("queue") != "1" && ep.Online && !ep.QueueMode {
		ctx := devmgmt.WithOrigin(ctx, registry.Origin{Kind: registry.OriginAPI, UserID: s.user.ID})
		c, cancel := context.WithTimeout(ctx, w.cfg.OpTimeout)
		res, err := w.cfg.Devices.Do(c, ep.Name, op)
		cancel()
		switch {
		case err == nil:
			w.setFlash(rw, r, flash{Text: what + ": done" + w.resultText(op, res)})
		case errors.Is(err, devmgmt.ErrInvalid):
			p, _ := problem.From(err, "")
			return w.deviceAgain(rw, r, s, ep, p.Detail)
		default:
			id := newID()
			p, unexpected := problem.From(err, id)
			if unexpected {
				w.log.Error("device operation failed", "endpoint", ep.Name, "kind", kind, "request_id", id, "err", err)
			}
			w.setFlash(rw, r, flash{Error: true, Text: what + ": " + p.Detail})
		}
		http.Redirect(rw, r, w.devicePage(ep.Name), http.StatusSeeOther)
		return nil
	}
	q, err := w.cfg.Jobs.Enqueue(ctx, jobs.NewOperation{EndpointID: ep.ID, Endpoint: ep.Name, Operation: op, QueuedBy: s.user.ID})
	if errors.Is(err, devmgmt.ErrInvalid) {
		p, _ := problem.From(err, "")
		return w.deviceAgain(rw, r, s, ep, p.Detail)
	}
	if err != nil {
		return err
	}
	w.setFlash(rw, r, flash{Text: fmt.Sprintf("%s: queued as operation %d; it is sent when the device is reachable", what, q.ID)})
	http.Redirect(rw, r, w.devicePage(ep.Name)+"#operations", http.StatusSeeOther)
	return nil
}

// deviceAgain answers a device page's action with bad input: the page
// again, status 400, with the message.
func (w *Web) deviceAgain(rw http.ResponseWriter, r *http.Request, s *session, ep store.Endpoint, msg string) error {
	d, err := w.deviceData(r.Context(), s, ep)
	if err != nil {
		return err
	}
	d.Flash = &flash{Error: true, Text: msg}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, http.StatusBadRequest, "device", s, d)
	return nil
}

// resultText is what an operation run now brought back, for its flash.
func (w *Web) resultText(op devmgmt.Operation, res devmgmt.Result) string {
	var b strings.Builder
	for i, v := range render.Records(w.cfg.Objects, res.Values) {
		if i == 20 {
			fmt.Fprintf(&b, "; … %d more", len(res.Values)-i)
			break
		}
		fmt.Fprintf(&b, "; %s = %v", v.Path, v.Value)
	}
	for i, l := range res.Links {
		if i == 20 {
			fmt.Fprintf(&b, "; … %d more links", len(res.Links)-i)
			break
		}
		fmt.Fprintf(&b, "; %s", l.Path)
	}
	if op.Kind == devmgmt.KindObserve || op.Kind == devmgmt.KindObserveComposite {
		b.WriteString("; observing")
	}
	return b.String()
}

// cancelDeviceOperation is POST /devices/{endpoint}/operations/{id}/cancel:
// cancel a QUEUED operation of the device (404 for another device's,
// 409 once it is being sent or finished).
func (w *Web) cancelDeviceOperation(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	ep, err := w.endpoint(ctx, s, auth.PerformOperations, r.PathValue("endpoint"))
	if err != nil {
		return err
	}
	if w.cfg.Jobs == nil {
		return problem.New(http.StatusServiceUnavailable, "unavailable", "device operations are not available on this server")
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound("no such operation")
	}
	op, err := w.cfg.Jobs.Cancel(ctx, ep.ID, ep.Name, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(fmt.Sprintf("no operation %d on endpoint %q", id, ep.Name))
	case errors.Is(err, store.ErrConflict):
		w.setFlash(rw, r, flash{Error: true, Text: fmt.Sprintf("operation %d is no longer queued: it cannot be cancelled", id)})
	case err != nil:
		return err
	default:
		w.setFlash(rw, r, flash{Text: fmt.Sprintf("operation %d (%s) cancelled", op.ID, op.Kind)})
	}
	http.Redirect(rw, r, w.devicePage(ep.Name)+"#operations", http.StatusSeeOther)
	return nil
}
