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

// Firmware campaigns: an image rolled out to many endpoints with a
// concurrency cap, a start rate and retries (package fwupdate).

// Campaign is a firmware campaign with its devices counted by state.
type Campaign struct {
	ID                int64          `json:"id"`
	Name              string         `json:"name,omitempty"`
	Version           string         `json:"version"`
	State             string         `json:"state" enum:"running,paused,cancelled,finished"`
	Method            string         `json:"method,omitempty"`
	Protocol          string         `json:"protocol,omitempty"`
	Concurrency       int            `json:"concurrency" doc:"Updates running at once at most"`
	RatePerMinute     int            `json:"rate_per_minute" doc:"Updates started a minute at most"`
	MaxRetries        int            `json:"max_retries" doc:"Further updates of a device whose update failed"`
	RetryDelaySeconds float64        `json:"retry_delay_seconds"`
	Summary           map[string]int `json:"summary" doc:"Devices by state: waiting, running, succeeded, failed, cancelled"`
	Devices           int            `json:"devices" doc:"Devices in the campaign"`
	CreatedBy         string         `json:"created_by,omitempty"`
	CreatedAt         time.Time      `json:"created_at"`
	UpdatedAt         time.Time      `json:"updated_at"`
	FinishedAt        *time.Time     `json:"finished_at,omitempty"`
}

// CampaignDevice is one endpoint's progress in a campaign.
type CampaignDevice struct {
	Endpoint  string     `json:"endpoint"`
	State     string     `json:"state" enum:"waiting,running,succeeded,failed,cancelled"`
	Attempts  int        `json:"attempts"`
	UpdateID  int64      `json:"update_id,omitempty" doc:"Its last update (GET /firmware/updates/{id})"`
	Error     string     `json:"error,omitempty" doc:"Why its last update failed"`
	NextTryAt *time.Time `json:"next_try_at,omitempty" doc:"When a waiting device is retried"`
	UpdatedAt time.Time  `json:"updated_at"`
}

type createCampaignInput struct {
	Body struct {
		Name              string   `json:"name,omitempty"`
		Version           string   `json:"version" minLength:"1" doc:"Version of an uploaded image"`
		Endpoints         []string `json:"endpoints,omitempty" doc:"The endpoints; without them, every endpoint with object 5 not on the version already, narrowed by firmware_version"`
		FirmwareVersion   string   `json:"firmware_version,omitempty" doc:"Filter: only endpoints that last reported this firmware version (/3/0/3)"`
		Method            string   `json:"method,omitempty" enum:"auto,pull,push,"`
		Protocol          string   `json:"protocol,omitempty" enum:"auto,coap,coaps,http,https,"`
		Concurrency       int      `json:"concurrency,omitempty" minimum:"0" doc:"Default 10"`
		RatePerMinute     int      `json:"rate_per_minute,omitempty" minimum:"0" doc:"Default 100"`
		MaxRetries        *int     `json:"max_retries,omitempty" minimum:"0" doc:"Default 2"`
		RetryDelaySeconds float64  `json:"retry_delay_seconds,omitempty" minimum:"0" doc:"Default 300"`
	}
}

type campaignOutput struct {
	Location string `header:"Location"`
	Body     Campaign
}

type campaignBody struct{ Body Campaign }

type campaignIDInput struct {
	ID int64 `path:"id" doc:"Campaign id"`
}

type listCampaignsInput struct {
	State  string `query:"state" enum:"running,paused,cancelled,finished,"`
	Limit  int    `query:"limit" default:"100" minimum:"1" maximum:"1000"`
	Offset int    `query:"offset" default:"0" minimum:"0"`
}

type listCampaignsOutput struct {
	Body struct {
		Items []Campaign `json:"items" doc:"Newest first"`
	}
}

type campaignDevicesInput struct {
	ID     int64  `path:"id" doc:"Campaign id"`
	State  string `query:"state" enum:"waiting,running,succeeded,failed,cancelled,"`
	Limit  int    `query:"limit" default:"1000" minimum:"1" maximum:"10000"`
	Offset int    `query:"offset" default:"0" minimum:"0"`
}

type campaignDevicesOutput struct {
	Body struct {
		Items []CampaignDevice `json:"items" doc:"By endpoint"`
	}
}

func (a *API) campaignRoutes(h huma.API) {
	tags := []string{"firmware campaigns"}
	path := Prefix + "/firmware/campaigns"
	register(h, auth.ManageFirmware, huma.Operation{OperationID: "create-firmware-campaign", Method: http.MethodPost, Path: path,
		DefaultStatus: http.StatusCreated, Tags: tags, Summary: "Roll an image out to a list of endpoints or a filter",
		Description: "The campaign starts at once and survives restarts; at most concurrency updates run at once, " +
			"at most rate_per_minute start a minute; a device whose update failed is retried max_retries times. " +
			"A site member names the endpoints, each in its sites (one outside is 404; without endpoints, 400): " +
			"a campaign is visible and manageable to a site member only when all its devices are in its sites.",
	}, a.createCampaign)
	register(h, auth.ViewFirmware, huma.Operation{OperationID: "list-firmware-campaigns", Method: http.MethodGet, Path: path,
		Tags: tags, Summary: "Firmware campaigns, newest first"}, a.listCampaigns)
	register(h, auth.ViewFirmware, huma.Operation{OperationID: "get-firmware-campaign", Method: http.MethodGet, Path: path + "/{id}",
		Tags: tags, Summary: "One campaign with its summary"}, a.getCampaign)
	register(h, auth.ViewFirmware, huma.Operation{OperationID: "list-firmware-campaign-devices", Method: http.MethodGet,
		Path: path + "/{id}/devices", Tags: tags, Summary: "The devices of a campaign and their status"}, a.campaignDevices)
	for _, act := range []struct{ name, summary string }{
		{"pause", "Pause a running campaign: no update starts; those running go on"},
		{"resume", "Resume a paused campaign"},
		{"cancel", "Cancel a campaign: waiting devices and running updates are cancelled"},
	} {
		register(h, auth.ManageFirmware, huma.Operation{OperationID: act.name + "-firmware-campaign", Method: http.MethodPost,
			Path: path + "/{id}/" + act.name, Tags: tags, Summary: act.summary + " (409 in another state)"},
			func(ctx context.Context, in *campaignIDInput) (*campaignBody, error) {
				move := map[string]func(context.Context, int64) (store.FirmwareCampaign, error){
					"pause": a.opts.Updates.PauseCampaign, "resume": a.opts.Updates.ResumeCampaign, "cancel": a.opts.Updates.CancelCampaign,
				}[act.name]
				if err := a.campaignInScope(ctx, in.ID); err != nil {
					return nil, err
				}
				if _, err := move(ctx, in.ID); err != nil {
					return nil, a.fail(ctx, err)
				}
				return a.campaignBody(ctx, in.ID)
			})
	}
}

func (a *API) createCampaign(ctx context.Context, in *createCampaignInput) (*campaignOutput, error) {
	b := in.Body
	if sc := userFrom(ctx).scope(); !sc.All {
		// A site member's campaign is over devices it names, each in its
		// scope: a filter would reach devices of every site.
		if len(b.Endpoints) == 0 {
			return nil, problem.New(http.StatusBadRequest, "endpoints_required",
				"name the endpoints of the campaign: only global administrators may choose them by a filter")
		}
		for _, name := range b.Endpoints {
			if _, err := a.endpoint(ctx, name); err != nil {
				return nil, err
			}
		}
	}
	r := fwupdate.CampaignRequest{Name: b.Name, Version: b.Version, Endpoints: b.Endpoints,
		Filter: fwupdate.CampaignFilter{FirmwareVersion: b.FirmwareVersion}, Method: b.Method, Protocol: b.Protocol,
		Concurrency: b.Concurrency, RatePerMinute: b.RatePerMinute, RetryDelay: time.Duration(b.RetryDelaySeconds * float64(time.Second)),
		By: userFrom(ctx).User.ID}
	if r.Method == "auto" {
		r.Method = fwupdate.MethodAuto
	}
	if r.Protocol == "auto" {
		r.Protocol = fwupdate.ProtocolAuto
	}
	if b.MaxRetries != nil {
		r.MaxRetries = *b.MaxRetries
		if r.MaxRetries == 0 {
			r.MaxRetries = -1 // none
		}
	}
	c, err := a.opts.Updates.CreateCampaign(ctx, r)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	body, err := a.campaignBody(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	return &campaignOutput{Location: Prefix + "/firmware/campaigns/" + strconv.FormatInt(c.ID, 10), Body: body.Body}, nil
}

func (a *API) listCampaigns(ctx context.Context, in *listCampaignsInput) (*listCampaignsOutput, error) {
	cs, err := a.opts.Store.ListFirmwareCampaignsWithin(ctx, userFrom(ctx).scope(), in.State, in.Limit, in.Offset)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listCampaignsOutput{}
	out.Body.Items = make([]Campaign, 0, len(cs))
	for _, c := range cs {
		sum, err := a.opts.Store.CampaignSummary(ctx, c.ID)
		if err != nil {
			return nil, a.fail(ctx, err)
		}
		out.Body.Items = append(out.Body.Items, a.toCampaign(ctx, c, sum))
	}
	return out, nil
}

func (a *API) getCampaign(ctx context.Context, in *campaignIDInput) (*campaignBody, error) {
	return a.campaignBody(ctx, in.ID)
}

// campaignInScope answers 404, as for an unknown campaign, unless every
// device of campaign id is in the caller's scope (store.CampaignWithin):
// a campaign is seen and managed whole or not at all.
func (a *API) campaignInScope(ctx context.Context, id int64) error {
	sc := userFrom(ctx).scope()
	if sc.All {
		return nil
	}
	ok, err := a.opts.Store.CampaignWithin(ctx, id, sc)
	if err == nil && !ok {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no firmware campaign %d", id))
	}
	if err != nil {
		return a.fail(ctx, err)
	}
	return nil
}

func (a *API) campaignBody(ctx context.Context, id int64) (*campaignBody, error) {
	if err := a.campaignInScope(ctx, id); err != nil {
		return nil, err
	}
	c, sum, err := a.opts.Updates.GetCampaign(ctx, id)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &campaignBody{a.toCampaign(ctx, c, sum)}, nil
}

func (a *API) campaignDevices(ctx context.Context, in *campaignDevicesInput) (*campaignDevicesOutput, error) {
	if err := a.campaignInScope(ctx, in.ID); err != nil {
		return nil, err
	}
	if _, _, err := a.opts.Updates.GetCampaign(ctx, in.ID); err != nil {
		return nil, a.fail(ctx, err)
	}
	f := store.CampaignDeviceFilter{Limit: in.Limit, Offset: in.Offset}
	if in.State != "" {
		f.States = []string{in.State}
	}
	ds, err := a.opts.Store.CampaignDevices(ctx, in.ID, f)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &campaignDevicesOutput{}
	out.Body.Items = make([]CampaignDevice, 0, len(ds))
	for _, d := range ds {
		cd := CampaignDevice{Endpoint: d.Endpoint, State: d.State, Attempts: d.Attempts, UpdateID: d.UpdateID,
			Error: d.Error, UpdatedAt: d.UpdatedAt.UTC()}
		if d.State == fwupdate.DeviceWaiting && d.Attempts > 0 {
			cd.NextTryAt = render.OptionalTime(d.NextTryAt)
		}
		out.Body.Items = append(out.Body.Items, cd)
	}
	return out, nil
}

func (a *API) toCampaign(ctx context.Context, c store.FirmwareCampaign, sum map[string]int) Campaign {
	out := Campaign{ID: c.ID, Name: c.Name, Version: c.Version, State: c.State, Method: c.Method, Protocol: c.Protocol,
		Concurrency: c.Concurrency, RatePerMinute: c.RatePerMinute, MaxRetries: c.MaxRetries,
		RetryDelaySeconds: c.RetryDelay.Seconds(), Summary: map[string]int{}, CreatedAt: c.CreatedAt.UTC(),
		UpdatedAt: c.UpdatedAt.UTC(), FinishedAt: render.OptionalTime(c.FinishedAt)}
	for _, st := range fwupdate.DeviceStates {
		out.Summary[st] = sum[st]
		out.Devices += sum[st]
	}
	if c.CreatedBy != 0 {
		if u, err := a.opts.Store.GetUser(ctx, c.CreatedBy); err == nil {
			out.CreatedBy = u.Username
		}
	}
	return out
}
