package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

type tokenRow struct {
	Token store.APIToken
	User  string
}

type adminTokensData struct {
	Tokens []tokenRow
	Users  []store.User
	Error  string
	// New is a token just made: shown on this answer only.
	New      string
	NewUser  string
	User     string
	Name     string
	Days     string
	Scope    string // read or read-write
	Expiries []int
}

func (w *Web) adminTokens(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.adminTokensPage(rw, r, s, http.StatusOK, adminTokensData{})
}

func (w *Web) adminTokensPage(rw http.ResponseWriter, r *http.Request, s *session, status int, d adminTokensData) error {
	ctx := r.Context()
	users, err := w.cfg.Store.ListUsers(ctx)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	for _, u := range users {
		names[u.ID] = u.Username
	}
	toks, err := w.cfg.Store.ListAllAPITokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range toks {
		d.Tokens = append(d.Tokens, tokenRow{Token: t, User: names[t.UserID]})
	}
	d.Users, d.Expiries = users, []int{0, 7, 30, 90, 365}
	// The token is secret: the answer showing it is not to be kept.
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_tokens", s, d)
	return nil
}

// adminCreateToken is POST /admin/tokens: a token for a user (field user,
// its name), named name, of scope read or read-write (the default),
// expiring after days (0: never). The answer shows
// the token once.
func (w *Web) adminCreateToken(rw http.ResponseWriter, r *http.Request, s *session) error {
	d := adminTokensData{User: r.PostFormValue("user"), Name: strings.TrimSpace(r.PostFormValue("name")), Days: r.PostFormValue("days"),
		Scope: cmpOrString(r.PostFormValue("scope"), store.TokenReadWrite)}
	again := func(msg string) error {
		d.Error = msg
		return w.adminTokensPage(rw, r, s, http.StatusUnprocessableEntity, d)
	}
	u, err := w.cfg.Store.GetUserByName(r.Context(), d.User)
	if errors.Is(err, store.ErrNotFound) {
		return again("Choose the token's user.")
	}
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(cmpOrString(d.Days, "0"))
	if err != nil || days < 0 || days > 3650 {
		return again("The lifetime is a number of days from 0 (never expires) to 3650.")
	}
	if d.Name == "" || len(d.Name) > 64 {
		return again("Name the token (1 to 64 characters), e.g. what uses it.")
	}
	if d.Scope != store.TokenRead && d.Scope != store.TokenReadWrite {
		return again("The scope is read or read-write.")
	}
	var expires time.Time
	if days > 0 {
		expires = w.cfg.Now().Add(time.Duration(days) * 24 * time.Hour)
	}
	tok, hash, prefix := auth.NewToken()
	t, err := w.cfg.Store.CreateScopedAPIToken(r.Context(), u.ID, d.Name, hash, prefix, d.Scope, expires)
	if err != nil {
		return err
	}
	w.auditAs(r, s, "token.create", u.Username, map[string]any{"token": t.ID, "prefix": prefix, "name": d.Name, "days": days, "scope": d.Scope})
	return w.adminTokensPage(rw, r, s, http.StatusCreated, adminTokensData{New: tok, NewUser: u.Username})
}

func cmpOrString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// adminRevokeToken is POST /admin/tokens/{id}/revoke.
func (w *Web) adminRevokeToken(rw http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathID(r, "token")
	if err != nil {
		return err
	}
	t, err := w.cfg.Store.GetAPIToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(fmt.Sprintf("no such token: %d", id))
	}
	if err != nil {
		return err
	}
	if err := w.cfg.Store.DeleteAPIToken(r.Context(), id); err != nil {
		return err
	}
	who := ""
	if u, err := w.cfg.Store.GetUser(r.Context(), t.UserID); err == nil {
		who = u.Username
	}
	w.auditAs(r, s, "token.revoke", who, map[string]any{"token": t.ID, "prefix": t.Prefix})
	http.Redirect(rw, r, "/admin/tokens", http.StatusSeeOther)
	return nil
}

// AuditPageSize is how many entries one page of the audit log shows.
const AuditPageSize = 100

type adminAuditData struct {
	Entries      []store.AuditEntry
	Users        []store.User
	User, Action string
	Next         string // the next (older) page's URL; "" on the last
}

// adminAudit is GET /admin/audit: entries newest first, ?user= a user's
// name, ?action= one action, ?before= an entry id (keyset paging).
func (w *Web) adminAudit(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := adminAuditData{User: q.Get("user"), Action: q.Get("action")}
	f := store.AuditFilter{Action: d.Action, Limit: AuditPageSize + 1}
	if len(d.Action) > 64 {
		return badRequest("action: at most 64 bytes")
	}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id <= 0 {
			return badRequest("before: want an entry id")
		}
		f.BeforeID = id
	}
	users, err := w.cfg.Store.ListUsers(ctx)
	if err != nil {
		return err
	}
	d.Users = users
	if d.User != "" {
		u, err := w.cfg.Store.GetUserByName(ctx, d.User)
		if errors.Is(err, store.ErrNotFound) {
			return badRequest("user: no such user " + d.User)
		}
		if err != nil {
			return err
		}
		f.UserID = u.ID
	}
	es, err := w.cfg.Store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	if len(es) > AuditPageSize {
		es = es[:AuditPageSize]
		v := q
		v.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		d.Next = "/admin/audit?" + v.Encode()
	}
	d.Entries = es
	w.render(rw, r, http.StatusOK, "admin_audit", s, d)
	return nil
}
