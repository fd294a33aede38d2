package api

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/series"
	"github.com/flownexus/flownexus/internal/store"
)

// filterEndpoints adds in's filters to f: an unknown site is a field
// error.
func (a *API) filterEndpoints(ctx context.Context, f *store.EndpointFilter, in *listEndpointsInput) error {
	if in.Site != "" {
		st, err := a.opts.Store.GetSiteByName(ctx, in.Site)
		if errors.Is(err, store.ErrNotFound) {
			return fieldError("query.site", "no such site: "+in.Site, in.Site)
		}
		if err != nil {
			return a.fail(ctx, err)
		}
		f.SiteID = &st.ID
	}
	if in.Object != "" {
		id, err := strconv.ParseUint(in.Object, 10, 16)
		if err != nil {
			return fieldError("query.object", "object: an object id, 0 to 65535", in.Object)
		}
		obj := uint16(id)
		f.Object = &obj
	}
	f.Prefix, f.Transport, f.FirmwareVersion, f.After = in.Prefix, in.Transport, in.FirmwareVersion, in.After
	return nil
}

// nextEndpoints sets the cursor of the page after the endpoint last of
// the request in.
func nextEndpoints(out *listEndpointsOutput, in *listEndpointsInput, last string) {
	q := url.Values{}
	for k, v := range map[string]string{"online": in.Online, "q": in.Q, "site": in.Site, "transport": in.Transport,
		"firmware_version": in.FirmwareVersion, "prefix": in.Prefix, "object": in.Object} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", strconv.Itoa(in.Limit))
	q.Set("after", last)
	out.Body.NextAfter, out.Body.Next = last, Prefix+"/endpoints?"+q.Encode()
}

// HistoryPoint is one point of a downsampled history: a numeric value
// (booleans as 0 and 1) and when it was received.
type HistoryPoint struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// historyPoints answers a history request with points > 0: the numeric
// values of the path in [from, to), streamed from the store through an
// LTTB downsampling to at most n points.
func (a *API) historyPoints(ctx context.Context, e store.Endpoint, p lwm2m.Path, from, to time.Time, n int) (*historyOutput, error) {
	count, err := a.opts.Store.CountPoints(ctx, e.ID, p.String(), from, to)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	ds := series.NewDownsampler(count, n)
	err = a.opts.Store.EachPoint(ctx, e.ID, p.String(), from, to, func(ms int64, y float64) {
		ds.Add(series.Point{X: float64(ms), Y: y})
	})
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	pts := ds.Result()
	if len(pts) > n { // n < 3, the least LTTB keeps: the first point, and the last
		pts = append(pts[:1], pts[len(pts)-1])[:n]
	}
	out := &historyOutput{}
	out.Body.Path, out.Body.From, out.Body.To = p.String(), from.UTC(), to.UTC()
	out.Body.Values = []render.Value{}
	out.Body.Points = make([]HistoryPoint, 0, len(pts))
	for _, pt := range pts {
		out.Body.Points = append(out.Body.Points, HistoryPoint{Time: time.UnixMilli(int64(pt.X)).UTC(), Value: pt.Y})
	}
	return out, nil
}
