package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
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
	Values      []Value        `json:"values,omitempty" doc:"Decoded values of a read or observe"`
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

func parsePaths(b pathsBody) ([]lwm2m.Path, error) {
	raw := b.Paths
	if b.Path != "" {
		if len(raw) > 0 {
			return nil, badRequest("give path or paths, not both")
		}
		raw = []string{b.Path}
	}
	if len(raw) == 0 {
		return nil, badRequest("path is required")
	}
	out := make([]lwm2m.Path, 0, len(raw))
	for _, s := range raw {
		p, err := lwm2m.ParsePath(s)
		if err != nil {
			return nil, badRequest(err.Error())
		}
		out = append(out, p)
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

// onDevice runs op against the device of endpoint ep: it checks the
// endpoint exists (an unknown one is a 404 rather than "offline"), bounds
// op by the operation timeout, and maps op's error with fail.
func (a *API) onDevice(ctx context.Context, ep string, op func(ctx context.Context) error) error {
	if _, err := a.endpoint(ctx, ep); err != nil {
		return err
	}
	return a.bounded(ctx, op)
}

// bounded is onDevice for a caller that has already looked the endpoint up.
func (a *API) bounded(ctx context.Context, op func(ctx context.Context) error) error {
	c, cancel := context.WithTimeout(ctx, a.opts.OpTimeout)
	defer cancel()
	if err := op(c); err != nil {
		return a.fail(c, err)
	}
	return nil
}

func (a *API) read(ctx context.Context, in *readInput) (*resultOutput, error) {
	paths, err := parsePaths(in.Body)
	if err != nil {
		return nil, err
	}
	var rs []lwm2m.Record
	err = a.onDevice(ctx, in.Endpoint, func(ctx context.Context) (err error) {
		if len(paths) == 1 && len(in.Body.Paths) == 0 {
			rs, err = a.opts.Devices.Read(ctx, in.Endpoint, paths[0])
		} else {
			rs, err = a.opts.Devices.ReadComposite(ctx, in.Endpoint, paths)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "read", Paths: pathStrings(paths), Values: a.RecordValues(rs)}}, nil
}

func (a *API) discover(ctx context.Context, in *readInput) (*resultOutput, error) {
	paths, err := parsePaths(in.Body)
	if err != nil {
		return nil, err
	}
	if len(paths) != 1 {
		return nil, badRequest("discover takes one path")
	}
	var links []linkformat.DiscoverLink
	err = a.onDevice(ctx, in.Endpoint, func(ctx context.Context) (err error) {
		links, err = a.opts.Devices.Discover(ctx, in.Endpoint, paths[0])
		return err
	})
	if err != nil {
		return nil, err
	}
	res := OperationResult{Endpoint: in.Endpoint, Operation: "discover", Paths: pathStrings(paths), Links: []DiscoverLink{}}
	for _, l := range links {
		res.Links = append(res.Links, DiscoverLink{Path: l.Path.String(), Attributes: l.Attrs.Query(), Dim: l.Dim, Version: l.Ver})
	}
	return &resultOutput{res}, nil
}

// typedValue converts a JSON value for the resource at p, typed by the
// object definitions, or by the JSON type for resources they lack.
func (a *API) typedValue(p lwm2m.Path, raw json.RawMessage) (lwm2m.Value, error) {
	if t, ok := a.opts.Objects.TypeOf(p); ok {
		v, err := parseJSONValue(raw, t)
		if err != nil {
			return v, badRequest(fmt.Sprintf("value for %s: %v", p, err))
		}
		return v, nil
	}
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return lwm2m.Value{}, badRequest(fmt.Sprintf("value for %s is not JSON", p))
	}
	switch v := x.(type) {
	case string:
		return lwm2m.String(v), nil
	case bool:
		return lwm2m.Bool(v), nil
	case float64:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return lwm2m.Int(n), nil
		}
		return lwm2m.Float(v), nil
	}
	return lwm2m.Value{}, badRequest(fmt.Sprintf("value for %s must be a string, number or boolean", p))
}

// relativeRecords turns {"5700": 20, "7/0": 1} under base into records.
func (a *API) relativeRecords(base lwm2m.Path, vals map[string]json.RawMessage) ([]lwm2m.Record, error) {
	rs := make([]lwm2m.Record, 0, len(vals))
	for k, raw := range vals {
		p, err := lwm2m.ParsePath(strings.TrimRight(base.String(), "/") + "/" + strings.TrimPrefix(k, "/"))
		if err != nil || p.Depth() < 3 {
			return nil, badRequest(fmt.Sprintf("values key %q under %s: want a resource ID or resource/instance", k, base))
		}
		v, err := a.typedValue(p, raw)
		if err != nil {
			return nil, err
		}
		rs = append(rs, lwm2m.Record{Path: p, Value: v})
	}
	lwm2m.SortRecords(rs)
	return rs, nil
}

// writeRecords types the values of a write: value for the resource at
// path, values keyed by paths relative to path, or, without path (a
// composite write), values keyed by absolute resource paths. It returns
// the target (zero when composite) and the records in path order.
func (a *API) writeRecords(path string, value json.RawMessage, values map[string]json.RawMessage) (target lwm2m.Path, rs []lwm2m.Record, composite bool, err error) {
	if path == "" {
		if len(values) == 0 || value != nil {
			return target, nil, true, badRequest("a write needs path with value or values, or values keyed by absolute paths (composite)")
		}
		for k, raw := range values {
			p, err := lwm2m.ParsePath(k)
			if err != nil || p.Depth() < 3 {
				return target, nil, true, badRequest(fmt.Sprintf("composite write key %q: want an absolute resource path", k))
			}
			v, err := a.typedValue(p, raw)
			if err != nil {
				return target, nil, true, err
			}
			rs = append(rs, lwm2m.Record{Path: p, Value: v})
		}
		lwm2m.SortRecords(rs)
		return target, rs, true, nil
	}
	target, err = lwm2m.ParsePath(path)
	if err != nil {
		return target, nil, false, badRequest(err.Error())
	}
	switch {
	case value != nil && len(values) == 0:
		if target.Depth() < 3 {
			return target, nil, false, badRequest("value needs a resource path; use values for an instance")
		}
		v, err := a.typedValue(target, value)
		if err != nil {
			return target, nil, false, err
		}
		rs = []lwm2m.Record{{Path: target, Value: v}}
	case value == nil && len(values) > 0:
		if rs, err = a.relativeRecords(target, values); err != nil {
			return target, nil, false, err
		}
	default:
		return target, nil, false, badRequest("give value or values")
	}
	return target, rs, false, nil
}

// writeMode is the write mode a request asks for: update when asked, or
// by default for an instance; replace otherwise.
func writeMode(mode string, target lwm2m.Path) devmgmt.WriteMode {
	if mode == "update" || (mode == "" && target.Depth() < 3) {
		return devmgmt.Update
	}
	return devmgmt.Replace
}

func (a *API) write(ctx context.Context, in *writeInput) (*resultOutput, error) {
	b := in.Body
	target, rs, composite, err := a.writeRecords(b.Path, b.Value, b.Values)
	if err != nil {
		return nil, err
	}
	paths := []lwm2m.Path{target}
	if composite {
		paths = paths[:0]
		for _, r := range rs {
			paths = append(paths, r.Path)
		}
	}
	err = a.onDevice(ctx, in.Endpoint, func(ctx context.Context) error {
		if composite {
			return a.opts.Devices.WriteComposite(ctx, in.Endpoint, rs)
		}
		return a.opts.Devices.Write(ctx, in.Endpoint, target, writeMode(b.Mode, target), rs)
	})
	if err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "write", Paths: pathStrings(paths), Values: a.RecordValues(rs)}}, nil
}

func (a *API) execute(ctx context.Context, in *executeInput) (*resultOutput, error) {
	p, err := lwm2m.ParsePath(in.Body.Path)
	if err != nil || !p.IsResource() {
		return nil, badRequest(fmt.Sprintf("path %q: execute needs a resource path", in.Body.Path))
	}
	if err := a.onDevice(ctx, in.Endpoint, func(ctx context.Context) error {
		return a.opts.Devices.Execute(ctx, in.Endpoint, p, in.Body.Args)
	}); err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "execute", Paths: []string{p.String()}}}, nil
}

// attributeQuery turns {"pmin": 10, "gt": null} into validated
// attributes; null removes an attribute.
func attributeQuery(in map[string]json.RawMessage) (linkformat.Attributes, error) {
	var q []string
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		raw := strings.TrimSpace(string(in[k]))
		if raw == "null" {
			q = append(q, k)
			continue
		}
		if _, err := strconv.ParseFloat(raw, 64); err != nil {
			return linkformat.Attributes{}, badRequest(fmt.Sprintf("attribute %s: want a number or null", k))
		}
		q = append(q, k+"="+raw)
	}
	attrs, err := linkformat.ParseQuery(q)
	if err == nil {
		err = attrs.Validate()
	}
	if err != nil {
		return linkformat.Attributes{}, badRequest(err.Error())
	}
	return attrs, nil
}

func (a *API) writeAttributes(ctx context.Context, in *attributesInput) (*resultOutput, error) {
	p, err := lwm2m.ParsePath(in.Body.Path)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	attrs, err := attributeQuery(in.Body.Attributes)
	if err != nil {
		return nil, err
	}
	if err := a.onDevice(ctx, in.Endpoint, func(ctx context.Context) error {
		return a.opts.Devices.WriteAttributes(ctx, in.Endpoint, p, attrs)
	}); err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "write-attributes", Paths: []string{p.String()}}}, nil
}

// createRecords types the values of a create under the object at path:
// in the given instance, or in the next free one the endpoint's
// registration shows.
func (a *API) createRecords(e store.Endpoint, path string, instance *uint16, values map[string]json.RawMessage) (lwm2m.Path, []lwm2m.Record, error) {
	p, err := lwm2m.ParsePath(path)
	if err != nil || !p.IsObject() {
		return p, nil, badRequest(fmt.Sprintf("path %q: create needs an object path such as /3303", path))
	}
	var inst uint16
	if instance != nil {
		if *instance > lwm2m.MaxID {
			return p, nil, badRequest("instance must be at most 65534")
		}
		inst = *instance
	} else {
		inst = nextInstance(e.ObjectLinks, p.Object())
	}
	rs, err := a.relativeRecords(p.Child(inst), values)
	if err != nil {
		return p, nil, err
	}
	if len(rs) == 0 {
		return p, nil, badRequest("values are required")
	}
	return p, rs, nil
}

func (a *API) create(ctx context.Context, in *createInput) (*resultOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	p, rs, err := a.createRecords(e, in.Body.Path, in.Body.Instance, in.Body.Values)
	if err != nil {
		return nil, err
	}
	var loc lwm2m.Path
	err = a.bounded(ctx, func(ctx context.Context) (err error) {
		loc, err = a.opts.Devices.Create(ctx, in.Endpoint, p, rs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "create", Paths: []string{p.String()}, Location: loc.String()}}, nil
}

func (a *API) deleteInstance(ctx context.Context, in *deleteInput) (*resultOutput, error) {
	p, err := lwm2m.ParsePath(in.Body.Path)
	if err != nil || !p.IsInstance() {
		return nil, badRequest(fmt.Sprintf("path %q: delete needs an object instance path such as /3303/1", in.Body.Path))
	}
	if err := a.onDevice(ctx, in.Endpoint, func(ctx context.Context) error {
		return a.opts.Devices.Delete(ctx, in.Endpoint, p)
	}); err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "delete", Paths: []string{p.String()}}}, nil
}

func (a *API) observe(ctx context.Context, in *readInput) (*resultOutput, error) {
	paths, err := parsePaths(in.Body)
	if err != nil {
		return nil, err
	}
	var rs []lwm2m.Record
	var obs registry.Observation
	ctx = devmgmt.WithOrigin(ctx, registry.Origin{Kind: registry.OriginAPI, UserID: userFrom(ctx).User.ID})
	err = a.onDevice(ctx, in.Endpoint, func(ctx context.Context) (err error) {
		if len(paths) == 1 && len(in.Body.Paths) == 0 {
			obs, rs, err = a.opts.Devices.Observe(ctx, in.Endpoint, paths[0])
		} else {
			obs, rs, err = a.opts.Devices.ObserveComposite(ctx, in.Endpoint, paths)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	token := fmt.Sprintf("%x", obs.Token)
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "observe", Paths: pathStrings(paths),
		Values: a.RecordValues(rs), Observation: token}}, nil
}

func (a *API) cancelObserve(ctx context.Context, in *readInput) (*resultOutput, error) {
	paths, err := parsePaths(in.Body)
	if err != nil {
		return nil, err
	}
	err = a.onDevice(ctx, in.Endpoint, func(ctx context.Context) error {
		if len(paths) == 1 && len(in.Body.Paths) == 0 {
			return a.opts.Devices.Cancel(ctx, in.Endpoint, paths[0])
		}
		return a.opts.Devices.CancelComposite(ctx, in.Endpoint, paths)
	})
	if err != nil {
		return nil, err
	}
	return &resultOutput{OperationResult{Endpoint: in.Endpoint, Operation: "cancel-observe", Paths: pathStrings(paths)}}, nil
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
		item.LastValueAt = optTime(last)
		out.Body.Items = append(out.Body.Items, item)
	}
	return out, nil
}

// nextInstance picks a free instance ID of object obj from the endpoint's
// registered object links: one above the highest in use, or 0.
func nextInstance(objectLinks string, obj uint16) uint16 {
	reg, err := linkformat.ParseRegistration([]byte(objectLinks))
	if err != nil {
		return 0
	}
	if o, ok := reg.Object(obj); ok && len(o.Instances) > 0 {
		if last := o.Instances[len(o.Instances)-1]; last < lwm2m.MaxID {
			return last + 1
		}
	}
	return 0
}
