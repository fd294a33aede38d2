package web

import (
	"net/http"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// ActionPasswordChanged is the audit action of a password change, the
// user's own on the profile page or an administrator's reset (the CLI's
// `user passwd` records the same).
const ActionPasswordChanged = "user.passwd"

// profileRoutes registers the profile page: every logged-in user's.
func (w *Web) profileRoutes() {
	w.route("GET /profile", auth.Public, w.profile)
	w.route("POST /profile/password", auth.Public, w.changePassword)
}

// membershipRow is one membership as the pages show it.
type membershipRow struct {
	Site  string
	Role  auth.SiteRole
	Perms []auth.Permission
}

type profileData struct {
	Admin       bool
	Memberships []membershipRow
	MinLen      int
	Error, Done string
}

// memberships returns the user's memberships with their sites' names.
func (w *Web) memberships(r *http.Request, userID int64) ([]membershipRow, error) {
	ms, err := w.cfg.Store.ListMemberships(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	var out []membershipRow
	for _, m := range ms {
		st, err := w.cfg.Store.GetSite(r.Context(), m.SiteID)
		if err != nil {
			return nil, err
		}
		out = append(out, membershipRow{Site: st.Name, Role: m.Role, Perms: m.Grant().Flags.Permissions()})
	}
	return out, nil
}

// profile is GET /profile: the user's memberships and the password form.
// It needs a session only (no site permission): anonymous requests go to
// the login form.
func (w *Web) profile(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.profilePage(rw, r, s, http.StatusOK, "", "")
}

func (w *Web) profilePage(rw http.ResponseWriter, r *http.Request, s *session, status int, msg, done string) error {
	if s == nil {
		http.Redirect(rw, r, "/login?next=%2Fprofile", http.StatusSeeOther)
		return nil
	}
	ms, err := w.memberships(r, s.user.ID)
	if err != nil {
		return err
	}
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "profile", s, profileData{Admin: s.subj.Admin, Memberships: ms,
		MinLen: auth.MinPasswordLen, Error: msg, Done: done})
	return nil
}

// changePassword is POST /profile/password: the current password, the
// new one twice. Success ends every session of the user (the store does
// so with the new password) and gives this browser a fresh one.
func (w *Web) changePassword(rw http.ResponseWriter, r *http.Request, s *session) error {
	if s == nil {
		http.Redirect(rw, r, "/login?next=%2Fprofile", http.StatusSeeOther)
		return nil
	}
	cur, pw, again := r.PostFormValue("current"), r.PostFormValue("new"), r.PostFormValue("again")
	switch {
	case auth.VerifyPassword(s.user.PasswordHash, cur) != nil:
		return w.profilePage(rw, r, s, http.StatusUnprocessableEntity, "The current password is wrong.", "")
	case len(pw) < auth.MinPasswordLen:
		return w.profilePage(rw, r, s, http.StatusUnprocessableEntity, "The new password is too short.", "")
	case pw != again:
		return w.profilePage(rw, r, s, http.StatusUnprocessableEntity, "The new passwords differ.", "")
	}
	hash, err := auth.HashPassword(pw, auth.DefaultParams)
	if err != nil {
		return badRequest(err.Error())
	}
	ctx := r.Context()
	if err := w.cfg.Store.SetPassword(ctx, s.user.ID, hash); err != nil {
		return err
	}
	w.audit(ctx, store.AuditEntry{UserID: s.user.ID, Actor: s.user.Username, Action: ActionPasswordChanged,
		Target: s.user.Username, RemoteAddr: r.RemoteAddr}, map[string]any{"surface": "dashboard"})
	fresh, err := w.startSession(rw, r, s.user)
	if err != nil {
		return err
	}
	s.user.PasswordHash = hash
	return w.profilePage(rw, r, fresh, http.StatusOK, "", "Password changed. Your other sessions have ended.")
}

// startSession gives the browser a new session of u (its cookie set on
// rw) and returns it.
func (w *Web) startSession(rw http.ResponseWriter, r *http.Request, u store.User) (*session, error) {
	now := w.cfg.Now()
	tok := newToken()
	ss := store.Session{ID: hashToken(tok), UserID: u.ID, CSRFToken: newToken(), CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(w.cfg.AbsoluteTimeout)}
	if err := w.cfg.Store.CreateSession(r.Context(), ss); err != nil {
		return nil, err
	}
	w.setCookie(rw, r, SessionCookie, tok, int(w.cfg.AbsoluteTimeout/time.Second))
	subj, err := w.cfg.Store.Subject(r.Context(), u)
	if err != nil {
		return nil, err
	}
	return &session{Session: ss, user: u, subj: subj, view: viewOf(r, subj)}, nil
}
