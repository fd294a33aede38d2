package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// DevicesPageSize is how many devices one page of /devices lists.
const DevicesPageSize = 50

type devicesData struct {
	Q, State, Sort, After string
	Devices               []deviceRow
	Next                  string // the next page's URL; "" on the last
	First                 string // the first page's URL, when this is another
}

// deviceRow is one device of the list with what the list shows besides
// the endpoint's own columns.
type deviceRow struct {
	store.Endpoint
	Site     string
	Firmware string // the latest /3/0/3, else the version its last update confirmed
	Battery  int64  // the latest /3/0/9 in percent; -1: none
}

// devices is GET /devices: endpoints by name, ?q= a name prefix,
// ?state=online|offline, ?sort=name|name-desc|seen, ?after= (and for
// sort=seen ?seen=, Unix milliseconds) the last device of the previous
// page.
func (w *Web) devices(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := devicesData{Q: q.Get("q"), State: q.Get("state"), Sort: q.Get("sort"), After: q.Get("after")}
	p := store.EndpointPage{Scope: s.scope(auth.ViewOverview), Prefix: d.Q, After: d.After, Limit: DevicesPageSize}
	switch d.State {
	case "":
	case "online", "offline":
		on := d.State == "online"
		p.Online = &on
	default:
		return badRequest("state: want online or offline")
	}
	switch d.Sort {
	case "", "name":
		d.Sort, p.Sort = "", store.SortName
	case string(store.SortNameDesc), string(store.SortSeen):
		p.Sort = store.EndpointSort(d.Sort)
	default:
		return badRequest("sort: want name, name-desc or seen")
	}
	if v := q.Get("seen"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("seen: want Unix milliseconds")
		}
		p.AfterSeen = time.UnixMilli(ms)
	}
	if len(d.Q) > 256 || len(d.After) > 256 {
		return badRequest("q and after: at most 256 bytes")
	}
	eps, more, err := w.cfg.Store.PageEndpoints(ctx, p)
	if err != nil {
		return err
	}
	ids := make([]int64, len(eps))
	for i, e := range eps {
		ids[i] = e.ID
	}
	facts, err := w.cfg.Store.DeviceFactsOf(ctx, ids)
	if err != nil {
		return err
	}
	sites, err := w.siteNames(ctx)
	if err != nil {
		return err
	}
	for _, e := range eps {
		row := deviceRow{Endpoint: e, Site: sites[e.SiteID], Firmware: e.FirmwareVersion, Battery: -1}
		if f, ok := facts[e.ID]; ok {
			row.Battery = f.Battery
			if f.Firmware != "" {
				row.Firmware = f.Firmware
			}
		}
		d.Devices = append(d.Devices, row)
	}
	link := func(after *store.Endpoint) string {
		v := url.Values{}
		for k, x := range map[string]string{"q": d.Q, "state": d.State, "sort": d.Sort} {
			if x != "" {
				v.Set(k, x)
			}
		}
		if after != nil {
			v.Set("after", after.Name)
			if p.Sort == store.SortSeen {
				seen := int64(0) // never seen
				if !after.LastSeen.IsZero() {
					seen = after.LastSeen.UnixMilli()
				}
				v.Set("seen", strconv.FormatInt(seen, 10))
			}
		}
		return "/devices?" + v.Encode()
	}
	if more {
		d.Next = link(&eps[len(eps)-1])
	}
	if d.After != "" {
		d.First = link(nil)
	}
	w.render(rw, r, http.StatusOK, "devices", s, d)
	return nil
}

// siteNames returns every site's name by id (0: "").
func (w *Web) siteNames(ctx context.Context) (map[int64]string, error) {
	sites, err := w.cfg.Store.ListSites(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]string, len(sites))
	for _, st := range sites {
		out[st.ID] = st.Name
	}
	return out, nil
}
