package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// SiteCookie holds the site switcher's choice: "" for all the user's
// sites, a site id, or "unassigned" (global administrators only).
const SiteCookie = "flownexus_site"

// viewUnassigned is the switcher's value for the devices in no site.
const viewUnassigned = "unassigned"

// switcherRoutes registers the site switcher's form target.
func (w *Web) switcherRoutes() {
	w.route("POST /site", auth.ViewOverview, w.switchSite)
}

// siteOption is one choice of the site switcher.
type siteOption struct {
	Value, Label string
	Selected     bool
}

// switcher is what the layout shows of the site switcher: its choices,
// the current one selected. Nil for a user without any site to choose.
type switcher struct {
	Options []siteOption
	Next    string
}

// userSites returns the sites the user may choose: every site for a
// global administrator, the sites of its memberships for another user.
func (w *Web) userSites(ctx context.Context, subj auth.Subject) ([]store.Site, error) {
	all, err := w.cfg.Store.ListSites(ctx)
	if err != nil || subj.Admin {
		return all, err
	}
	var out []store.Site
	for _, st := range all {
		for _, g := range subj.Grants {
			if g.SiteID == st.ID {
				out = append(out, st)
				break
			}
		}
	}
	return out, nil
}

// parseView reads the switcher's cookie value for subj: an unknown site,
// a site the user is no member of, or "unassigned" for a user other than
// a global administrator falls back to all its sites.
func parseView(v string, subj auth.Subject) auth.View {
	if v == viewUnassigned && subj.Admin {
		return auth.View{Unassigned: true}
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return auth.View{}
	}
	if subj.Admin {
		return auth.View{Site: id}
	}
	for _, g := range subj.Grants {
		if g.SiteID == id {
			return auth.View{Site: id}
		}
	}
	return auth.View{}
}

// viewOf returns the site switcher's choice of r for subj.
func viewOf(r *http.Request, subj auth.Subject) auth.View {
	c, err := r.Cookie(SiteCookie)
	if err != nil || len(c.Value) > 20 {
		return auth.View{}
	}
	return parseView(c.Value, subj)
}

// switcherOf returns the switcher for the session's page at path; nil
// when the user has no site and is no global administrator.
func (w *Web) switcherOf(ctx context.Context, s *session, path string) *switcher {
	sites, err := w.userSites(ctx, s.subj)
	if err != nil {
		w.log.Warn("site switcher: listing sites failed", "err", err)
		return nil
	}
	if len(sites) == 0 && !s.subj.Admin {
		return nil
	}
	sw := &switcher{Next: path}
	add := func(value, label string, sel bool) {
		sw.Options = append(sw.Options, siteOption{Value: value, Label: label, Selected: sel})
	}
	all := "All my sites"
	if s.subj.Admin {
		all = "All sites"
	}
	add("", all, s.view == auth.View{})
	for _, st := range sites {
		add(strconv.FormatInt(st.ID, 10), st.Name, s.view.Site == st.ID)
	}
	if s.subj.Admin {
		add(viewUnassigned, "Unassigned devices", s.view.Unassigned)
	}
	return sw
}

// switchSite is POST /site: keeps the chosen view (form field site) in
// the switcher's cookie and sends the browser back to next.
func (w *Web) switchSite(rw http.ResponseWriter, r *http.Request, s *session) error {
	v := r.PostFormValue("site")
	view := parseView(v, s.subj)
	switch {
	case view.Unassigned:
		v = viewUnassigned
	case view.Site != 0:
		v = strconv.FormatInt(view.Site, 10)
	default:
		v = ""
	}
	if v == "" {
		w.setCookie(rw, r, SiteCookie, "", -1)
	} else {
		w.setCookie(rw, r, SiteCookie, v, 365*24*3600)
	}
	http.Redirect(rw, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
	return nil
}
