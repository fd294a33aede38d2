package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// Operations run now: they need the device online and answer with the
// device's response or an error naming why it failed (offline, timeout,
// the device's CoAP code).

type pathsBody struct {
	Path  string   `json:"path,omitempty" doc:"One path" example:"/3/0"`
	Paths []string `json:"paths,omitempty" doc:"Several paths: a composite operation (LwM2M 1.1+)"`
}

type readInput struct {
	Endpoint string `path:"ep"`
	Body     pathsBody
}

type writeInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Path   string                     `json:"path,omitempty" doc:"Resource, resource instance or object instance to write" example:"/1/0/1"`
		Value  json.RawMessage            `json:"value,omitempty" doc:"The value, for a single resource or resource instance"`
		Values map[string]json.RawMessage `json:"values,omitempty" doc:"Values keyed by path relative to path (\"1\", \"7/0\"), or absolute paths for a composite write without path"`
		Mode   string                     `json:"mode,omitempty" enum:"replace,update," doc:"replace (PUT) or update (partial, POST); default replace for a resource, update for an instance"`
	}
}

type executeInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Path string `json:"path" example:"/3/0/4"`
		Args string `json:"args,omitempty" doc:"Execute arguments, e.g. 0='v1',1"`
	}
}

type attributesInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Path       string                     `json:"path" example:"/3303/0/5700"`
		Attributes map[string]json.RawMessage `json:"attributes" doc:"pmin, pmax, gt, lt, st, epmin, epmax, edge, con, hqmax; null removes one"`
	}
}

type createInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Path     string                     `json:"path" doc:"Object to create an instance in" example:"/3303"`
		Instance *uint16                    `json:"instance,omitempty" doc:"Instance ID; the device chooses when absent"`
		Values   map[string]json.RawMessage `json:"values" doc:"Resource values keyed by resource ID (\"5700\", \"7/0\")"`
	}
}

type deleteInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Path string `json:"path" example:"/3303/1"`
	}
}

// OperationResult is the answer to an operation run now.
type OperationResult struct {
	Endpoint    string         `json:"endpoint"`
	Operation   string         `json:"operation" example:"read"`
	Paths       []string       `json:"paths"`
	Values      []render.Value `json:"values,omitempty" doc:"Decoded values of a read or observe"`
	Links       []DiscoverLink `json:"links,omitempty" doc:"Discover result"`
	Location    string         `json:"location,omitempty" doc:"Path of the instance a create made"`
	Observation string         `json:"observation,omitempty" doc:"Token of the observation (hex)"`
}

// DiscoverLink is one link of a Discover answer.
type DiscoverLink struct {
	Path       string   `json:"path"`
	Attributes []string `json:"attributes,omitempty" example:"pmin=10"`
	Dim        *int     `json:"dim,omitempty"`
	Version    string   `json:"version,omitempty"`
}

type resultOutput struct{ Body OperationResult }

type observationsOutput struct {
	Body struct {
		Items []Observation `json:"items"`
	}
}

// Observation is an observation the server holds on a device, and why.
type Observation struct {
	Token     string    `json:"token" doc:"CoAP token of the Observe request (hex)"`
	Paths     []string  `json:"paths"`
	Composite bool      `json:"composite"`
	Format    string    `json:"format" doc:"Content format asked for"`
	CreatedAt time.Time `json:"created_at"`
	Origin    string    `json:"origin" enum:"auto-observe,api,queue," doc:"Why the server holds it: auto-observe (the auto-observe policy, after the device registered), api (an operator's observe call), queue (a queued observe operation); empty when not recorded"`
	User      string    `json:"user,omitempty" doc:"The operator who asked (api, queue)"`
	Operation int64     `json:"operation,omitempty" doc:"The queued operation that made it (queue)"`
	// Attributes as the queued operations show them.
	Attributes  []string   `json:"attributes,omitempty" doc:"Notification attributes the server wrote to the observed paths before the Observe, as query parameters (pmin=60)"`
	LastValueAt *time.Time `json:"last_value_at,omitempty" doc:"When a value of an observed path was last stored: by a notification, or by a read or Send of the same path"`
}

func (a *API) operationRoutes(h huma.API) {
	op := func(id, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: http.MethodPost, Path: Prefix + "/endpoints/{ep}/" + path,
			Summary: summary, Tags: []string{"device operations"}}
	}
	register(h, auth.PerformOperations, op("read", "read", "Read a path, or several (Read-Composite)"), a.read)
	register(h, auth.PerformOperations, op("discover", "discover", "Discover the resources and attributes under a path"), a.discover)
	register(h, auth.PerformOperations, op("write", "write", "Write values (replace or partial update; composite without path)"), a.write)
	register(h, auth.PerformOperations, op("execute", "execute", "Execute a resource"), a.execute)
	register(h, auth.PerformOperations, op("write-attributes", "write-attributes", "Set notification attributes of a path"), a.writeAttributes)
	register(h, auth.PerformOperations, op("create", "create", "Create an object instance"), a.create)
	register(h, auth.PerformOperations, op("delete", "delete", "Delete an object instance"), a.deleteInstance)
	register(h, auth.PerformOperations, op("observe", "observe", "Observe a path, or several (Observe-Composite)"), a.observe)
	register(h, auth.PerformOperations, op("cancel-observe", "cancel-observe", "Cancel an observation"), a.cancelObserve)
	register(h, auth.ViewData, huma.Operation{OperationID: "list-observations", Method: http.MethodGet,
		Path: Prefix + "/endpoints/{ep}/observations", Summary: "Observations the server holds on the device, and why",
		Description: "Each observation with its origin (the auto-observe policy, an operator's API call or a queued operation), " +
			"the operator, the attributes written before it and when a value of its paths was last stored. " +
			"An endpoint that is offline holds none.",
		Tags: []string{"device operations"}}, a.observations)
}

// opBody is what the operation routes take, run now or queued: each
// route's body is a part of it.
type opBody = devmgmt.Request

// operation turns a request body into the devmgmt.Operation of kind on
// endpoint e, checked (devmgmt.Manager.Operation: the one place where a
// request becomes an operation, shared with the dashboard); its error
// a.fail maps to 400.
func (a *API) operation(ctx context.Context, e store.Endpoint, kind string, b opBody) (devmgmt.Operation, error) {
	op, err := a.opts.Devices.Operation(kind, b, e.ObjectLinks)
	if err != nil {
		return op, a.fail(ctx, err)
	}
	return op, nil
}

// runNow runs the operation of route kind with body b on the device of
// endpoint ep, bounded by the operation timeout, and renders its answer.
// An unknown endpoint is a 404 rather than "offline".
func (a *API) runNow(ctx context.Context, ep, kind string, b opBody) (*resultOutput, error) {
	e, err := a.endpoint(ctx, ep)
	if err != nil {
		return nil, err
	}
	op, err := a.operation(ctx, e, kind, b)
	if err != nil {
		return nil, err
	}
	ctx = devmgmt.WithOrigin(ctx, registry.Origin{Kind: registry.OriginAPI, UserID: userFrom(ctx).User.ID})
	c, cancel := context.WithTimeout(ctx, a.opts.OpTimeout)
	defer cancel()
	res, err := a.opts.Devices.Do(c, e.Name, op)
	if err != nil {
		return nil, a.fail(c, err)
	}
	out := OperationResult{Endpoint: e.Name, Operation: kind, Paths: pathStrings(op.Targets())}
	switch op.Kind {
	case devmgmt.KindWrite, devmgmt.KindWriteComposite:
		out.Values = a.values(op.Values)
	case devmgmt.KindDiscover:
		out.Links = []DiscoverLink{}
		for _, l := range res.Links {
			out.Links = append(out.Links, DiscoverLink{Path: l.Path.String(), Attributes: l.Attrs.Query(), Dim: l.Dim, Version: l.Ver})
		}
	case devmgmt.KindCreate:
		out.Location = res.Location.String()
	case devmgmt.KindObserve, devmgmt.KindObserveComposite:
		out.Values = a.values(res.Values)
		out.Observation = fmt.Sprintf("%x", res.Observation.Token)
	default:
		out.Values = a.values(res.Values)
	}
	return &resultOutput{out}, nil
}

func (a *API) read(ctx context.Context, in *readInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "read", opBody{Path: in.Body.Path, Paths: in.Body.Paths})
}

func (a *API) discover(ctx context.Context, in *readInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "discover", opBody{Path: in.Body.Path, Paths: in.Body.Paths})
}

func (a *API) write(ctx context.Context, in *writeInput) (*resultOutput, error) {
	b := in.Body
	return a.runNow(ctx, in.Endpoint, "write", opBody{Path: b.Path, Value: b.Value, Values: b.Values, Mode: b.Mode})
}

func (a *API) execute(ctx context.Context, in *executeInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "execute", opBody{Path: in.Body.Path, Args: in.Body.Args})
}

func (a *API) writeAttributes(ctx context.Context, in *attributesInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "write-attributes", opBody{Path: in.Body.Path, Attributes: in.Body.Attributes})
}

func (a *API) create(ctx context.Context, in *createInput) (*resultOutput, error) {
	b := in.Body
	return a.runNow(ctx, in.Endpoint, "create", opBody{Path: b.Path, Instance: b.Instance, Values: b.Values})
}

func (a *API) deleteInstance(ctx context.Context, in *deleteInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "delete", opBody{Path: in.Body.Path})
}

func (a *API) observe(ctx context.Context, in *readInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "observe", opBody{Path: in.Body.Path, Paths: in.Body.Paths})
}

func (a *API) cancelObserve(ctx context.Context, in *readInput) (*resultOutput, error) {
	return a.runNow(ctx, in.Endpoint, "cancel-observe", opBody{Path: in.Body.Path, Paths: in.Body.Paths})
}

func (a *API) observations(ctx context.Context, in *endpointInput) (*observationsOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	held, err := a.opts.Devices.ListObservations(ctx, in.Endpoint)
	if err != nil && !errors.Is(err, devmgmt.ErrOffline) {
		return nil, a.fail(ctx, err)
	}
	out := &observationsOutput{}
	out.Body.Items = make([]Observation, 0, len(held))
	users := map[int64]string{}
	for _, o := range held {
		item := Observation{Token: fmt.Sprintf("%x", o.Token), Paths: pathStrings(o.Paths), Composite: o.Composite,
			Format: o.Format.String(), CreatedAt: o.Created.UTC(), Origin: o.Origin.Kind, Operation: o.Origin.Operation}
		if o.Attributes != "" {
			item.Attributes = strings.Split(o.Attributes, "&")
		}
		if id := o.Origin.UserID; id != 0 {
			name, ok := users[id]
			if !ok {
				if u, err := a.opts.Store.GetUser(ctx, id); err == nil {
					name = u.Username
				}
				users[id] = name
			}
			item.User = name
		}
		var last time.Time
		for _, p := range o.Paths {
			vals, err := a.opts.Store.LatestResources(ctx, e.ID, p)
			if err != nil {
				return nil, a.fail(ctx, err)
			}
			for _, v := range vals {
				if v.ReceivedAt.After(last) {
					last = v.ReceivedAt
				}
			}
		}
		item.LastValueAt = render.OptionalTime(last)
		out.Body.Items = append(out.Body.Items, item)
	}
	return out, nil
}

func pathStrings(ps []lwm2m.Path) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
