package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// Endpoint is an endpoint as the API shows it.
type Endpoint struct {
	Name            string     `json:"name" example:"urn:imei:356938035643809"`
	Online          bool       `json:"online"`
	RegistrationID  string     `json:"registration_id,omitempty"`
	RegisteredAt    *time.Time `json:"registered_at,omitempty"`
	LastSeen        *time.Time `json:"last_seen,omitempty"`
	Address         string     `json:"address,omitempty"`
	LifetimeSeconds int64      `json:"lifetime_seconds"`
	Binding         string     `json:"binding,omitempty"`
	LwM2MVersion    string     `json:"lwm2m_version,omitempty"`
	QueueMode       bool       `json:"queue_mode"`
	Transport       string     `json:"transport,omitempty" enum:"udp,dtls" doc:"What the device last talked over: plain CoAP (udp) or CoAP over DTLS (dtls)"`
	FirmwareVersion string     `json:"firmware_version,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Object is one object the endpoint announced at registration.
type Object struct {
	ID        uint16   `json:"id"`
	Name      string   `json:"name,omitempty" doc:"From the object definitions; empty for unknown objects"`
	Version   string   `json:"version,omitempty"`
	Instances []uint16 `json:"instances"`
}

func toEndpoint(e store.Endpoint) Endpoint {
	return Endpoint{
		Name: e.Name, Online: e.Online, RegistrationID: e.RegistrationID,
		RegisteredAt: render.OptionalTime(e.RegisteredAt), LastSeen: render.OptionalTime(e.LastSeen), Address: e.Address,
		LifetimeSeconds: int64(e.Lifetime / time.Second), Binding: e.Binding, LwM2MVersion: e.LwM2MVersion,
		QueueMode: e.QueueMode, Transport: string(e.Transport), FirmwareVersion: e.FirmwareVersion, CreatedAt: e.CreatedAt.UTC(),
	}
}

// values renders records as the API shows values: path, resource name,
// type, JSON value and the device's timestamp.
func (a *API) values(rs []lwm2m.Record) []render.Value { return render.Records(a.opts.Objects, rs) }

type listEndpointsInput struct {
	Online string `query:"online" enum:"true,false," doc:"Only online (true) or offline (false) endpoints"`
	Q      string `query:"q" doc:"Only endpoints whose name contains this text"`
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"1000"`
	Offset int    `query:"offset" default:"0" minimum:"0"`
	// The filters and the cursor besides the name search and offset.
	Site            string `query:"site" maxLength:"64" doc:"Only endpoints of this site (name)"`
	Transport       string `query:"transport" enum:"udp,dtls," doc:"Only endpoints that last talked over this transport"`
	FirmwareVersion string `query:"firmware_version" maxLength:"255" doc:"Only endpoints reporting this firmware version"`
	Object          string `query:"object" maxLength:"5" doc:"Only endpoints whose registration announced this object id, e.g. 3303"`
	Prefix          string `query:"prefix" maxLength:"256" doc:"Only endpoints whose name starts with this"`
	After           string `query:"after" maxLength:"1024" doc:"Cursor: the endpoints after this name (next_after of the previous page); use instead of offset"`
}

type listEndpointsOutput struct {
	Body struct {
		Items  []Endpoint `json:"items"`
		Total  int        `json:"total" doc:"Endpoints matching the filter, over all pages"`
		Limit  int        `json:"limit"`
		Offset int        `json:"offset"`
		// The cursor to the next page.
		NextAfter string `json:"next_after,omitempty" doc:"Pass as after for the next page; absent on the last"`
		Next      string `json:"next,omitempty" doc:"The next page's URL (path and query); absent on the last"`
	}
}

type endpointInput struct {
	Endpoint string `path:"ep" doc:"Endpoint name" example:"urn:imei:356938035643809"`
}

type endpointOutput struct {
	Body struct {
		Endpoint
		Objects []Object       `json:"objects"`
		Values  []render.Value `json:"values" doc:"Latest value of every resource the server has received"`
	}
}

type historyInput struct {
	Endpoint string    `path:"ep"`
	Path     string    `query:"path" required:"true" doc:"Resource or resource instance path" example:"/3303/0/5700"`
	From     time.Time `query:"from" doc:"Start of the range (RFC 3339), default 24 hours before to"`
	To       time.Time `query:"to" doc:"End of the range (RFC 3339), default now"`
	Limit    int       `query:"limit" default:"1000" minimum:"1" maximum:"100000"`
	Points   int       `query:"points" minimum:"0" maximum:"10000" doc:"For charts: at most this many numeric points over the whole range, chosen by LTTB, in points (oldest first) instead of values; 0: the values"`
}

type historyOutput struct {
	Body struct {
		Path   string         `json:"path"`
		From   time.Time      `json:"from"`
		To     time.Time      `json:"to"`
		Values []render.Value `json:"values" doc:"Newest first"`
		Points []HistoryPoint `json:"points,omitempty" doc:"With points=N: at most N points, oldest first (values is then empty)"`
	}
}

// Event is a group of values a device reported together.
type Event struct {
	ID         int64     `json:"id"`
	Kind       string    `json:"kind" example:"send" doc:"send, notify (a notification of several values), read, or firmware.<state> (a firmware update changed state: firmware.pending, firmware.downloading, firmware.updating, firmware.succeeded, firmware.failed, firmware.cancelled)"`
	Time       time.Time `json:"time"`
	ReceivedAt time.Time `json:"received_at"`
}

type eventsInput struct {
	Endpoint string `path:"ep"`
	Limit    int    `query:"limit" default:"100" minimum:"1" maximum:"1000"`
}

type eventsOutput struct {
	Body struct {
		Items []Event `json:"items" doc:"Newest first"`
	}
}

func (a *API) routes(h huma.API) {
	register(h, auth.ViewOverview, huma.Operation{
		OperationID: "list-endpoints", Method: http.MethodGet, Path: Prefix + "/endpoints",
		Summary: "List endpoints", Tags: []string{"endpoints"},
	}, a.listEndpoints)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "get-endpoint", Method: http.MethodGet, Path: Prefix + "/endpoints/{ep}",
		Summary: "One endpoint with its objects and latest values", Tags: []string{"endpoints"},
	}, a.getEndpoint)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "get-history", Method: http.MethodGet, Path: Prefix + "/endpoints/{ep}/history",
		Summary: "Values of one path over a time range", Tags: []string{"endpoints"},
	}, a.history)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "list-events", Method: http.MethodGet, Path: Prefix + "/endpoints/{ep}/events",
		Summary: "Events of an endpoint: values reported together", Tags: []string{"endpoints"},
		Description: "An event groups the values a device reported together: every Send, and every notification " +
			"or read that carried several values (a composite observation, an object instance). " +
			"A notification of a single resource is stored as a value only and is not listed here: " +
			"its values are in the endpoint's history (GET /endpoints/{ep}/history) and in the event stream.",
	}, a.events)
	a.operationRoutes(h)
}

// endpoint returns the named device for a per-device route: 404 when it
// does not exist or is outside the caller's scope for the route's
// permission (the two are not told apart).
func (a *API) endpoint(ctx context.Context, name string) (store.Endpoint, error) {
	e, err := a.opts.Store.GetEndpoint(ctx, name)
	if err == nil && !userFrom(ctx).scope().Contains(e.SiteID) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return e, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %q", name))
	}
	if err != nil {
		return e, a.fail(ctx, err)
	}
	return e, nil
}

func (a *API) listEndpoints(ctx context.Context, in *listEndpointsInput) (*listEndpointsOutput, error) {
	sc := userFrom(ctx).scope()
	f := store.EndpointFilter{NameLike: in.Q, Limit: in.Limit + 1, Offset: in.Offset, Scope: &sc}
	if in.Online != "" {
		on := in.Online == "true"
		f.Online = &on
	}
	if err := a.filterEndpoints(ctx, &f, in); err != nil {
		return nil, err
	}
	eps, total, err := a.opts.Store.ListEndpoints(ctx, f)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listEndpointsOutput{}
	if len(eps) > in.Limit {
		eps = eps[:in.Limit]
		nextEndpoints(out, in, eps[len(eps)-1].Name)
	}
	out.Body.Items = make([]Endpoint, 0, len(eps))
	for _, e := range eps {
		out.Body.Items = append(out.Body.Items, toEndpoint(e))
	}
	out.Body.Total, out.Body.Limit, out.Body.Offset = total, in.Limit, in.Offset
	return out, nil
}

func (a *API) getEndpoint(ctx context.Context, in *endpointInput) (*endpointOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	out := &endpointOutput{}
	out.Body.Endpoint = toEndpoint(e)
	out.Body.Objects = []Object{}
	if e.ObjectLinks != "" {
		if reg, err := linkformat.ParseRegistration([]byte(e.ObjectLinks)); err == nil {
			for _, o := range reg.Objects {
				obj := Object{ID: o.ID, Version: o.Version, Instances: o.Instances}
				if obj.Instances == nil {
					obj.Instances = []uint16{}
				}
				if def, ok := a.opts.Objects.Object(o.ID); ok {
					obj.Name = def.Name
				}
				out.Body.Objects = append(out.Body.Objects, obj)
			}
		}
	}
	vals, err := a.opts.Store.LatestResources(ctx, e.ID, lwm2m.Root)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out.Body.Values = make([]render.Value, 0, len(vals))
	for _, v := range vals {
		out.Body.Values = append(out.Body.Values, render.ValueOf(a.opts.Objects, v.Path, v.Value, v.DeviceTime, v.ReceivedAt))
	}
	return out, nil
}

func (a *API) history(ctx context.Context, in *historyInput) (*historyOutput, error) {
	p, err := lwm2m.ParsePath(in.Path)
	if err != nil || p.Depth() < 3 {
		return nil, badRequest(fmt.Sprintf("path %q: want a resource path such as /3303/0/5700", in.Path))
	}
	to, from := in.To, in.From
	if to.IsZero() {
		to = a.opts.Now()
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		return nil, badRequest("from must be before to")
	}
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	if in.Points > 0 {
		return a.historyPoints(ctx, e, p, from, to, in.Points)
	}
	vals, err := a.opts.Store.ResourceHistory(ctx, e.ID, p, from, to, in.Limit)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &historyOutput{}
	out.Body.Path, out.Body.From, out.Body.To = p.String(), from.UTC(), to.UTC()
	out.Body.Values = make([]render.Value, 0, len(vals))
	for _, v := range vals {
		out.Body.Values = append(out.Body.Values, render.ValueOf(a.opts.Objects, v.Path, v.Value, v.DeviceTime, v.ReceivedAt))
	}
	return out, nil
}

func (a *API) events(ctx context.Context, in *eventsInput) (*eventsOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	evs, err := a.opts.Store.ListEvents(ctx, e.ID, in.Limit)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &eventsOutput{}
	out.Body.Items = make([]Event, 0, len(evs))
	for _, ev := range evs {
		out.Body.Items = append(out.Body.Items, Event{ID: ev.ID, Kind: ev.Kind, Time: ev.Time.UTC(), ReceivedAt: ev.ReceivedAt.UTC()})
	}
	return out, nil
}
