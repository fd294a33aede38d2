package web

import (
	"net/http"
	"net/url"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// DevicesPageSize is how many devices one page of /devices lists.
const DevicesPageSize = 50

type devicesData struct {
	Q, State, After string
	Devices         []store.Endpoint
	Next            string // the next page's URL; "" on the last
}

// devices is GET /devices: endpoints by name, ?q= a name prefix,
// ?state=online|offline, ?after= the last name of the previous page.
func (w *Web) devices(rw http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d := devicesData{Q: q.Get("q"), State: q.Get("state"), After: q.Get("after")}
	p := store.EndpointPage{Scope: s.scope(auth.ViewOverview), Prefix: d.Q, After: d.After, Limit: DevicesPageSize}
	switch d.State {
	case "":
	case "online", "offline":
		on := d.State == "online"
		p.Online = &on
	default:
		return badRequest("state: want online or offline")
	}
	if len(d.Q) > 256 || len(d.After) > 256 {
		return badRequest("q and after: at most 256 bytes")
	}
	eps, more, err := w.cfg.Store.PageEndpoints(r.Context(), p)
	if err != nil {
		return err
	}
	d.Devices = eps
	if more {
		v := url.Values{}
		if d.Q != "" {
			v.Set("q", d.Q)
		}
		if d.State != "" {
			v.Set("state", d.State)
		}
		v.Set("after", eps[len(eps)-1].Name)
		d.Next = "/devices?" + v.Encode()
	}
	w.render(rw, r, http.StatusOK, "devices", s, d)
	return nil
}
