package fwupdate

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// KindCampaign is the job kind that advances one campaign (args:
// campaignArgs; key: the campaign's id).
const KindCampaign = "firmware_campaign"

// The states of a campaign (store.FirmwareCampaign.State).
const (
	CampaignRunning   = "running"   // starting updates as the cap and the rate allow
	CampaignPaused    = "paused"    // starting none; those running go on
	CampaignCancelled = "cancelled" // by an operator: waiting devices cancelled, running updates cancelled
	CampaignFinished  = "finished"  // every device succeeded, failed for good or was cancelled
)

// The states of a device in a campaign (store.CampaignDevice.State).
const (
	DeviceWaiting   = "waiting"   // to be started (again, after a failure, at NextTryAt)
	DeviceRunning   = "running"   // its update (UpdateID) is active
	DeviceSucceeded = "succeeded" // updated
	DeviceFailed    = "failed"    // its last attempt failed and no retry is left
	DeviceCancelled = "cancelled" // the campaign, or its update, was cancelled
)

// DeviceStates lists the device states in the order summaries show them.
var DeviceStates = []string{DeviceWaiting, DeviceRunning, DeviceSucceeded, DeviceFailed, DeviceCancelled}

// Defaults of CampaignRequest's zero fields.
const (
	DefaultConcurrency   = 10
	DefaultRatePerMinute = 100
	DefaultMaxRetries    = 2
	DefaultRetryDelay    = 5 * time.Minute
)

// CampaignRequest describes a campaign: an image, the endpoints, and how
// fast to go.
type CampaignRequest struct {
	Name    string
	Version string // the image's
	// Endpoints names the endpoints; when empty, Filter chooses them.
	Endpoints []string
	Filter    CampaignFilter
	// Method and Protocol are every update's Options.
	Method, Protocol string
	// Concurrency caps the updates running at once, RatePerMinute the
	// updates started a minute; MaxRetries is how many more updates a
	// device whose update failed gets, RetryDelay the wait before each. Zero
	// values mean the Defaults; a negative MaxRetries means none.
	Concurrency   int
	RatePerMinute int
	MaxRetries    int
	RetryDelay    time.Duration
	By            int64 // the user who makes it
}

// CampaignFilter chooses the endpoints of a campaign without a list:
// every endpoint whose registration has the Firmware Update object (5),
// that does not run the campaign's version already, and that runs
// FirmwareVersion (its last reported /3/0/3, compared as SameVersion) when
// that is set.
type CampaignFilter struct {
	FirmwareVersion string `json:"firmware_version,omitempty"`
}

// selection is what a campaign records of how its endpoints were chosen.
type selection struct {
	Endpoints []string        `json:"endpoints,omitempty"`
	Filter    *CampaignFilter `json:"filter,omitempty"`
}

type campaignArgs struct {
	Campaign int64 `json:"campaign"`
}

func campaignJob(id int64, at time.Time) store.NewJob {
	args, _ := json.Marshal(campaignArgs{Campaign: id})
	return store.NewJob{Kind: KindCampaign, Key: strconv.FormatInt(id, 10), Args: args, RunAt: at}
}

func (u *Updater) registerCampaigns() error {
	return u.cfg.Engine.Register(KindCampaign, jobs.Kind{
		Handler: func(ctx context.Context, j store.Job) error {
			var a campaignArgs
			if err := json.Unmarshal(j.Args, &a); err != nil {
				return fmt.Errorf("fwupdate: %s job %d: args: %w", KindCampaign, j.ID, err)
			}
			return u.tick(ctx, a.Campaign)
		},
		Timeout:     5 * time.Minute,
		MaxAttempts: 20,
	})
}

// CreateCampaign makes a campaign and starts it: the campaign, its devices
// (state waiting) and the job that drives it are stored in one
// transaction. An unknown image or endpoint, an endpoint without object 5,
// bad options and a selection with no endpoint are an *Error.
func (u *Updater) CreateCampaign(ctx context.Context, r CampaignRequest) (store.FirmwareCampaign, error) {
	switch r.Method {
	case MethodAuto, MethodPull, MethodPush:
	default:
		return store.FirmwareCampaign{}, refuse(Invalid, "unknown method %q (pull, push or empty for auto)", r.Method)
	}
	if _, ok := protocolNumbers[r.Protocol]; !ok && r.Protocol != ProtocolAuto {
		return store.FirmwareCampaign{}, refuse(Invalid, "unknown protocol %q (coap, coaps, http, https or empty for auto)", r.Protocol)
	}
	if r.Concurrency < 0 || r.RatePerMinute < 0 || r.RetryDelay < 0 {
		return store.FirmwareCampaign{}, refuse(Invalid, "concurrency, rate and retry delay must not be negative")
	}
	r.Concurrency = cmp.Or(r.Concurrency, DefaultConcurrency)
	r.RatePerMinute = cmp.Or(r.RatePerMinute, DefaultRatePerMinute)
	if r.MaxRetries == 0 {
		r.MaxRetries = DefaultMaxRetries
	} else if r.MaxRetries < 0 {
		r.MaxRetries = 0
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = DefaultRetryDelay
	}
	fw, err := u.st.GetFirmwareByVersion(ctx, r.Version)
	if errors.Is(err, store.ErrNotFound) {
		return store.FirmwareCampaign{}, refuse(NotFound, "unknown firmware image version %q", r.Version)
	}
	if err != nil {
		return store.FirmwareCampaign{}, fmt.Errorf("fwupdate: campaign: %w", err)
	}
	ids, sel, err := u.choose(ctx, r)
	if err != nil {
		return store.FirmwareCampaign{}, err
	}
	selJSON, _ := json.Marshal(sel)
	now := u.now()
	var c store.FirmwareCampaign
	err = u.st.WithTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = u.st.CreateFirmwareCampaignTx(ctx, tx, store.FirmwareCampaign{
			Name: r.Name, FirmwareID: fw.ID, Version: fw.Version, State: CampaignRunning, Method: r.Method, Protocol: r.Protocol,
			Concurrency: r.Concurrency, RatePerMinute: r.RatePerMinute, MaxRetries: r.MaxRetries, RetryDelay: r.RetryDelay,
			Selection: selJSON, NextStartAt: now, CreatedBy: r.By,
		}, ids, DeviceWaiting)
		if err != nil {
			return err
		}
		return u.cfg.Engine.InsertTx(ctx, tx, campaignJob(c.ID, time.Time{}))
	})
	if err != nil {
		return store.FirmwareCampaign{}, fmt.Errorf("fwupdate: campaign: %w", err)
	}
	u.cfg.Engine.Kick()
	u.log.Info("firmware campaign started", "campaign", c.ID, "version", c.Version, "devices", len(ids),
		"concurrency", c.Concurrency, "rate_per_minute", c.RatePerMinute)
	return c, nil
}

// choose returns the endpoint ids of the campaign r describes.
func (u *Updater) choose(ctx context.Context, r CampaignRequest) ([]int64, selection, error) {
	hasFW := func(e store.Endpoint) bool {
		links, err := linkformat.ParseRegistration([]byte(e.ObjectLinks))
		_, ok := links.Object(5)
		return err == nil && ok
	}
	var ids []int64
	if len(r.Endpoints) > 0 {
		var unknown, bare []string
		seen := map[int64]bool{}
		for _, name := range r.Endpoints {
			e, err := u.st.GetEndpoint(ctx, name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				unknown = append(unknown, name)
				continue
			case err != nil:
				return nil, selection{}, fmt.Errorf("fwupdate: campaign: %w", err)
			case !hasFW(e):
				bare = append(bare, name)
				continue
			}
			if !seen[e.ID] {
				seen[e.ID] = true
				ids = append(ids, e.ID)
			}
		}
		if len(unknown) > 0 {
			return nil, selection{}, refuse(NotFound, "unknown endpoints: %q", unknown)
		}
		if len(bare) > 0 {
			return nil, selection{}, refuse(Conflict, "devices without a Firmware Update object (5) in their registration: %q", bare)
		}
		slices.Sort(ids)
		return ids, selection{Endpoints: r.Endpoints}, nil
	}
	versions, err := u.st.LatestFirmwareVersions(ctx)
	if err != nil {
		return nil, selection{}, fmt.Errorf("fwupdate: campaign: %w", err)
	}
	for off := 0; ; off += 1000 {
		page, _, err := u.st.ListEndpoints(ctx, store.EndpointFilter{Limit: 1000, Offset: off})
		if err != nil {
			return nil, selection{}, fmt.Errorf("fwupdate: campaign: %w", err)
		}
		for _, e := range page {
			cur, known := versions[e.ID]
			switch {
			case !hasFW(e):
			case known && SameVersion(cur, r.Version):
			case r.Filter.FirmwareVersion != "" && (!known || !SameVersion(cur, r.Filter.FirmwareVersion)):
			default:
				ids = append(ids, e.ID)
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	if len(ids) == 0 {
		return nil, selection{}, refuse(Invalid, "no endpoint matches the campaign's filter")
	}
	slices.Sort(ids)
	return ids, selection{Filter: &r.Filter}, nil
}

// GetCampaign returns campaign id and its devices counted by state.
func (u *Updater) GetCampaign(ctx context.Context, id int64) (store.FirmwareCampaign, map[string]int, error) {
	c, err := u.st.GetFirmwareCampaign(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, nil, refuse(NotFound, "unknown firmware campaign %d", id)
	}
	if err != nil {
		return c, nil, err
	}
	sum, err := u.st.CampaignSummary(ctx, id)
	return c, sum, err
}

// PauseCampaign stops campaign id from starting updates; those running go
// on. Only a running campaign can be paused.
func (u *Updater) PauseCampaign(ctx context.Context, id int64) (store.FirmwareCampaign, error) {
	return u.moveCampaign(ctx, id, CampaignPaused, CampaignRunning)
}

// ResumeCampaign lets a paused campaign start updates again.
func (u *Updater) ResumeCampaign(ctx context.Context, id int64) (store.FirmwareCampaign, error) {
	c, err := u.moveCampaign(ctx, id, CampaignRunning, CampaignPaused)
	if err == nil {
		err = u.cfg.Engine.Insert(ctx, campaignJob(id, time.Time{}))
	}
	return c, err
}

// CancelCampaign cancels campaign id: its waiting devices are cancelled,
// and so are the active updates it started.
func (u *Updater) CancelCampaign(ctx context.Context, id int64) (store.FirmwareCampaign, error) {
	mu := &u.campLocks[id%int64(len(u.campLocks))]
	mu.Lock()
	defer mu.Unlock()
	c, err := u.moveCampaignLocked(ctx, id, CampaignCancelled, CampaignRunning, CampaignPaused)
	if err != nil {
		return c, err
	}
	if _, err := u.st.SetCampaignDevicesState(ctx, id, DeviceWaiting, DeviceCancelled); err != nil {
		return c, err
	}
	running, err := u.st.CampaignDevices(ctx, id, store.CampaignDeviceFilter{States: []string{DeviceRunning}, Limit: 1 << 30})
	if err != nil {
		return c, err
	}
	for _, d := range running {
		if _, err := u.Cancel(ctx, d.UpdateID, c.CreatedBy); err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				return c, err
			}
		}
		d.State = DeviceCancelled
		if err := u.st.UpdateCampaignDevice(ctx, d); err != nil {
			return c, err
		}
	}
	u.log.Info("firmware campaign cancelled", "campaign", id, "running_updates_cancelled", len(running))
	return c, nil
}

func (u *Updater) moveCampaign(ctx context.Context, id int64, to string, from ...string) (store.FirmwareCampaign, error) {
	mu := &u.campLocks[id%int64(len(u.campLocks))]
	mu.Lock()
	defer mu.Unlock()
	return u.moveCampaignLocked(ctx, id, to, from...)
}

func (u *Updater) moveCampaignLocked(ctx context.Context, id int64, to string, from ...string) (store.FirmwareCampaign, error) {
	c, _, err := u.GetCampaign(ctx, id)
	if err != nil {
		return c, err
	}
	if !slices.Contains(from, c.State) {
		return c, refuse(Conflict, "firmware campaign %d is %s", id, c.State)
	}
	c.State = to
	if to == CampaignCancelled {
		c.FinishedAt = u.now()
	}
	out, err := u.st.UpdateFirmwareCampaign(ctx, c, from...)
	if errors.Is(err, store.ErrConflict) {
		return c, refuse(Conflict, "firmware campaign %d changed meanwhile: try again", id)
	}
	return out, err
}

// tick advances campaign id: it records the outcome of the updates that
// ended, starts as many as the cap and the rate allow, and finishes the
// campaign when no device is left to update.
func (u *Updater) tick(ctx context.Context, id int64) error {
	mu := &u.campLocks[id%int64(len(u.campLocks))]
	mu.Lock()
	defer mu.Unlock()
	c, err := u.st.GetFirmwareCampaign(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != CampaignRunning && c.State != CampaignPaused {
		return nil
	}
	now := u.now()
	retryOrFail := func(d *store.CampaignDevice, why string) {
		d.Error = why
		if d.Attempts <= c.MaxRetries {
			d.State, d.NextTryAt = DeviceWaiting, now.Add(c.RetryDelay)
		} else {
			d.State = DeviceFailed
		}
	}
	running, err := u.st.CampaignDevices(ctx, id, store.CampaignDeviceFilter{States: []string{DeviceRunning}, Limit: 1 << 30})
	if err != nil {
		return err
	}
	busy := 0
	for _, d := range running {
		up, err := u.st.GetFirmwareUpdate(ctx, d.UpdateID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			retryOrFail(&d, "its update was removed")
		case err != nil:
			return err
		case up.Active:
			busy++
			continue
		case up.State == StateSucceeded:
			d.State, d.Error = DeviceSucceeded, ""
		case up.State == StateCancelled:
			d.State, d.Error = DeviceCancelled, "its update was cancelled"
		default:
			retryOrFail(&d, cmp.Or(up.Error, up.Result))
		}
		if err := u.st.UpdateCampaignDevice(ctx, d); err != nil {
			return err
		}
	}
	interval := time.Minute / time.Duration(max(c.RatePerMinute, 1))
	next := c.NextStartAt
	if floor := now.Add(-time.Second); next.Before(floor) {
		next = floor // at most a second's worth of starts at once
	}
	free := c.Concurrency - busy
	if c.State == CampaignRunning && free > 0 && !next.After(now) {
		due, err := u.st.CampaignDevices(ctx, id, store.CampaignDeviceFilter{States: []string{DeviceWaiting}, DueBy: now, Limit: free})
		if err != nil {
			return err
		}
		for _, d := range due {
			if free == 0 || next.After(now) {
				break
			}
			// Claimed first: a tick on another node may start it too.
			if ok, err := u.st.ClaimCampaignDevice(ctx, id, d.EndpointID, DeviceWaiting, DeviceRunning); err != nil {
				return err
			} else if !ok {
				continue
			}
			d.Attempts++
			up, err := u.Start(ctx, d.Endpoint, c.Version, Options{Method: c.Method, Protocol: c.Protocol, By: c.CreatedBy, Campaign: c.ID})
			var fe *Error
			switch {
			case err == nil:
				d.State, d.UpdateID, d.Error = DeviceRunning, up.ID, ""
				free--
			case errors.As(err, &fe):
				retryOrFail(&d, fe.Msg)
			default:
				return err
			}
			if err := u.st.UpdateCampaignDevice(ctx, d); err != nil {
				return err
			}
			next = next.Add(interval)
		}
	}
	c.NextStartAt = next
	sum, err := u.st.CampaignSummary(ctx, id)
	if err != nil {
		return err
	}
	if sum[DeviceWaiting] == 0 && sum[DeviceRunning] == 0 {
		c.State, c.FinishedAt = CampaignFinished, now
	}
	done, err := u.st.UpdateFirmwareCampaign(ctx, c, CampaignRunning, CampaignPaused)
	if errors.Is(err, store.ErrConflict) {
		return nil // cancelled meanwhile
	}
	if err != nil {
		return err
	}
	if done.State == CampaignFinished {
		u.log.Info("firmware campaign finished", "campaign", id, "succeeded", sum[DeviceSucceeded],
			"failed", sum[DeviceFailed], "cancelled", sum[DeviceCancelled])
		return nil
	}
	at := now.Add(u.cfg.PollInterval)
	if done.State == CampaignRunning && sum[DeviceWaiting] > 0 && free > 0 && next.Before(at) {
		at = next
	}
	return u.cfg.Engine.Insert(ctx, campaignJob(id, at))
}
