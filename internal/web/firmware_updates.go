package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/store"
)

// UpdatesPageSize is how many updates one page of /firmware/updates
// lists.
const UpdatesPageSize = 50

type startForm struct {
	Endpoint, Version, Method, Protocol string
}

type updatesData struct {
	Updates   []store.ListedUpdate
	Active    bool   // only active updates
	Next      string // the next page's URL; "" on the last
	CanManage bool
	Versions  []string // of the images, for the start form
	Methods   []string
	Protocols []string
	Form      startForm
	Error     string
}

// The start form's choices, as the API offers them ("auto": the device's).
var (
	updateMethods   = []string{"auto", fwupdate.MethodPull, fwupdate.MethodPush}
	updateProtocols = []string{"auto", fwupdate.ProtocolCoAP, fwupdate.ProtocolCoAPS, fwupdate.ProtocolHTTP, fwupdate.ProtocolHTTPS}
)

// updatesPage is GET /firmware/updates: the updates of the devices in
// the ViewFirmware scope, newest first (?before= an id: the next page;
// ?active=1: active ones only), and the start form.
func (w *Web) updatesPage(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.renderUpdates(rw, r, s, http.StatusOK, startForm{Method: "auto", Protocol: "auto"}, "")
}

func (w *Web) renderUpdates(rw http.ResponseWriter, r *http.Request, s *session, status int, f startForm, msg string) error {
	q := r.URL.Query()
	d := updatesData{Active: q.Get("active") == "1", CanManage: may(s, auth.ManageFirmware), Form: f, Error: msg,
		Methods: updateMethods, Protocols: updateProtocols}
	before, err := optionalID(q.Get("before"))
	if err != nil {
		return badRequest("before: " + err.Error())
	}
	ups, more, err := w.cfg.Store.PageFirmwareUpdates(r.Context(), store.FirmwareUpdatePage{
		Scope: s.scope(auth.ViewFirmware), ActiveOnly: d.Active, Before: before, Limit: UpdatesPageSize})
	if err != nil {
		return err
	}
	d.Updates = ups
	if more {
		v := url.Values{"before": {strconv.FormatInt(ups[len(ups)-1].ID, 10)}}
		if d.Active {
			v.Set("active", "1")
		}
		d.Next = "/firmware/updates?" + v.Encode()
	}
	if d.Versions, err = w.imageVersions(r); err != nil {
		return err
	}
	w.render(rw, r, status, "firmware_updates", s, d)
	return nil
}

func (w *Web) imageVersions(r *http.Request) ([]string, error) {
	list, err := w.cfg.Firmware.List(r.Context())
	var out []string
	for _, f := range list {
		out = append(out, f.Version)
	}
	return out, err
}

// optionalID parses an id query parameter: "" is 0.
func optionalID(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, errors.New("want a positive integer")
	}
	return id, nil
}

// choice maps a form's "auto" (or nothing) to fwupdate's automatic
// choice ("").
func choice(v string) string {
	if v == "auto" {
		return ""
	}
	return v
}

// startUpdate is POST /firmware/updates: endpoint, version, method,
// protocol. The device must be in the user's ManageFirmware scope (as an
// unknown one, 404 otherwise); a refusal answers the form with the
// message.
func (w *Web) startUpdate(rw http.ResponseWriter, r *http.Request, s *session) error {
	f := startForm{Endpoint: strings.TrimSpace(r.PostFormValue("endpoint")), Version: r.PostFormValue("version"),
		Method: r.PostFormValue("method"), Protocol: r.PostFormValue("protocol")}
	again := func(err error) error {
		if status, msg, ok := formProblem(err); ok {
			return w.renderUpdates(rw, r, s, status, f, msg)
		}
		return err
	}
	if f.Endpoint == "" || f.Version == "" {
		return again(badRequest("an endpoint and a version are required"))
	}
	ep, err := w.endpoint(r.Context(), s, auth.ManageFirmware, f.Endpoint)
	if err != nil {
		return again(err)
	}
	if _, err := w.cfg.Updates.Start(r.Context(), ep.Name, f.Version, fwupdate.Options{
		Method: choice(f.Method), Protocol: choice(f.Protocol), By: s.user.ID}); err != nil {
		return again(err)
	}
	http.Redirect(rw, r, "/firmware/updates", http.StatusSeeOther)
	return nil
}

// cancelUpdate is POST /firmware/updates/{id}/cancel; an update of a
// device outside the user's ManageFirmware scope is 404.
func (w *Web) cancelUpdate(rw http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "update")
	if err != nil {
		return err
	}
	up, err := w.cfg.Updates.Get(r.Context(), id)
	if err != nil {
		return err
	}
	if err := w.inScope(r, s, auth.ManageFirmware, up.EndpointID, "no such firmware update: "+r.PathValue("id")); err != nil {
		return err
	}
	if _, err := w.cfg.Updates.Cancel(r.Context(), id, s.user.ID); err != nil {
		return err
	}
	http.Redirect(rw, r, "/firmware/updates", http.StatusSeeOther)
	return nil
}

// inScope answers 404 with msg unless the endpoint endpointID is in the
// user's scope for p (in any of its sites).
func (w *Web) inScope(r *http.Request, s *session, p auth.Permission, endpointID int64, msg string) error {
	ep, err := w.cfg.Store.GetEndpointByID(r.Context(), endpointID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.subj.Scope(p).Contains(ep.SiteID) {
		return notFound(msg)
	}
	return err
}

// notFoundIf turns store.ErrNotFound into a 404 with msg.
func notFoundIf(err error, msg string) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(msg)
	}
	return err
}
