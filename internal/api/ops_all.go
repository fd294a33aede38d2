package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// The operation queue across devices: the operations of every device in
// the caller's scope, and cancelling one by its id alone.

type listAllQueuedInput struct {
	Status string `query:"status" enum:"QUEUED,SENDING,CONFIRMED,FAILED,CANCELLED," doc:"Only operations in this status"`
	Prefix string `query:"prefix" maxLength:"256" doc:"Only operations of endpoints whose name starts with this"`
	Before int64  `query:"before" minimum:"0" doc:"Operations older than this one (next_before of the previous page)"`
	Limit  int    `query:"limit" minimum:"0" maximum:"500" doc:"At most this many; 0 means 50"`
}

type listAllQueuedOutput struct {
	Link string `header:"Link" doc:"rel=next: the next page, on every page but the last"`
	Body struct {
		Items      []QueuedOperation `json:"items" doc:"Newest first"`
		NextBefore int64             `json:"next_before,omitempty" doc:"Pass as before for the next page; absent on the last"`
		Next       string            `json:"next,omitempty" doc:"The next page's URL (path and query); absent on the last"`
	}
}

type queuedByIDInput struct {
	ID int64 `path:"id" doc:"Operation id"`
}

func (a *API) allOperationsRoutes(h huma.API) {
	tags := []string{"queued operations"}
	register(h, auth.ViewData, huma.Operation{OperationID: "list-all-operations", Method: http.MethodGet,
		Path: Prefix + "/operations", Tags: tags,
		Summary: "Queued and finished operations of every endpoint in the caller's scope, newest first"}, a.listAllQueued)
	register(h, auth.PerformOperations, huma.Operation{OperationID: "cancel-operation-by-id", Method: http.MethodDelete,
		Path: Prefix + "/operations/{id}", Tags: tags,
		Summary: "Cancel a queued operation by its id (409 once it is being sent or finished)"}, a.cancelQueuedByID)
}

func (a *API) listAllQueued(ctx context.Context, in *listAllQueuedInput) (*listAllQueuedOutput, error) {
	limit := in.Limit
	if limit == 0 {
		limit = 50
	}
	ops, more, err := a.opts.Store.PageOperations(ctx, store.OperationPage{Scope: userFrom(ctx).scope(),
		Status: store.OperationStatus(in.Status), Prefix: in.Prefix, Before: in.Before, Limit: limit})
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listAllQueuedOutput{}
	out.Body.Items = make([]QueuedOperation, 0, len(ops))
	users := map[int64]string{}
	for _, op := range ops {
		if op.QueuedBy != 0 && op.QueuedByName != "" {
			users[op.QueuedBy] = op.QueuedByName
		}
		q, err := a.toQueued(ctx, op.Endpoint, op.Operation, users)
		if err != nil {
			return nil, err
		}
		out.Body.Items = append(out.Body.Items, q)
	}
	if more && len(ops) > 0 {
		out.Body.NextBefore = ops[len(ops)-1].ID
		q := url.Values{}
		if in.Status != "" {
			q.Set("status", in.Status)
		}
		if in.Prefix != "" {
			q.Set("prefix", in.Prefix)
		}
		if in.Limit != 0 {
			q.Set("limit", strconv.Itoa(in.Limit))
		}
		q.Set("before", strconv.FormatInt(out.Body.NextBefore, 10))
		out.Body.Next = Prefix + "/operations?" + q.Encode()
		out.Link = "<" + out.Body.Next + `>; rel="next"`
	}
	return out, nil
}

// cancelQueuedByID cancels an operation found by id; one of a device
// outside the caller's scope is absent (404).
func (a *API) cancelQueuedByID(ctx context.Context, in *queuedByIDInput) (*queuedBody, error) {
	absent := problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no such operation: %d", in.ID))
	op, err := a.opts.Store.GetOperation(ctx, in.ID)
	if err != nil {
		return nil, a.notFoundOr(ctx, err, "operation", in.ID)
	}
	e, err := a.opts.Store.GetEndpointByID(ctx, op.EndpointID)
	if err != nil {
		return nil, a.notFoundOr(ctx, err, "operation", in.ID)
	}
	if !userFrom(ctx).scope().Contains(e.SiteID) {
		return nil, absent
	}
	op, err = a.opts.Jobs.Cancel(ctx, e.ID, e.Name, in.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	q, err := a.toQueued(ctx, e.Name, op, map[int64]string{})
	if err != nil {
		return nil, err
	}
	return &queuedBody{q}, nil
}
