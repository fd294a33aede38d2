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

// User is an operator account as the API shows it (never its password).
type User struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	Admin       bool       `json:"admin" doc:"A global administrator"`
	Disabled    bool       `json:"disabled" doc:"A disabled user may not log in and its API tokens are refused"`
	DisabledAt  *time.Time `json:"disabled_at,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty" doc:"Absent: never logged in to the dashboard"`
}

func toUser(u store.User) User {
	return User{ID: u.ID, Username: u.Username, Admin: u.IsAdmin, Disabled: u.Disabled(), DisabledAt: optTime(u.DisabledAt),
		CreatedAt: u.CreatedAt.UTC(), LastLoginAt: optTime(u.LastLoginAt)}
}

// Membership is a user's role in one site.
type Membership struct {
	SiteID int64    `json:"site_id"`
	Site   string   `json:"site" doc:"The site's name"`
	Role   string   `json:"role" enum:"admin,user" doc:"admin: every site permission in the site; user: those of flags"`
	Flags  []string `json:"flags" doc:"The site permissions the membership grants"`
}

type userOutput struct{ Body User }

type listUsersOutput struct {
	Body struct {
		Items []User `json:"items" doc:"Ordered by name"`
	}
}

type createUserInput struct {
	Body struct {
		Username string `json:"username" doc:"Letters, digits and _ - . @, 1 to 64"`
		Password string `json:"password" doc:"At least 8 characters"`
		Admin    bool   `json:"admin,omitempty" doc:"Make a global administrator"`
	}
}

type userIDInput struct {
	ID int64 `path:"id" doc:"The user's id"`
}

type updateUserInput struct {
	ID   int64 `path:"id" doc:"The user's id"`
	Body struct {
		Disabled *bool   `json:"disabled,omitempty" doc:"Disable (true) or enable (false) the user; disabling ends its sessions"`
		Admin    *bool   `json:"admin,omitempty" doc:"Grant or revoke global administration"`
		Password *string `json:"password,omitempty" doc:"A new password (at least 8 characters); the user's sessions end"`
	}
}

type listMembershipsOutput struct {
	Body struct {
		Items []Membership `json:"items" doc:"Ordered by site id"`
	}
}

type membershipInput struct {
	ID   int64 `path:"id" doc:"The user's id"`
	Site int64 `path:"site" doc:"The site's id"`
}

type setMembershipInput struct {
	ID   int64 `path:"id" doc:"The user's id"`
	Site int64 `path:"site" doc:"The site's id"`
	Body struct {
		Role  string   `json:"role" enum:"admin,user" doc:"admin: every site permission; user: those of flags"`
		Flags []string `json:"flags,omitempty" doc:"A Site User's permissions: view_overview, view_data, view_firmware, manage_firmware, perform_operations, manage_devices"`
	}
}

type membershipOutput struct{ Body Membership }

func (a *API) userRoutes(h huma.API) {
	tags := []string{"users"}
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "list-users", Method: http.MethodGet, Path: Prefix + "/users", Summary: "List users", Tags: tags,
	}, a.listUsers)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "create-user", Method: http.MethodPost, Path: Prefix + "/users", Summary: "Add a user",
		Tags: tags, DefaultStatus: http.StatusCreated,
	}, a.createUser)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "get-user", Method: http.MethodGet, Path: Prefix + "/users/{id}", Summary: "Get a user", Tags: tags,
	}, a.getUser)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "update-user", Method: http.MethodPatch, Path: Prefix + "/users/{id}",
		Summary: "Disable or enable a user, grant or revoke global administration, reset its password", Tags: tags,
	}, a.updateUser)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "delete-user", Method: http.MethodDelete, Path: Prefix + "/users/{id}",
		Summary: "Delete a user with its memberships and API tokens", Tags: tags, DefaultStatus: http.StatusNoContent,
	}, a.deleteUser)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "list-memberships", Method: http.MethodGet, Path: Prefix + "/users/{id}/memberships",
		Summary: "List a user's site memberships", Tags: tags,
	}, a.listMemberships)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "set-membership", Method: http.MethodPut, Path: Prefix + "/users/{id}/memberships/{site}",
		Summary: "Give a user a role in a site, replacing the one it had", Tags: tags,
	}, a.setMembership)
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "delete-membership", Method: http.MethodDelete, Path: Prefix + "/users/{id}/memberships/{site}",
		Summary: "Remove a user from a site", Tags: tags, DefaultStatus: http.StatusNoContent,
	}, a.deleteMembership)
}

func (a *API) userOf(ctx context.Context, id int64) (store.User, error) {
	u, err := a.opts.Store.GetUser(ctx, id)
	if err != nil {
		return u, a.notFoundOr(ctx, err, "user", id)
	}
	return u, nil
}

func (a *API) listUsers(ctx context.Context, _ *struct{}) (*listUsersOutput, error) {
	us, err := a.opts.Store.ListUsers(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listUsersOutput{}
	out.Body.Items = make([]User, 0, len(us))
	for _, u := range us {
		out.Body.Items = append(out.Body.Items, toUser(u))
	}
	return out, nil
}

// passwordHash hashes a new password, or is the field error at location
// of one too short.
func passwordHash(pw, location string) (string, error) {
	if len(pw) < auth.MinPasswordLen {
		return "", fieldError(location, fmt.Sprintf("the password must be at least %d characters", auth.MinPasswordLen), nil)
	}
	return auth.HashPassword(pw, auth.DefaultParams)
}

func (a *API) createUser(ctx context.Context, in *createUserInput) (*userOutput, error) {
	b := in.Body
	if msg := auth.CheckName("user", b.Username); msg != "" {
		return nil, fieldError("body.username", msg, b.Username)
	}
	hash, err := passwordHash(b.Password, "body.password")
	if err != nil {
		return nil, err
	}
	u, err := a.opts.Store.CreateUser(ctx, b.Username, hash, b.Admin)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	a.audit(ctx, "user.create", u.Username, map[string]any{"admin": b.Admin})
	return &userOutput{Body: toUser(u)}, nil
}

func (a *API) getUser(ctx context.Context, in *userIDInput) (*userOutput, error) {
	u, err := a.userOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &userOutput{Body: toUser(u)}, nil
}

// updateUser applies the changes asked, each audited as the dashboard
// does: user.disable, user.enable, user.admin, user.passwd. A global
// administrator cannot disable itself or revoke its own administration
// (it would lock itself out).
func (a *API) updateUser(ctx context.Context, in *updateUserInput) (*userOutput, error) {
	u, err := a.userOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	b, self := in.Body, u.ID == userFrom(ctx).User.ID
	switch {
	case self && b.Disabled != nil && *b.Disabled:
		return nil, fieldError("body.disabled", "you cannot disable yourself", true)
	case self && b.Admin != nil && !*b.Admin:
		return nil, fieldError("body.admin", "you cannot revoke your own administration", false)
	}
	var hash string
	if b.Password != nil {
		if hash, err = passwordHash(*b.Password, "body.password"); err != nil {
			return nil, err
		}
	}
	if b.Disabled != nil && *b.Disabled != u.Disabled() {
		cmd := "enable"
		if *b.Disabled {
			cmd, err = "disable", a.opts.Store.DisableUser(ctx, u.ID, a.opts.Now())
		} else {
			err = a.opts.Store.EnableUser(ctx, u.ID)
		}
		if err != nil {
			return nil, a.notFoundOr(ctx, err, "user", in.ID)
		}
		a.audit(ctx, "user."+cmd, u.Username, nil)
	}
	if b.Admin != nil && *b.Admin != u.IsAdmin {
		if err := a.opts.Store.SetAdmin(ctx, u.ID, *b.Admin); err != nil {
			return nil, a.notFoundOr(ctx, err, "user", in.ID)
		}
		a.audit(ctx, "user.admin", u.Username, map[string]any{"admin": *b.Admin})
	}
	if hash != "" {
		if err := a.opts.Store.SetPassword(ctx, u.ID, hash); err != nil {
			return nil, a.notFoundOr(ctx, err, "user", in.ID)
		}
		a.audit(ctx, "user.passwd", u.Username, nil)
	}
	return a.getUser(ctx, &userIDInput{ID: u.ID})
}

func (a *API) deleteUser(ctx context.Context, in *userIDInput) (*struct{}, error) {
	u, err := a.userOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	if u.ID == userFrom(ctx).User.ID {
		return nil, problem.New(http.StatusConflict, "conflict", "you cannot delete yourself")
	}
	toks, err := a.opts.Store.ListAPITokens(ctx, u.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	if err := a.opts.Store.DeleteUser(ctx, u.ID); err != nil {
		return nil, a.notFoundOr(ctx, err, "user", in.ID)
	}
	a.audit(ctx, "user.delete", u.Username, map[string]any{"api_tokens": len(toks)})
	return nil, nil
}

func toMembership(m store.Membership, site string) Membership {
	flags := []string{}
	for _, p := range m.Grant().Flags.Permissions() {
		flags = append(flags, string(p))
	}
	if m.Role == auth.SiteAdmin {
		flags = flags[:0]
		for _, p := range auth.SitePermissions() {
			flags = append(flags, string(p))
		}
	}
	return Membership{SiteID: m.SiteID, Site: site, Role: string(m.Role), Flags: flags}
}

func (a *API) listMemberships(ctx context.Context, in *userIDInput) (*listMembershipsOutput, error) {
	u, err := a.userOf(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	ms, err := a.opts.Store.ListMemberships(ctx, u.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	sites, err := a.opts.Store.ListSites(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	names := map[int64]string{}
	for _, st := range sites {
		names[st.ID] = st.Name
	}
	out := &listMembershipsOutput{}
	out.Body.Items = make([]Membership, 0, len(ms))
	for _, m := range ms {
		out.Body.Items = append(out.Body.Items, toMembership(m, names[m.SiteID]))
	}
	return out, nil
}

// membershipOf returns the user and the site a membership route names
// (404 for either missing).
func (a *API) membershipOf(ctx context.Context, userID, siteID int64) (store.User, store.Site, error) {
	u, err := a.userOf(ctx, userID)
	if err != nil {
		return u, store.Site{}, err
	}
	st, err := a.opts.Store.GetSite(ctx, siteID)
	if err != nil {
		return u, st, a.notFoundOr(ctx, err, "site", siteID)
	}
	return u, st, nil
}

func (a *API) setMembership(ctx context.Context, in *setMembershipInput) (*membershipOutput, error) {
	u, st, err := a.membershipOf(ctx, in.ID, in.Site)
	if err != nil {
		return nil, err
	}
	ps := make([]auth.Permission, 0, len(in.Body.Flags))
	for _, f := range in.Body.Flags {
		ps = append(ps, auth.Permission(f))
	}
	flags, err := auth.FlagsOf(ps...)
	if err != nil {
		return nil, fieldError("body.flags", fmt.Sprintf("flags: each one of %v", auth.SitePermissions()), in.Body.Flags)
	}
	role := auth.SiteRole(in.Body.Role)
	if err := a.opts.Store.SetMembership(ctx, u.ID, st.ID, role, flags); err != nil {
		return nil, a.fail(ctx, err)
	}
	detail := map[string]any{"role": role}
	if role == auth.SiteUser {
		detail["flags"] = flags.Permissions()
	}
	a.audit(ctx, "membership.set", u.Username+"@"+st.Name, detail)
	m, err := a.opts.Store.GetMembership(ctx, u.ID, st.ID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &membershipOutput{Body: toMembership(m, st.Name)}, nil
}

func (a *API) deleteMembership(ctx context.Context, in *membershipInput) (*struct{}, error) {
	u, st, err := a.membershipOf(ctx, in.ID, in.Site)
	if err != nil {
		return nil, err
	}
	if err := a.opts.Store.DeleteMembership(ctx, u.ID, st.ID); err != nil {
		return nil, a.notFoundOr(ctx, err, "membership of user "+u.Username+" in site", st.Name)
	}
	a.audit(ctx, "membership.delete", u.Username+"@"+st.Name, nil)
	return nil, nil
}
