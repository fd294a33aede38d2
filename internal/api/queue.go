package api

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// Queued operations: stored, and delivered by the job workers when the
// device is reachable (at once when it is online and not in queue mode,
// else when it next talks). They work whatever the device's state.

// QueuedOperation is an operation in the durable queue, with its outcome.
type QueuedOperation struct {
	ID            int64      `json:"id" example:"42"`
	Endpoint      string     `json:"endpoint"`
	Kind          string     `json:"kind" example:"write"`
	Paths         []string   `json:"paths"`
	Status        string     `json:"status" enum:"QUEUED,SENDING,CONFIRMED,FAILED,CANCELLED" doc:"QUEUED → SENDING → CONFIRMED or FAILED; CANCELLED when cancelled while QUEUED"`
	Attempts      int        `json:"attempts"`
	MaxAttempts   int        `json:"max_attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	ResultCode    string     `json:"result_code,omitempty" doc:"CoAP code of the last failed attempt, e.g. 4.04"`
	ResultError   string     `json:"result_error,omitempty" doc:"Why the last attempt failed"`
	// The request's arguments.
	Values     []render.Value `json:"values,omitempty" doc:"Values to write or create"`
	Mode       string         `json:"mode,omitempty" doc:"replace or update, for a write"`
	Args       string         `json:"args,omitempty" doc:"Execute arguments"`
	Attributes []string       `json:"attributes,omitempty" doc:"Attributes to write, as query parameters (pmin=10; a bare name removes one)"`
	// The device's answer, once CONFIRMED.
	Result    *QueuedResult `json:"result,omitempty"`
	QueuedBy  string        `json:"queued_by,omitempty" doc:"User who queued it"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// QueuedResult is what a confirmed operation brought back.
type QueuedResult struct {
	Values      []render.Value `json:"values,omitempty" doc:"Values read or observed"`
	Links       []DiscoverLink `json:"links,omitempty" doc:"Discover result"`
	Location    string         `json:"location,omitempty" doc:"Path of the instance a create made"`
	Observation string         `json:"observation,omitempty" doc:"Token of the observation an observe made (hex)"`
}

type enqueueInput struct {
	Endpoint string `path:"ep"`
	Body     struct {
		Kind       string                     `json:"kind" enum:"read,discover,write,write-composite,execute,write-attributes,create,delete,observe,cancel-observe,cancel,read-composite,observe-composite,cancel-observe-composite" doc:"What to do; read, observe and cancel-observe with paths are composite; write without path is composite; cancel means cancel-observe"`
		Path       string                     `json:"path,omitempty" example:"/1/0/1"`
		Paths      []string                   `json:"paths,omitempty" doc:"Several paths: a composite read, observe or cancel"`
		Value      json.RawMessage            `json:"value,omitempty" doc:"The value, for a single resource or resource instance"`
		Values     map[string]json.RawMessage `json:"values,omitempty" doc:"Values keyed by path relative to path (write, create), or by absolute path (composite write)"`
		Mode       string                     `json:"mode,omitempty" enum:"replace,update," doc:"Write: replace (PUT) or update (partial, POST); default replace for a resource, update for an instance"`
		Args       string                     `json:"args,omitempty" doc:"Execute arguments, e.g. 0='v1',1"`
		Attributes map[string]json.RawMessage `json:"attributes,omitempty" doc:"Write-attributes: pmin, pmax, gt, lt, st, epmin, epmax, edge, con, hqmax; null removes one"`
		Instance   *uint16                    `json:"instance,omitempty" doc:"Create: instance ID; the next free one when absent"`
	}
}

type queuedOutput struct {
	Location string `header:"Location"`
	Body     QueuedOperation
}

type listQueuedInput struct {
	Endpoint string `path:"ep"`
	Status   string `query:"status" enum:"QUEUED,SENDING,CONFIRMED,FAILED,CANCELLED," doc:"Only operations in this status"`
	Limit    int    `query:"limit" default:"50" minimum:"1" maximum:"1000"`
	Offset   int    `query:"offset" default:"0" minimum:"0"`
}

type listQueuedOutput struct {
	Body struct {
		Items []QueuedOperation `json:"items" doc:"Newest first"`
	}
}

type queuedIDInput struct {
	Endpoint string `path:"ep"`
	ID       int64  `path:"id" doc:"Operation id"`
}

func (a *API) queueRoutes(h huma.API) {
	tags := []string{"queued operations"}
	path := Prefix + "/endpoints/{ep}/operations"
	register(h, auth.PerformOperations, huma.Operation{OperationID: "queue-operation", Method: http.MethodPost, Path: path,
		DefaultStatus: http.StatusAccepted, Tags: tags,
		Summary:     "Queue an operation; it is sent when the device is reachable",
		Description: "Works while the device is offline or asleep. The answer is the stored operation, status QUEUED.",
	}, a.enqueue)
	register(h, auth.ViewData, huma.Operation{OperationID: "list-operations", Method: http.MethodGet, Path: path, Tags: tags,
		Summary: "Queued and finished operations of an endpoint"}, a.listQueued)
	register(h, auth.ViewData, huma.Operation{OperationID: "get-operation", Method: http.MethodGet, Path: path + "/{id}", Tags: tags,
		Summary: "One operation with its status and result"}, a.getQueued)
	register(h, auth.PerformOperations, huma.Operation{OperationID: "cancel-operation", Method: http.MethodDelete, Path: path + "/{id}", Tags: tags,
		Summary: "Cancel a queued operation (409 once it is being sent or finished)"}, a.cancelQueued)
}

func (a *API) enqueue(ctx context.Context, in *enqueueInput) (*queuedOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	b := in.Body
	dop, err := a.operation(ctx, e, b.Kind, opBody{Path: b.Path, Paths: b.Paths, Value: b.Value, Values: b.Values,
		Mode: b.Mode, Args: b.Args, Attributes: b.Attributes, Instance: b.Instance})
	if err != nil {
		return nil, err
	}
	user := userFrom(ctx).User
	op, err := a.opts.Jobs.Enqueue(ctx, jobs.NewOperation{EndpointID: e.ID, Endpoint: e.Name, Operation: dop, QueuedBy: user.ID})
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &queuedOutput{Location: Prefix + "/endpoints/" + e.Name + "/operations/" + strconv.FormatInt(op.ID, 10)}
	users := map[int64]string{user.ID: user.Username}
	if out.Body, err = a.toQueued(ctx, e.Name, op, users); err != nil {
		return nil, err
	}
	return out, nil
}

func (a *API) listQueued(ctx context.Context, in *listQueuedInput) (*listQueuedOutput, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return nil, err
	}
	f := store.OperationFilter{Desc: true, Limit: in.Limit, Offset: in.Offset}
	if in.Status != "" {
		f.Status = []store.OperationStatus{store.OperationStatus(in.Status)}
	}
	ops, err := a.opts.Store.ListOperations(ctx, e.ID, f)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listQueuedOutput{}
	out.Body.Items = make([]QueuedOperation, 0, len(ops))
	users := map[int64]string{}
	for _, op := range ops {
		q, err := a.toQueued(ctx, e.Name, op, users)
		if err != nil {
			return nil, err
		}
		out.Body.Items = append(out.Body.Items, q)
	}
	return out, nil
}

// queuedOf returns operation id of the endpoint; another endpoint's
// operation is not found.
func (a *API) queuedOf(ctx context.Context, in *queuedIDInput) (store.Endpoint, store.Operation, error) {
	e, err := a.endpoint(ctx, in.Endpoint)
	if err != nil {
		return e, store.Operation{}, err
	}
	op, err := a.opts.Store.GetOperation(ctx, in.ID)
	if err == nil && op.EndpointID != e.ID {
		err = store.ErrNotFound
	}
	if err != nil {
		return e, op, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no operation %d on endpoint %q", in.ID, e.Name))
	}
	return e, op, nil
}

type queuedBody struct{ Body QueuedOperation }

func (a *API) getQueued(ctx context.Context, in *queuedIDInput) (*queuedBody, error) {
	e, op, err := a.queuedOf(ctx, in)
	if err != nil {
		return nil, err
	}
	q, err := a.toQueued(ctx, e.Name, op, map[int64]string{})
	if err != nil {
		return nil, err
	}
	return &queuedBody{q}, nil
}

func (a *API) cancelQueued(ctx context.Context, in *queuedIDInput) (*queuedBody, error) {
	e, _, err := a.queuedOf(ctx, in)
	if err != nil {
		return nil, err
	}
	op, err := a.opts.Jobs.Cancel(ctx, e.ID, e.Name, in.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	q, err := a.toQueued(ctx, e.Name, op, map[int64]string{})
	if err != nil {
		return nil, err
	}
	return &queuedBody{q}, nil
}

// toQueued renders a stored operation; users caches user names by id.
func (a *API) toQueued(ctx context.Context, endpoint string, op store.Operation, users map[int64]string) (QueuedOperation, error) {
	q := QueuedOperation{
		ID: op.ID, Endpoint: endpoint, Kind: op.Kind, Paths: pathStrings(op.Paths), Status: string(op.Status),
		Attempts: op.Attempts, MaxAttempts: op.MaxAttempts, LastAttemptAt: render.OptionalTime(op.LastAttemptAt),
		ResultCode: op.ResultCode, ResultError: op.ResultError, CreatedAt: op.CreatedAt.UTC(), UpdatedAt: op.UpdatedAt.UTC(),
	}
	if r, err := jobs.DecodeOperation(op); err == nil {
		if len(r.Values) > 0 {
			q.Values = a.values(r.Values)
		}
		if r.Kind == devmgmt.KindWrite {
			q.Mode = "replace"
			if r.Mode == devmgmt.Update {
				q.Mode = "update"
			}
		}
		q.Args, q.Attributes = r.Args, r.Attributes.Query()
	}
	if len(op.Response) > 0 {
		res, err := jobs.DecodeResult(op.Response)
		if err != nil {
			return q, a.fail(ctx, err)
		}
		qr := &QueuedResult{Location: "", Observation: hex.EncodeToString([]byte(res.Observation.Token))}
		if len(res.Values) > 0 {
			qr.Values = a.values(res.Values)
		}
		if res.Location.Depth() > 0 {
			qr.Location = res.Location.String()
		}
		for _, l := range res.Links {
			qr.Links = append(qr.Links, DiscoverLink{Path: l.Path.String(), Attributes: l.Attrs.Query(), Dim: l.Dim, Version: l.Ver})
		}
		q.Result = qr
	}
	if op.QueuedBy != 0 {
		name, ok := users[op.QueuedBy]
		if !ok {
			if u, err := a.opts.Store.GetUser(ctx, op.QueuedBy); err == nil {
				name = u.Username
			}
			users[op.QueuedBy] = name
		}
		q.QueuedBy = name
	}
	return q, nil
}
