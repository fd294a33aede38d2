package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// The administration pages under /admin/: users and their memberships,
// sites, device assignment, API tokens, the audit log and device
// credentials. Users, sites, tokens and the audit log need
// auth.ManageUsers and credentials auth.ManageCredentials (global
// administrators only); device assignment needs auth.ManageDevices, so a
// Site Admin may move devices within, into and out of the sites it
// manages. Every change is audited with the acting user.

// accessPages are the pages of the administration and the profile.
var accessPages = []string{"admin_users", "admin_user", "admin_sites", "admin_devices", "admin_tokens",
	"admin_audit", "admin_credentials", "profile"}

// adminRoutes registers the administration pages.
func (w *Web) adminRoutes() {
	w.route("GET /admin/users", auth.ManageUsers, w.adminUsers)
	w.route("POST /admin/users", auth.ManageUsers, w.adminCreateUser)
	w.route("GET /admin/users/{id}", auth.ManageUsers, w.adminUser)
	w.route("POST /admin/users/{id}/password", auth.ManageUsers, w.adminResetPassword)
	w.route("POST /admin/users/{id}/disable", auth.ManageUsers, w.adminUserState)
	w.route("POST /admin/users/{id}/enable", auth.ManageUsers, w.adminUserState)
	w.route("POST /admin/users/{id}/delete", auth.ManageUsers, w.adminDeleteUser)
	w.route("POST /admin/users/{id}/memberships", auth.ManageUsers, w.adminMemberships)
	w.route("GET /admin/sites", auth.ManageUsers, w.adminSites)
	w.route("POST /admin/sites", auth.ManageUsers, w.adminCreateSite)
	w.route("POST /admin/sites/{id}/rename", auth.ManageUsers, w.adminRenameSite)
	w.route("POST /admin/sites/{id}/delete", auth.ManageUsers, w.adminDeleteSite)
	w.route("GET /admin/devices", auth.ManageDevices, w.adminDevices)
	w.route("POST /admin/devices/assign", auth.ManageDevices, w.adminAssign)
	w.route("GET /admin/tokens", auth.ManageUsers, w.adminTokens)
	w.route("POST /admin/tokens", auth.ManageUsers, w.adminCreateToken)
	w.route("POST /admin/tokens/{id}/revoke", auth.ManageUsers, w.adminRevokeToken)
	w.route("GET /admin/audit", auth.ManageUsers, w.adminAudit)
	if w.cfg.Credentials != nil {
		w.route("GET /admin/credentials", auth.ManageCredentials, w.adminCredentials)
		w.route("POST /admin/credentials", auth.ManageCredentials, w.adminAddCredential)
		w.route("POST /admin/credentials/{endpoint}/delete", auth.ManageCredentials, w.adminRemoveCredential)
	}
}

// actor is the session's user as the audit log names it.
func actor(r *http.Request, s *session) store.Actor {
	return store.Actor{UserID: s.user.ID, Name: s.user.Username, RemoteAddr: r.RemoteAddr}
}

// auditAs records a change made by the session's user.
func (w *Web) auditAs(r *http.Request, s *session, action, target string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["surface"] = "dashboard"
	a := actor(r, s)
	w.audit(r.Context(), store.AuditEntry{UserID: a.UserID, Actor: a.Name, Action: action, Target: target,
		RemoteAddr: a.RemoteAddr}, detail)
}

// pathID is the {id} of the request's path; 404 when it is no id.
func pathID(r *http.Request, what string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("no such " + what + ": " + r.PathValue("id"))
	}
	return id, nil
}

type adminUserRow struct {
	User  store.User
	Sites []membershipRow
}

type adminUsersData struct {
	Users    []adminUserRow
	Error    string
	Username string
	Admin    bool
	MinLen   int
}

func (w *Web) adminUsers(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.adminUsersPage(rw, r, s, http.StatusOK, adminUsersData{})
}

func (w *Web) adminUsersPage(rw http.ResponseWriter, r *http.Request, s *session, status int, d adminUsersData) error {
	users, err := w.cfg.Store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	for _, u := range users {
		ms, err := w.memberships(r, u.ID)
		if err != nil {
			return err
		}
		d.Users = append(d.Users, adminUserRow{User: u, Sites: ms})
	}
	d.MinLen = auth.MinPasswordLen
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_users", s, d)
	return nil
}

// adminCreateUser is POST /admin/users: username, password (twice) and
// the global-administrator flag.
func (w *Web) adminCreateUser(rw http.ResponseWriter, r *http.Request, s *session) error {
	d := adminUsersData{Username: strings.TrimSpace(r.PostFormValue("username")), Admin: r.PostFormValue("admin") == "on"}
	pw := r.PostFormValue("password")
	if msg := auth.CheckName("user", d.Username); msg != "" {
		d.Error = msg
	} else if len(pw) < auth.MinPasswordLen {
		d.Error = fmt.Sprintf("The password must be at least %d characters.", auth.MinPasswordLen)
	} else if pw != r.PostFormValue("again") {
		d.Error = "The passwords differ."
	}
	if d.Error != "" {
		return w.adminUsersPage(rw, r, s, http.StatusUnprocessableEntity, d)
	}
	hash, err := auth.HashPassword(pw, auth.DefaultParams)
	if err != nil {
		return err
	}
	u, err := w.cfg.Store.CreateUser(r.Context(), d.Username, hash, d.Admin)
	if errors.Is(err, store.ErrConflict) {
		d.Error = fmt.Sprintf("A user %q exists already.", d.Username)
		return w.adminUsersPage(rw, r, s, http.StatusUnprocessableEntity, d)
	}
	if err != nil {
		return err
	}
	w.auditAs(r, s, "user.create", u.Username, map[string]any{"admin": d.Admin})
	http.Redirect(rw, r, "/admin/users/"+strconv.FormatInt(u.ID, 10), http.StatusSeeOther)
	return nil
}

// flagBox is one flag checkbox of a membership form.
type flagBox struct {
	Perm    auth.Permission
	Checked bool
}

// siteMembership is one site's row of a user's membership form.
type siteMembership struct {
	Site  store.Site
	Role  string // "", "admin" or "user"
	Flags []flagBox
}

type adminUserData struct {
	User   store.User
	Sites  []siteMembership
	Tokens []store.APIToken
	MinLen int
	Error  string
	Done   string
}

// adminUserOf returns the user of the path's {id}; 404 when none.
func (w *Web) adminUserOf(r *http.Request) (store.User, error) {
	id, err := pathID(r, "user")
	if err != nil {
		return store.User{}, err
	}
	u, err := w.cfg.Store.GetUser(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return u, notFound(fmt.Sprintf("no such user: %d", id))
	}
	return u, err
}

func (w *Web) adminUser(rw http.ResponseWriter, r *http.Request, s *session) error {
	u, err := w.adminUserOf(r)
	if err != nil {
		return err
	}
	return w.adminUserPage(rw, r, s, u, http.StatusOK, "", r.URL.Query().Get("done"))
}

// adminUserDone are the notices a change on the user page redirects with.
var adminUserDone = map[string]string{
	"password": "Password reset: the user's sessions have ended.", "disable": "User disabled.",
	"enable": "User enabled.", "memberships": "Memberships saved.",
}

func (w *Web) adminUserPage(rw http.ResponseWriter, r *http.Request, s *session, u store.User, status int, msg, done string) error {
	ctx := r.Context()
	sites, err := w.cfg.Store.ListSites(ctx)
	if err != nil {
		return err
	}
	ms, err := w.cfg.Store.ListMemberships(ctx, u.ID)
	if err != nil {
		return err
	}
	toks, err := w.cfg.Store.ListAPITokens(ctx, u.ID)
	if err != nil {
		return err
	}
	d := adminUserData{User: u, Tokens: toks, MinLen: auth.MinPasswordLen, Error: msg, Done: adminUserDone[done]}
	for _, st := range sites {
		row := siteMembership{Site: st}
		var flags auth.Flags
		for _, m := range ms {
			if m.SiteID == st.ID {
				row.Role, flags = string(m.Role), m.Grant().Flags
				if m.Role == auth.SiteAdmin {
					flags = auth.AllFlags
				}
			}
		}
		for _, p := range auth.SitePermissions() {
			row.Flags = append(row.Flags, flagBox{Perm: p, Checked: flags.Has(p)})
		}
		d.Sites = append(d.Sites, row)
	}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_user", s, d)
	return nil
}

func redirectUser(rw http.ResponseWriter, r *http.Request, id int64, done string) {
	http.Redirect(rw, r, "/admin/users/"+strconv.FormatInt(id, 10)+"?done="+done, http.StatusSeeOther)
}

// adminResetPassword is POST /admin/users/{id}/password: a new password,
// twice; the user's sessions end.
func (w *Web) adminResetPassword(rw http.ResponseWriter, r *http.Request, s *session) error {
	u, err := w.adminUserOf(r)
	if err != nil {
		return err
	}
	pw := r.PostFormValue("password")
	switch {
	case len(pw) < auth.MinPasswordLen:
		return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity,
			fmt.Sprintf("The password must be at least %d characters.", auth.MinPasswordLen), "")
	case pw != r.PostFormValue("again"):
		return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity, "The passwords differ.", "")
	}
	hash, err := auth.HashPassword(pw, auth.DefaultParams)
	if err != nil {
		return err
	}
	if err := w.cfg.Store.SetPassword(r.Context(), u.ID, hash); err != nil {
		return err
	}
	w.auditAs(r, s, ActionPasswordChanged, u.Username, nil)
	if u.ID == s.user.ID { // one's own sessions ended too: keep this browser in
		if _, err := w.startSession(rw, r, u); err != nil {
			return err
		}
	}
	redirectUser(rw, r, u.ID, "password")
	return nil
}

// adminUserState is POST /admin/users/{id}/disable and …/enable. An
// administrator cannot disable itself (it would lock itself out).
func (w *Web) adminUserState(rw http.ResponseWriter, r *http.Request, s *session) error {
	u, err := w.adminUserOf(r)
	if err != nil {
		return err
	}
	cmd := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if cmd == "disable" {
		if u.ID == s.user.ID {
			return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity, "You cannot disable yourself.", "")
		}
		err = w.cfg.Store.DisableUser(r.Context(), u.ID, w.cfg.Now())
	} else {
		err = w.cfg.Store.EnableUser(r.Context(), u.ID)
	}
	if err != nil {
		return err
	}
	w.auditAs(r, s, "user."+cmd, u.Username, nil)
	redirectUser(rw, r, u.ID, cmd)
	return nil
}

// adminDeleteUser is POST /admin/users/{id}/delete; the form must repeat
// the username (field confirm). An administrator cannot delete itself.
func (w *Web) adminDeleteUser(rw http.ResponseWriter, r *http.Request, s *session) error {
	u, err := w.adminUserOf(r)
	if err != nil {
		return err
	}
	switch {
	case u.ID == s.user.ID:
		return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity, "You cannot delete yourself.", "")
	case r.PostFormValue("confirm") != u.Username:
		return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity, "Type the username to confirm the deletion.", "")
	}
	toks, err := w.cfg.Store.ListAPITokens(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if err := w.cfg.Store.DeleteUser(r.Context(), u.ID); err != nil {
		return err
	}
	w.auditAs(r, s, "user.delete", u.Username, map[string]any{"api_tokens": len(toks)})
	http.Redirect(rw, r, "/admin/users", http.StatusSeeOther)
	return nil
}

// adminMemberships is POST /admin/users/{id}/memberships: for each site
// (field role_<site id>: none, admin or user; flag_<site id>: the
// permissions of a Site User, repeated), the user's membership there.
func (w *Web) adminMemberships(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	u, err := w.adminUserOf(r)
	if err != nil {
		return err
	}
	sites, err := w.cfg.Store.ListSites(ctx)
	if err != nil {
		return err
	}
	type change struct {
		site  store.Site
		role  auth.SiteRole
		flags auth.Flags
	}
	var changes []change
	for _, st := range sites {
		key := strconv.FormatInt(st.ID, 10)
		role := r.PostFormValue("role_" + key)
		var ps []auth.Permission
		for _, p := range r.PostForm["flag_"+key] {
			ps = append(ps, auth.Permission(p))
		}
		flags, err := auth.FlagsOf(ps...)
		if err != nil {
			return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity, fmt.Sprintf("Site %s: %v.", st.Name, err), "")
		}
		switch role {
		case "", "none":
			changes = append(changes, change{site: st})
		case string(auth.SiteAdmin), string(auth.SiteUser):
			changes = append(changes, change{site: st, role: auth.SiteRole(role), flags: flags})
		default:
			return w.adminUserPage(rw, r, s, u, http.StatusUnprocessableEntity,
				fmt.Sprintf("Site %s: unknown role %q.", st.Name, role), "")
		}
	}
	old, err := w.cfg.Store.ListMemberships(ctx, u.ID)
	if err != nil {
		return err
	}
	had := map[int64]store.Membership{}
	for _, m := range old {
		had[m.SiteID] = m
	}
	for _, c := range changes {
		m, was := had[c.site.ID]
		switch {
		case c.role == "" && was:
			if err := w.cfg.Store.DeleteMembership(ctx, u.ID, c.site.ID); err != nil {
				return err
			}
			w.auditAs(r, s, "membership.delete", u.Username+"@"+c.site.Name, nil)
		case c.role == "":
		case was && m.Role == c.role && (c.role == auth.SiteAdmin || m.Flags == c.flags):
		default:
			if err := w.cfg.Store.SetMembership(ctx, u.ID, c.site.ID, c.role, c.flags); err != nil {
				return err
			}
			detail := map[string]any{"role": c.role}
			if c.role == auth.SiteUser {
				detail["flags"] = c.flags.Permissions()
			}
			w.auditAs(r, s, "membership.set", u.Username+"@"+c.site.Name, detail)
		}
	}
	redirectUser(rw, r, u.ID, "memberships")
	return nil
}

type adminSitesData struct {
	Sites []adminSiteRow
	Error string
	Name  string
}

type adminSiteRow struct {
	Site    store.Site
	Devices int
	Members int
}

func (w *Web) adminSites(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.adminSitesPage(rw, r, s, http.StatusOK, adminSitesData{})
}

func (w *Web) adminSitesPage(rw http.ResponseWriter, r *http.Request, s *session, status int, d adminSitesData) error {
	ctx := r.Context()
	sites, err := w.cfg.Store.ListSites(ctx)
	if err != nil {
		return err
	}
	for _, st := range sites {
		c, err := w.cfg.Store.CountFleet(ctx, auth.Scope{Sites: []int64{st.ID}})
		if err != nil {
			return err
		}
		ms, err := w.cfg.Store.ListSiteMembers(ctx, st.ID)
		if err != nil {
			return err
		}
		d.Sites = append(d.Sites, adminSiteRow{Site: st, Devices: c.Total, Members: len(ms)})
	}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_sites", s, d)
	return nil
}

func (w *Web) adminCreateSite(rw http.ResponseWriter, r *http.Request, s *session) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if msg := auth.CheckName("site", name); msg != "" {
		return w.adminSitesPage(rw, r, s, http.StatusUnprocessableEntity, adminSitesData{Error: msg, Name: name})
	}
	st, err := w.cfg.Store.CreateSite(r.Context(), name)
	if errors.Is(err, store.ErrConflict) {
		return w.adminSitesPage(rw, r, s, http.StatusUnprocessableEntity,
			adminSitesData{Error: fmt.Sprintf("A site %q exists already.", name), Name: name})
	}
	if err != nil {
		return err
	}
	w.auditAs(r, s, "site.create", st.Name, nil)
	http.Redirect(rw, r, "/admin/sites", http.StatusSeeOther)
	return nil
}

// adminSiteOf returns the site of the path's {id}; 404 when none.
func (w *Web) adminSiteOf(ctx context.Context, r *http.Request) (store.Site, error) {
	id, err := pathID(r, "site")
	if err != nil {
		return store.Site{}, err
	}
	st, err := w.cfg.Store.GetSite(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return st, notFound(fmt.Sprintf("no such site: %d", id))
	}
	return st, err
}

func (w *Web) adminRenameSite(rw http.ResponseWriter, r *http.Request, s *session) error {
	st, err := w.adminSiteOf(r.Context(), r)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if msg := auth.CheckName("site", name); msg != "" {
		return w.adminSitesPage(rw, r, s, http.StatusUnprocessableEntity, adminSitesData{Error: msg})
	}
	if _, err := w.cfg.Store.RenameSite(r.Context(), st.ID, name); errors.Is(err, store.ErrConflict) {
		return w.adminSitesPage(rw, r, s, http.StatusUnprocessableEntity,
			adminSitesData{Error: fmt.Sprintf("A site %q exists already.", name)})
	} else if err != nil {
		return err
	}
	w.auditAs(r, s, "site.rename", st.Name, map[string]any{"name": name})
	http.Redirect(rw, r, "/admin/sites", http.StatusSeeOther)
	return nil
}

// adminDeleteSite is POST /admin/sites/{id}/delete; the form must repeat
// the site's name (field confirm). Its devices remain, in no site.
func (w *Web) adminDeleteSite(rw http.ResponseWriter, r *http.Request, s *session) error {
	st, err := w.adminSiteOf(r.Context(), r)
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") != st.Name {
		return w.adminSitesPage(rw, r, s, http.StatusUnprocessableEntity,
			adminSitesData{Error: fmt.Sprintf("Type the site's name %q to confirm its deletion.", st.Name)})
	}
	if err := w.cfg.Store.DeleteSite(r.Context(), st.ID); err != nil {
		return err
	}
	w.auditAs(r, s, "site.delete", st.Name, nil)
	http.Redirect(rw, r, "/admin/sites", http.StatusSeeOther)
	return nil
}

// accessRoutes registers the administration, the profile and the site
// switcher.
func (w *Web) accessRoutes() {
	w.adminRoutes()
	w.profileRoutes()
	w.switcherRoutes()
}
