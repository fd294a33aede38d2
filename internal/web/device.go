package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// DeviceEventCount is how many of its events a device page shows.
const DeviceEventCount = 20

// DeviceOperationCount is how many of its operations, and
// DeviceUpdateCount how many of its firmware updates, a device page shows.
const (
	DeviceOperationCount = 20
	DeviceUpdateCount    = 10
)

type deviceData struct {
	Endpoint     store.Endpoint
	Objects      []string
	Tree         []treeObject
	Events       []store.Event
	Operations   []opRow
	Updates      []store.FirmwareUpdate
	Credential   *credentialFacts
	Observations []observationRow
	ObserveError string
	CanOperate   bool   // the user may perform operations on it
	Flash        *flash // the outcome of the action just taken
	Live         string // the live stream of this device
}

// opRow is one queued or finished operation as the page lists it.
type opRow struct {
	store.Operation
	PathList string
	Result   string
}

// credentialFacts are what the page shows of a DTLS credential: its kind
// and identity, never key material.
type credentialFacts struct {
	Kind        string
	Identity    string
	Fingerprint string
}

type observationRow struct {
	Paths   string
	Origin  string
	Created time.Time
}

// device is GET /devices/{endpoint}: registration facts, the object tree
// with latest values and the actions on them, queued operations,
// firmware updates, credential, observations, last events; an unknown
// endpoint is 404.
func (w *Web) device(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	name := r.PathValue("endpoint")
	ep, err := w.endpoint(ctx, s, auth.ViewData, name)
	if err != nil {
		return err
	}
	d, err := w.deviceData(ctx, s, ep)
	if err != nil {
		return err
	}
	d.Flash = w.takeFlash(rw, r)
	w.render(rw, r, http.StatusOK, "device", s, d)
	return nil
}

func (w *Web) deviceData(ctx context.Context, s *session, ep store.Endpoint) (deviceData, error) {
	vals, err := w.cfg.Store.LatestResources(ctx, ep.ID, lwm2m.Root)
	if err != nil {
		return deviceData{}, err
	}
	evs, err := w.cfg.Store.ListEvents(ctx, ep.ID, DeviceEventCount)
	if err != nil {
		return deviceData{}, err
	}
	d := deviceData{Endpoint: ep, Events: evs, Objects: objectLinks(ep.ObjectLinks),
		Tree:       objectTree(w.cfg.Objects, ep.ObjectLinks, vals),
		CanOperate: w.cfg.Devices != nil && w.cfg.Jobs != nil && s.subj.Scope(auth.PerformOperations).Contains(ep.SiteID),
		Live:       "/live?endpoint=" + url.QueryEscape(ep.Name)}
	ops, err := w.cfg.Store.ListOperations(ctx, ep.ID, store.OperationFilter{Desc: true, Limit: DeviceOperationCount})
	if err != nil {
		return deviceData{}, err
	}
	for _, op := range ops {
		row := opRow{Operation: op, Result: strings.TrimSpace(op.ResultCode + " " + op.ResultError)}
		ps := make([]string, len(op.Paths))
		for i, p := range op.Paths {
			ps[i] = p.String()
		}
		row.PathList = strings.Join(ps, ", ")
		d.Operations = append(d.Operations, row)
	}
	if d.Updates, err = w.cfg.Store.ListFirmwareUpdates(ctx, store.FirmwareUpdateFilter{EndpointID: ep.ID, Limit: DeviceUpdateCount}); err != nil {
		return deviceData{}, err
	}
	c, err := w.cfg.Store.GetCredentialByEndpoint(ctx, ep.Name)
	switch {
	case err == nil:
		f := &credentialFacts{Kind: string(c.Kind), Identity: c.PSKIdentity, Fingerprint: c.CertFingerprint}
		if f.Identity == "" {
			f.Identity = c.CertCN
		}
		d.Credential = f
	case !errors.Is(err, store.ErrNotFound):
		return deviceData{}, err
	}
	if w.cfg.Devices != nil && ep.Online {
		held, err := w.cfg.Devices.ListObservations(ctx, ep.Name)
		if err != nil && !errors.Is(err, devmgmt.ErrOffline) {
			w.log.Warn("observations of a device page", "endpoint", ep.Name, "err", err)
			d.ObserveError = "The observations could not be listed."
		}
		for _, o := range held {
			ps := make([]string, len(o.Paths))
			for i, p := range o.Paths {
				ps[i] = p.String()
			}
			d.Observations = append(d.Observations, observationRow{Paths: strings.Join(ps, ", "), Origin: o.Origin.Kind, Created: o.Created})
		}
	}
	return d, nil
}

// objectLinks splits a registration's link-format payload into its links
// ("</3/0>", "</1/0>;ver=1.1"), for display only.
func objectLinks(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// endpoint returns the named endpoint when the session's user may do p to
// it (in any of its sites: the site switcher narrows lists, not links);
// an endpoint outside the user's scope is 404, as an unknown one is, so
// that its name leaks nothing. Every handler acting on one device finds
// it here.
func (w *Web) endpoint(ctx context.Context, s *session, p auth.Permission, name string) (store.Endpoint, error) {
	ep, err := w.cfg.Store.GetEndpoint(ctx, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && !s.subj.Scope(p).Contains(ep.SiteID) {
		return store.Endpoint{}, notFound("no such endpoint: " + name)
	}
	return ep, err
}

func badRequest(detail string) error { return problem.BadRequest(detail) }
