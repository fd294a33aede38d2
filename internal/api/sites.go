package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// Site is a site as the API shows it.
type Site struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func toSite(s store.Site) Site { return Site{ID: s.ID, Name: s.Name, CreatedAt: s.CreatedAt.UTC()} }

type siteOutput struct{ Body Site }

type listSitesOutput struct {
	Body struct {
		Items []Site `json:"items" doc:"Ordered by name"`
	}
}

type siteBody struct {
	Name string `json:"name" doc:"Letters, digits and _ - . @, 1 to 64"`
}

type createSiteInput struct{ Body siteBody }

type siteIDInput struct {
	ID int64 `path:"id" doc:"The site's id"`
}

type updateSiteInput struct {
	ID   int64 `path:"id" doc:"The site's id"`
	Body siteBody
}

type assignInput struct {
	ID   int64 `path:"id" doc:"The site's id"`
	Body struct {
		Endpoints []string `json:"endpoints,omitempty" maxItems:"1000" doc:"The endpoints to move, by name"`
		Prefix    string   `json:"prefix,omitempty" maxLength:"256" doc:"Or: every endpoint whose name starts with this"`
	}
}

type assignOutput struct {
	Body struct {
		Moved int64 `json:"moved" doc:"How many endpoints moved (those outside the caller's manage_devices scope are left alone)"`
	}
}

func (a *API) siteRoutes(h huma.API) {
	tags := []string{"sites"}
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "list-sites", Method: http.MethodGet, Path: Prefix + "/sites", Summary: "List sites", Tags: tags,
	}, a.listSites)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "create-site", Method: http.MethodPost, Path: Prefix + "/sites", Summary: "Add a site",
		Tags: tags, DefaultStatus: http.StatusCreated,
	}, a.createSite)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "get-site", Method: http.MethodGet, Path: Prefix + "/sites/{id}", Summary: "Get a site", Tags: tags,
	}, a.getSite)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "update-site", Method: http.MethodPatch, Path: Prefix + "/sites/{id}", Summary: "Rename a site", Tags: tags,
	}, a.updateSite)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "delete-site", Method: http.MethodDelete, Path: Prefix + "/sites/{id}",
		Summary: "Delete a site and its memberships; its endpoints remain, in no site", Tags: tags, DefaultStatus: http.StatusNoContent,
	}, a.deleteSite)
	register(h, auth.ManageDevices, huma.Operation{
		OperationID: "assign-endpoints", Method: http.MethodPost, Path: Prefix + "/sites/{id}/endpoints",
		Summary: "Move endpoints (a list of names, or a name prefix) into a site", Tags: tags,
		Description: "A site member moves only endpoints of its manage_devices scope, and only into a site of it; " +
			"a site outside it is 404.",
	}, a.assignEndpoints)
}

func (a *API) siteOf(ctx context.Context, id int64) (store.Site, error) {
	st, err := a.opts.Store.GetSite(ctx, id)
	if err != nil {
		return st, a.notFoundOr(ctx, err, "site", id)
	}
	return st, nil
}

func (a *API) listSites(ctx context.Context, _ *struct{}) (*listSitesOutput, error) {
	sites, err := a.opts.Store.ListSites(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listSitesOutput{}
	out.Body.Items = make([]Site, 0, len(sites))
	for _, st := range sites {
		out.Body.Items = append(out.Body.Items, toSite(st))
	}
	return out, nil
}

func (a *API) createSite(ctx context.Context, in *createSiteInput) (*siteOutput, error) {
	if msg := auth.CheckName("site", in.Body.Name); msg != "" {
		return nil, fieldError("body.name", msg, in.Body.Name)
	}
	st, err := a.opts.Store.CreateSite(ctx, in.Body.Name)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	a.audit(ctx, "site.create", st.Name, nil)
	return &siteOutput{Body: toSite(st)}, nil
}

func (a *API) getSite(ctx context.Context, in *siteIDInput) (*siteOutput, error) {
	st, err := a.siteOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &siteOutput{Body: toSite(st)}, nil
}

func (a *API) updateSite(ctx context.Context, in *updateSiteInput) (*siteOutput, error) {
	old, err := a.siteOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if msg := auth.CheckName("site", in.Body.Name); msg != "" {
		return nil, fieldError("body.name", msg, in.Body.Name)
	}
	st, err := a.opts.Store.RenameSite(ctx, old.ID, in.Body.Name)
	if err != nil {
		return nil, a.notFoundOr(ctx, err, "site", in.ID)
	}
	a.audit(ctx, "site.rename", old.Name, map[string]any{"name": st.Name})
	return &siteOutput{Body: toSite(st)}, nil
}

func (a *API) deleteSite(ctx context.Context, in *siteIDInput) (*struct{}, error) {
	st, err := a.siteOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if err := a.opts.Store.DeleteSite(ctx, st.ID); err != nil {
		return nil, a.notFoundOr(ctx, err, "site", in.ID)
	}
	a.audit(ctx, "site.delete", st.Name, nil)
	return nil, nil
}

// assignEndpoints moves endpoints into the site, as the dashboard's
// device assignment does (audited as endpoint.assign).
func (a *API) assignEndpoints(ctx context.Context, in *assignInput) (*assignOutput, error) {
	sc := userFrom(ctx).scope()
	if !sc.Contains(in.ID) {
		return nil, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no such site: %d", in.ID))
	}
	st, err := a.siteOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	b := in.Body
	var sel store.Assignment
	detail := map[string]any{}
	switch {
	case len(b.Endpoints) > 0 && b.Prefix != "":
		return nil, fieldError("body.prefix", "give endpoints or a prefix, not both", b.Prefix)
	case len(b.Endpoints) > 0:
		for i, n := range b.Endpoints {
			if n == "" {
				return nil, fieldError(fmt.Sprintf("body.endpoints[%d]", i), "an empty endpoint name", n)
			}
		}
		sel.Names, detail["mode"], detail["names"] = b.Endpoints, "names", len(b.Endpoints)
	case b.Prefix != "":
		sel.Prefix, detail["mode"], detail["prefix"] = b.Prefix, "prefix", b.Prefix
	default:
		return nil, fieldError("body.endpoints", "give the endpoints to move (endpoints) or a name prefix (prefix)", nil)
	}
	n, err := a.opts.Store.AssignEndpoints(ctx, sel, st.ID, sc)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	detail["moved"] = n
	a.audit(ctx, "endpoint.assign", st.Name, detail)
	out := &assignOutput{}
	out.Body.Moved = n
	return out, nil
}
