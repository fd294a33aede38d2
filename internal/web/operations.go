package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// OperationsPageSize is how many operations one page of /operations
// lists.
const OperationsPageSize = 50

// operationStatuses are the statuses the operations page filters by.
var operationStatuses = []store.OperationStatus{store.OperationQueued, store.OperationSending, store.OperationConfirmed,
	store.OperationFailed, store.OperationCancelled}

type operationsData struct {
	Operations []store.ListedOperation
	Statuses   []store.OperationStatus
	Status     string
	Q          string
	Before     int64
	Next       string // the next page's URL; "" on the last
	First      string // the first page's URL, with the filters
	CanCancel  bool
	Self       string // this page's URL, where a cancel returns to
}

func (w *Web) operationRoutes() {
	if w.cfg.Jobs == nil {
		return
	}
	w.route("GET /operations", auth.ViewData, w.operations)
	w.route("POST /operations/{id}/cancel", auth.PerformOperations, w.cancelOperation)
}

// operations is GET /operations: the operation queue of the devices in
// the ViewData scope, newest first; ?status= one status, ?q= an endpoint
// name prefix, ?before= an id (the next page).
func (w *Web) operations(rw http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d := operationsData{Statuses: operationStatuses, Status: q.Get("status"), Q: q.Get("q"),
		CanCancel: may(s, auth.PerformOperations), Self: r.URL.RequestURI()}
	if d.Status != "" && !containsStatus(d.Status) {
		return badRequest("status: want one of QUEUED, SENDING, CONFIRMED, FAILED, CANCELLED")
	}
	if len(d.Q) > 256 {
		return badRequest("q: at most 256 bytes")
	}
	var err error
	if d.Before, err = optionalID(q.Get("before")); err != nil {
		return badRequest("before: " + err.Error())
	}
	ops, more, err := w.cfg.Store.PageOperations(r.Context(), store.OperationPage{Scope: s.scope(auth.ViewData),
		Status: store.OperationStatus(d.Status), Prefix: d.Q, Before: d.Before, Limit: OperationsPageSize})
	if err != nil {
		return err
	}
	d.Operations = ops
	v := url.Values{}
	if d.Status != "" {
		v.Set("status", d.Status)
	}
	if d.Q != "" {
		v.Set("q", d.Q)
	}
	d.First = "/operations"
	if len(v) > 0 {
		d.First += "?" + v.Encode()
	}
	if more {
		v.Set("before", strconv.FormatInt(ops[len(ops)-1].ID, 10))
		d.Next = "/operations?" + v.Encode()
	}
	w.render(rw, r, http.StatusOK, "operations", s, d)
	return nil
}

func containsStatus(s string) bool {
	for _, st := range operationStatuses {
		if string(st) == s {
			return true
		}
	}
	return false
}

// cancelOperation is POST /operations/{id}/cancel: cancels a QUEUED
// operation through the queue, as the API does, and returns to the form's
// next (a dashboard path) or /operations. An operation of a device outside
// the user's PerformOperations scope is 404; one no longer queued is 409.
func (w *Web) cancelOperation(rw http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "operation")
	if err != nil {
		return err
	}
	msg := "no such operation: " + r.PathValue("id")
	op, err := w.cfg.Store.GetOperation(r.Context(), id)
	if err != nil {
		return notFoundIf(err, msg)
	}
	if err := w.inScope(r, s, auth.PerformOperations, op.EndpointID, msg); err != nil {
		return err
	}
	ep, err := w.cfg.Store.GetEndpointByID(r.Context(), op.EndpointID)
	if err != nil {
		return err
	}
	if _, err := w.cfg.Jobs.Cancel(r.Context(), ep.ID, ep.Name, id); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	if !strings.HasPrefix(next, "/operations") {
		next = "/operations"
	}
	http.Redirect(rw, r, next, http.StatusSeeOther)
	return nil
}

// fleetRoutes registers the firmware pages (when the dashboard has images
// and updates) and the operations page (when it has the queue).
func (w *Web) fleetRoutes() {
	w.firmwareRoutes()
	w.operationRoutes()
}

func init() {
	pageNames = append(pageNames, "firmware", "firmware_updates", "firmware_campaigns", "firmware_campaign", "operations")
}
