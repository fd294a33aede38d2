package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// Firmware updates: one device brought to one image by the update state
// machine (package fwupdate), started here, followed here and on the event
// stream (topic firmware), cancelled here.

// FirmwareUpdate is one update of one endpoint to one image.
type FirmwareUpdate struct {
	ID         int64      `json:"id" example:"12"`
	Endpoint   string     `json:"endpoint"`
	Version    string     `json:"version" doc:"The image's version"`
	State      string     `json:"state" enum:"pending,downloading,updating,succeeded,failed,cancelled" doc:"pending → downloading → updating → succeeded, or failed or cancelled"`
	Active     bool       `json:"active" doc:"In progress: at most one per endpoint"`
	Method     string     `json:"method,omitempty" enum:"pull,push," doc:"How the package reaches the device, once chosen"`
	Protocol   string     `json:"protocol,omitempty" enum:"coap,coaps,http,https," doc:"The download protocol of a pull"`
	PackageURI string     `json:"package_uri,omitempty" doc:"The Package URI written to /5/0/1 (pull)"`
	ResultCode int        `json:"result_code,omitempty" doc:"The device's Update Result (/5/0/5), when it reported one: 1 success, 2..9 failures"`
	Result     string     `json:"result,omitempty" doc:"The outcome in words, e.g. integrity check failure for the new firmware package"`
	Error      string     `json:"error,omitempty" doc:"Why it failed"`
	Operations []int64    `json:"operations" doc:"The queued operations that drive it (GET /endpoints/{ep}/operations/{id})"`
	StateAt    time.Time  `json:"state_at" doc:"When the current state began"`
	Deadline   *time.Time `json:"deadline,omitempty" doc:"When the current state times out"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty" doc:"User who started it"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

type startUpdateInput struct {
	Body struct {
		Endpoint string `json:"endpoint" minLength:"1" doc:"Endpoint name"`
		Version  string `json:"version" minLength:"1" doc:"Version of an uploaded image"`
		Method   string `json:"method,omitempty" enum:"auto,pull,push," doc:"pull: the device downloads the package; push: the server writes it to /5/0/0 (Block1); auto (default): from the device's /5/0/9"`
		Protocol string `json:"protocol,omitempty" enum:"auto,coap,coaps,http,https," doc:"Download protocol of a pull; auto (default): from the device's /5/0/8 and its transport"`
	}
}

type updateOutput struct {
	Location string `header:"Location"`
	Body     FirmwareUpdate
}

type listUpdatesInput struct {
	Endpoint string `query:"endpoint" doc:"Only the updates of this endpoint"`
	Version  string `query:"version" doc:"Only the updates to this version"`
	Active   string `query:"active" enum:"true,false," doc:"Only active (true) or finished (false) updates"`
	Limit    int    `query:"limit" default:"100" minimum:"1" maximum:"1000"`
	Offset   int    `query:"offset" default:"0" minimum:"0"`
}

type listUpdatesOutput struct {
	Body struct {
		Items []FirmwareUpdate `json:"items" doc:"Newest first"`
	}
}

type updateIDInput struct {
	ID int64 `path:"id" doc:"Update id"`
}

type updateBody struct{ Body FirmwareUpdate }

func (a *API) updateRoutes(h huma.API) {
	tags := []string{"firmware updates"}
	path := Prefix + "/firmware/updates"
	register(h, auth.ManageFirmware, huma.Operation{OperationID: "start-firmware-update", Method: http.MethodPost, Path: path,
		DefaultStatus: http.StatusCreated, Tags: tags, Summary: "Start updating a device to an image",
		Description: "The update runs on the durable operation queue: it survives restarts and waits for sleeping devices. " +
			"404 for an unknown endpoint or image; 409 for a device without the Firmware Update object (5) or with an active update.",
	}, a.startUpdate)
	register(h, auth.ViewFirmware, huma.Operation{OperationID: "list-firmware-updates", Method: http.MethodGet, Path: path,
		Tags: tags, Summary: "Firmware updates, newest first"}, a.listUpdates)
	register(h, auth.ViewFirmware, huma.Operation{OperationID: "get-firmware-update", Method: http.MethodGet, Path: path + "/{id}",
		Tags: tags, Summary: "One firmware update"}, a.getUpdate)
	register(h, auth.ManageFirmware, huma.Operation{OperationID: "cancel-firmware-update", Method: http.MethodDelete, Path: path + "/{id}",
		Tags: tags, Summary: "Cancel an active firmware update (409 once it finished)",
		Description: "Cancels its queued operations, writes an empty Package URI when anything reached the device, and cancels the observations it made.",
	}, a.cancelUpdate)
}

func (a *API) startUpdate(ctx context.Context, in *startUpdateInput) (*updateOutput, error) {
	b := in.Body
	if b.Method == "auto" {
		b.Method = fwupdate.MethodAuto
	}
	if b.Protocol == "auto" {
		b.Protocol = fwupdate.ProtocolAuto
	}
	if _, err := a.endpoint(ctx, b.Endpoint); err != nil {
		return nil, err
	}
	user := userFrom(ctx).User
	up, err := a.opts.Updates.Start(ctx, b.Endpoint, b.Version, fwupdate.Options{Method: b.Method, Protocol: b.Protocol, By: user.ID})
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &updateOutput{Location: Prefix + "/firmware/updates/" + strconv.FormatInt(up.ID, 10)}
	out.Body = a.toUpdate(ctx, up, map[int64]string{user.ID: user.Username}, map[int64]string{up.EndpointID: b.Endpoint})
	return out, nil
}

func (a *API) listUpdates(ctx context.Context, in *listUpdatesInput) (*listUpdatesOutput, error) {
	sc := userFrom(ctx).scope()
	f := store.FirmwareUpdateFilter{Version: in.Version, Limit: in.Limit, Offset: in.Offset, ActiveOnly: in.Active == "true",
		FinishedOnly: in.Active == "false", Scope: &sc}
	names := map[int64]string{}
	if in.Endpoint != "" {
		e, err := a.endpoint(ctx, in.Endpoint)
		if err != nil {
			return nil, err
		}
		f.EndpointID, names[e.ID] = e.ID, e.Name
	}
	ups, err := a.opts.Store.ListFirmwareUpdates(ctx, f)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listUpdatesOutput{}
	out.Body.Items = make([]FirmwareUpdate, 0, len(ups))
	users := map[int64]string{}
	for _, up := range ups {
		out.Body.Items = append(out.Body.Items, a.toUpdate(ctx, up, users, names))
	}
	return out, nil
}

func (a *API) getUpdate(ctx context.Context, in *updateIDInput) (*updateBody, error) {
	up, err := a.update(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &updateBody{a.toUpdate(ctx, up, map[int64]string{}, map[int64]string{})}, nil
}

// update returns the update id when its device is in the caller's scope,
// and 404 as for an unknown update when it is not.
func (a *API) update(ctx context.Context, id int64) (store.FirmwareUpdate, error) {
	up, err := a.opts.Updates.Get(ctx, id)
	if err != nil {
		return up, a.fail(ctx, err)
	}
	e, err := a.opts.Store.GetEndpointByID(ctx, up.EndpointID)
	if err == nil && !userFrom(ctx).scope().Contains(e.SiteID) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return up, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no firmware update %d", id))
	}
	if err != nil {
		return up, a.fail(ctx, err)
	}
	return up, nil
}

func (a *API) cancelUpdate(ctx context.Context, in *updateIDInput) (*updateBody, error) {
	if _, err := a.update(ctx, in.ID); err != nil {
		return nil, err
	}
	up, err := a.opts.Updates.Cancel(ctx, in.ID, userFrom(ctx).User.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &updateBody{a.toUpdate(ctx, up, map[int64]string{}, map[int64]string{})}, nil
}

// toUpdate renders a stored update; users and names cache user and
// endpoint names by id.
func (a *API) toUpdate(ctx context.Context, up store.FirmwareUpdate, users, names map[int64]string) FirmwareUpdate {
	out := FirmwareUpdate{
		ID: up.ID, Version: up.Version, State: up.State, Active: up.Active, Method: up.Method, Protocol: up.Protocol,
		PackageURI: up.PackageURI, ResultCode: up.ResultCode, Result: up.Result, Error: up.Error,
		Operations: up.OperationIDs, StateAt: up.StateAt.UTC(), Deadline: render.OptionalTime(up.Deadline),
		FinishedAt: render.OptionalTime(up.FinishedAt), CreatedAt: up.CreatedAt.UTC(), UpdatedAt: up.UpdatedAt.UTC(),
	}
	if out.Operations == nil {
		out.Operations = []int64{}
	}
	name, ok := names[up.EndpointID]
	if !ok {
		if e, err := a.opts.Store.GetEndpointByID(ctx, up.EndpointID); err == nil {
			name = e.Name
		} else if !errors.Is(err, store.ErrNotFound) {
			a.opts.Logger.WarnContext(ctx, "firmware update: endpoint name not found", "update", up.ID, "err", err)
		}
		names[up.EndpointID] = name
	}
	out.Endpoint = name
	if up.CreatedBy != 0 {
		who, ok := users[up.CreatedBy]
		if !ok {
			if u, err := a.opts.Store.GetUser(ctx, up.CreatedBy); err == nil {
				who = u.Username
			}
			users[up.CreatedBy] = who
		}
		out.CreatedBy = who
	}
	return out
}
