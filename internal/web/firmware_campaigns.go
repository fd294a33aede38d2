package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// CampaignDevicesPageSize is how many devices one page of a campaign's
// page lists.
const CampaignDevicesPageSize = 100

// campaignRow is a campaign with its devices in the user's scope counted
// by state.
type campaignRow struct {
	store.FirmwareCampaign
	Summary map[string]int
	Devices int // in the user's scope
	Done    int // of those: succeeded, failed or cancelled
}

func newCampaignRow(c store.FirmwareCampaign, sum map[string]int) campaignRow {
	row := campaignRow{FirmwareCampaign: c, Summary: sum}
	for _, st := range fwupdate.DeviceStates {
		row.Devices += sum[st]
	}
	row.Done = sum[fwupdate.DeviceSucceeded] + sum[fwupdate.DeviceFailed] + sum[fwupdate.DeviceCancelled]
	return row
}

type campaignForm struct {
	Name, Version, Target, Prefix, Method, Protocol string
	Site                                            int64
	Concurrency, Rate, MaxRetries                   string
}

type campaignsData struct {
	Campaigns []campaignRow
	States    []string // device states, in summary order
	CanManage bool
	Versions  []string
	Sites     []store.Site // the sites the user may update devices of
	Methods   []string
	Protocols []string
	Form      campaignForm
	Error     string
}

// campaignsPage is GET /firmware/campaigns: campaigns with a device in
// the ViewFirmware scope, newest first, their progress counted over those
// devices; and the create form.
func (w *Web) campaignsPage(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.renderCampaigns(rw, r, s, http.StatusOK, campaignForm{Target: "all", Method: "auto", Protocol: "auto"}, "")
}

func (w *Web) renderCampaigns(rw http.ResponseWriter, r *http.Request, s *session, status int, f campaignForm, msg string) error {
	ctx := r.Context()
	sc := s.scope(auth.ViewFirmware)
	cs, err := w.cfg.Store.CampaignsIn(ctx, sc, 100)
	if err != nil {
		return err
	}
	d := campaignsData{States: fwupdate.DeviceStates, CanManage: may(s, auth.ManageFirmware), Form: f, Error: msg,
		Methods: updateMethods, Protocols: updateProtocols}
	for _, c := range cs {
		sum, _, err := w.cfg.Store.CampaignSummaryIn(ctx, c.ID, sc)
		if err != nil {
			return err
		}
		d.Campaigns = append(d.Campaigns, newCampaignRow(c, sum))
	}
	if d.Versions, err = w.imageVersions(r); err != nil {
		return err
	}
	sites, err := w.cfg.Store.ListSites(ctx)
	if err != nil {
		return err
	}
	manage := s.subj.Scope(auth.ManageFirmware)
	for _, st := range sites {
		if manage.Contains(st.ID) {
			d.Sites = append(d.Sites, st)
		}
	}
	w.render(rw, r, status, "firmware_campaigns", s, d)
	return nil
}

// createCampaign is POST /firmware/campaigns: an image rolled out to the
// devices with the Firmware Update object (5), not on its version
// already, of the user's ManageFirmware scope: all of them (target
// "all"), those of one site ("site"), or those whose names start with a
// prefix ("prefix"). Bad input answers the form with the message.
func (w *Web) createCampaign(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	f := campaignForm{Name: strings.TrimSpace(r.PostFormValue("name")), Version: r.PostFormValue("version"),
		Target: r.PostFormValue("target"), Prefix: strings.TrimSpace(r.PostFormValue("prefix")),
		Method: r.PostFormValue("method"), Protocol: r.PostFormValue("protocol"),
		Concurrency: r.PostFormValue("concurrency"), Rate: r.PostFormValue("rate"), MaxRetries: r.PostFormValue("max_retries")}
	again := func(err error) error {
		if status, msg, ok := formProblem(err); ok {
			return w.renderCampaigns(rw, r, s, status, f, msg)
		}
		return err
	}
	req := fwupdate.CampaignRequest{Name: f.Name, Version: f.Version, Method: choice(f.Method), Protocol: choice(f.Protocol),
		By: s.user.ID}
	for _, n := range []struct {
		field, v string
		to       *int
	}{{"concurrency", f.Concurrency, &req.Concurrency}, {"rate per minute", f.Rate, &req.RatePerMinute},
		{"max retries", f.MaxRetries, &req.MaxRetries}} {
		if n.v == "" {
			continue
		}
		v, err := strconv.Atoi(n.v)
		if err != nil || v < 0 || v > 100_000 {
			return again(badRequest(n.field + ": want a whole number from 0 to 100000"))
		}
		*n.to = v
	}
	if f.MaxRetries == "0" {
		req.MaxRetries = -1 // none
	}
	if f.Version == "" {
		return again(badRequest("a version is required"))
	}
	page := store.EndpointPage{Scope: s.subj.Scope(auth.ManageFirmware), Limit: 500}
	switch f.Target {
	case "all":
	case "site":
		id, err := strconv.ParseInt(r.PostFormValue("site"), 10, 64)
		if err != nil || !page.Scope.Contains(id) || id == 0 {
			return again(badRequest("choose one of your sites"))
		}
		f.Site, page.Scope = id, auth.Scope{Sites: []int64{id}}
	case "prefix":
		if f.Prefix == "" || len(f.Prefix) > 256 {
			return again(badRequest("a name prefix (at most 256 bytes) is required"))
		}
		page.Prefix = f.Prefix
	default:
		return again(badRequest("which devices: all, site or prefix"))
	}
	versions, err := w.cfg.Store.LatestFirmwareVersions(ctx)
	if err != nil {
		return err
	}
	for {
		eps, more, err := w.cfg.Store.PageEndpoints(ctx, page)
		if err != nil {
			return err
		}
		for _, e := range eps {
			if cur, ok := versions[e.ID]; hasFirmwareObject(e) && !(ok && fwupdate.SameVersion(cur, f.Version)) {
				req.Endpoints = append(req.Endpoints, e.Name)
			}
		}
		if !more {
			break
		}
		page.After = eps[len(eps)-1].Name
	}
	if len(req.Endpoints) == 0 {
		return again(badRequest("no device of your choice has the Firmware Update object (5) and another version"))
	}
	c, err := w.cfg.Updates.CreateCampaign(ctx, req)
	if err != nil {
		return again(err)
	}
	http.Redirect(rw, r, "/firmware/campaigns/"+strconv.FormatInt(c.ID, 10), http.StatusSeeOther)
	return nil
}

// hasFirmwareObject reports whether e's registration lists object 5, as
// fwupdate requires of the devices it updates.
func hasFirmwareObject(e store.Endpoint) bool {
	links, err := linkformat.ParseRegistration([]byte(e.ObjectLinks))
	_, ok := links.Object(5)
	return err == nil && ok
}

type campaignData struct {
	Campaign  campaignRow
	States    []string
	Devices   []store.CampaignDevice
	Next      string
	CanChange bool // may pause, resume or cancel it
	Outside   int  // devices outside the user's ViewFirmware scope
	CanPause  bool
	CanResume bool
	CanCancel bool
	FirstPage bool
}

// campaignPage is GET /firmware/campaigns/{id}: the campaign, its devices
// in the ViewFirmware scope by endpoint id (?after= an endpoint id: the
// next page), and its actions. A campaign with no device in the scope is
// 404.
func (w *Web) campaignPage(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id, err := pathID(r, "campaign")
	if err != nil {
		return err
	}
	c, _, err := w.cfg.Updates.GetCampaign(ctx, id)
	if err != nil {
		return err
	}
	sc := s.scope(auth.ViewFirmware)
	sum, outside, err := w.cfg.Store.CampaignSummaryIn(ctx, id, s.subj.Scope(auth.ViewFirmware))
	if err != nil {
		return err
	}
	if len(sum) == 0 && outside > 0 {
		return notFound("no such campaign: " + r.PathValue("id"))
	}
	after, err := optionalID(r.URL.Query().Get("after"))
	if err != nil {
		return badRequest("after: " + err.Error())
	}
	devs, more, err := w.cfg.Store.CampaignDevicesIn(ctx, id, sc, after, CampaignDevicesPageSize)
	if err != nil {
		return err
	}
	d := campaignData{Campaign: newCampaignRow(c, sum), States: fwupdate.DeviceStates, Devices: devs, Outside: outside,
		FirstPage: after == 0}
	if more {
		d.Next = "/firmware/campaigns/" + strconv.FormatInt(id, 10) + "?after=" + strconv.FormatInt(devs[len(devs)-1].EndpointID, 10)
	}
	if may(s, auth.ManageFirmware) {
		_, out, err := w.cfg.Store.CampaignSummaryIn(ctx, id, s.subj.Scope(auth.ManageFirmware))
		if err != nil {
			return err
		}
		d.CanChange = out == 0
	}
	d.CanPause = d.CanChange && c.State == fwupdate.CampaignRunning
	d.CanResume = d.CanChange && c.State == fwupdate.CampaignPaused
	d.CanCancel = d.CanChange && slices.Contains([]string{fwupdate.CampaignRunning, fwupdate.CampaignPaused}, c.State)
	w.render(rw, r, http.StatusOK, "firmware_campaign", s, d)
	return nil
}

// moveCampaign is POST /firmware/campaigns/{id}/{pause|resume|cancel}. It
// needs ManageFirmware on the sites of all the campaign's devices: 404
// when none is in that scope, 403 when some are outside it.
func (w *Web) moveCampaign(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id, err := pathID(r, "campaign")
	if err != nil {
		return err
	}
	move := map[string]func(context.Context, int64) (store.FirmwareCampaign, error){
		"pause": w.cfg.Updates.PauseCampaign, "resume": w.cfg.Updates.ResumeCampaign, "cancel": w.cfg.Updates.CancelCampaign,
	}[r.PathValue("action")]
	if move == nil {
		return notFound("no such campaign action: " + r.PathValue("action"))
	}
	if _, _, err := w.cfg.Updates.GetCampaign(ctx, id); err != nil {
		return err
	}
	sum, outside, err := w.cfg.Store.CampaignSummaryIn(ctx, id, s.subj.Scope(auth.ManageFirmware))
	switch {
	case err != nil:
		return err
	case len(sum) == 0 && outside > 0:
		return notFound("no such campaign: " + r.PathValue("id"))
	case outside > 0:
		return forbidden("the campaign has devices outside the sites you may update")
	}
	if _, err := move(ctx, id); err != nil {
		return err
	}
	http.Redirect(rw, r, "/firmware/campaigns/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	return nil
}
