package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// DeviceEventCount is how many of its events a device page shows.
const DeviceEventCount = 20

type deviceData struct {
	Endpoint store.Endpoint
	Objects  []string
	Values   []render.Value
	Events   []store.Event
}

// device is GET /devices/{endpoint}: registration facts, latest values,
// last events; an unknown endpoint is 404.
func (w *Web) device(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	name := r.PathValue("endpoint")
	ep, err := w.endpoint(ctx, s, auth.ViewData, name)
	if err != nil {
		return err
	}
	vals, err := w.cfg.Store.LatestResources(ctx, ep.ID, lwm2m.Root)
	if err != nil {
		return err
	}
	evs, err := w.cfg.Store.ListEvents(ctx, ep.ID, DeviceEventCount)
	if err != nil {
		return err
	}
	d := deviceData{Endpoint: ep, Events: evs, Objects: objectLinks(ep.ObjectLinks)}
	for _, v := range vals {
		d.Values = append(d.Values, render.ValueOf(w.cfg.Objects, v.Path, v.Value, v.DeviceTime, v.ReceivedAt))
	}
	w.render(rw, r, http.StatusOK, "device", s, d)
	return nil
}

// objectLinks splits a registration's link-format payload into its links
// ("</3/0>", "</1/0>;ver=1.1"), for display only.
func objectLinks(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// endpoint returns the named endpoint when the session's user may do p to
// it (in any of its sites: the site switcher narrows lists, not links);
// an endpoint outside the user's scope is 404, as an unknown one is, so
// that its name leaks nothing. Every handler acting on one device finds
// it here.
func (w *Web) endpoint(ctx context.Context, s *session, p auth.Permission, name string) (store.Endpoint, error) {
	ep, err := w.cfg.Store.GetEndpoint(ctx, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.subj.Scope(p).Contains(ep.SiteID) {
		return store.Endpoint{}, notFound("no such endpoint: " + name)
	}
	return ep, err
}

func badRequest(detail string) error { return problem.BadRequest(detail) }
