package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// ActionAssign is the audit action of moving devices to a site (or to
// none); its detail says how they were chosen and how many moved.
const ActionAssign = "endpoint.assign"

type adminDevicesData struct {
	Sites   []store.Site // those the user may move devices into and out of
	Admin   bool         // a global administrator: "no site" is a source too
	Mode    string       // names, prefix or site
	Names   string
	Prefix  string
	From    string
	To      string
	Error   string
	Done    string
	MaxList int
}

// maxAssignNames bounds the names one assignment lists.
const maxAssignNames = 1000

func (w *Web) adminDevices(rw http.ResponseWriter, r *http.Request, s *session) error {
	d := adminDevicesData{Mode: "names"}
	if n := r.URL.Query().Get("moved"); n != "" {
		d.Done = "Devices moved: " + n + "."
	}
	return w.adminDevicesPage(rw, r, s, http.StatusOK, d)
}

func (w *Web) adminDevicesPage(rw http.ResponseWriter, r *http.Request, s *session, status int, d adminDevicesData) error {
	sites, err := w.userSites(r.Context(), s.subj)
	if err != nil {
		return err
	}
	sc := s.subj.Scope(auth.ManageDevices)
	for _, st := range sites {
		if sc.Contains(st.ID) {
			d.Sites = append(d.Sites, st)
		}
	}
	d.Admin, d.MaxList = s.subj.Admin, maxAssignNames
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_devices", s, d)
	return nil
}

// siteChoice parses a site field: "" or "none" is no site (0).
func siteChoice(v string) (int64, bool) {
	if v == "" || v == "none" {
		return 0, true
	}
	id, err := strconv.ParseInt(v, 10, 64)
	return id, err == nil && id > 0
}

// adminAssign is POST /admin/devices/assign: the devices chosen by mode
// (names: a list, one per line; prefix: a name prefix; site: every
// device of site from) move to site to. Only devices in the user's
// manage_devices scope move, and only into a site of it (or none).
func (w *Web) adminAssign(rw http.ResponseWriter, r *http.Request, s *session) error {
	d := adminDevicesData{Mode: r.PostFormValue("mode"), Names: r.PostFormValue("names"),
		Prefix: strings.TrimSpace(r.PostFormValue("prefix")), From: r.PostFormValue("from"), To: r.PostFormValue("to")}
	again := func(msg string) error {
		d.Error = msg
		return w.adminDevicesPage(rw, r, s, http.StatusUnprocessableEntity, d)
	}
	sc := s.subj.Scope(auth.ManageDevices)
	to, ok := siteChoice(d.To)
	if !ok || to != 0 && !sc.Contains(to) {
		return again("Choose a site you manage to move the devices to.")
	}
	var sel store.Assignment
	detail := map[string]any{"mode": d.Mode}
	switch d.Mode {
	case "names":
		for _, n := range strings.FieldsFunc(d.Names, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' || r == ' ' }) {
			sel.Names = append(sel.Names, n)
		}
		if len(sel.Names) == 0 {
			return again("List the devices' names, one a line.")
		}
		if len(sel.Names) > maxAssignNames {
			return again(fmt.Sprintf("At most %d names at once.", maxAssignNames))
		}
		detail["names"] = len(sel.Names)
	case "prefix":
		if d.Prefix == "" || len(d.Prefix) > 256 {
			return again("Give a name prefix (1 to 256 bytes).")
		}
		sel.Prefix, detail["prefix"] = d.Prefix, d.Prefix
	case "site":
		from, ok := siteChoice(d.From)
		if !ok || !sc.Contains(from) {
			return again("Choose a site you manage to move the devices from.")
		}
		sel.FromSite, sel.FromSiteSet, detail["from"] = from, true, from
	default:
		return again("Choose how to select the devices.")
	}
	n, err := w.cfg.Store.AssignEndpoints(r.Context(), sel, to, sc)
	if err != nil {
		return err
	}
	target := "no site"
	if to != 0 {
		st, err := w.cfg.Store.GetSite(r.Context(), to)
		if err != nil {
			return err
		}
		target = st.Name
	}
	detail["moved"] = n
	w.auditAs(r, s, ActionAssign, target, detail)
	http.Redirect(rw, r, "/admin/devices?moved="+strconv.FormatInt(n, 10), http.StatusSeeOther)
	return nil
}
