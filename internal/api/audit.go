package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	ID         int64           `json:"id"`
	Time       time.Time       `json:"time"`
	UserID     int64           `json:"user_id,omitempty" doc:"Absent: not a user (a command, the system)"`
	Actor      string          `json:"actor" doc:"Who, by name (kept when the user is deleted)"`
	Action     string          `json:"action" doc:"e.g. user.create, token.revoke, access.denied"`
	Target     string          `json:"target"`
	Detail     json.RawMessage `json:"detail,omitempty"`
	RemoteAddr string          `json:"remote_addr,omitempty"`
}

type listAuditInput struct {
	User   string    `query:"user" maxLength:"64" doc:"Only the entries of this user (name)"`
	Action string    `query:"action" maxLength:"64" doc:"Only the entries of this action"`
	Since  time.Time `query:"since" doc:"Only entries at or after this time (RFC 3339)"`
	Until  time.Time `query:"until" doc:"Only entries before this time (RFC 3339)"`
	Before int64     `query:"before" minimum:"0" doc:"Entries older than this one (next_before of the previous page)"`
	Limit  int       `query:"limit" minimum:"0" maximum:"500" doc:"At most this many; 0 means 100"`
}

type listAuditOutput struct {
	Link string `header:"Link" doc:"rel=next: the next page, on every page but the last"`
	Body struct {
		Items      []AuditEntry `json:"items" doc:"Newest first"`
		NextBefore int64        `json:"next_before,omitempty" doc:"Pass as before for the next page; absent on the last"`
		Next       string       `json:"next,omitempty" doc:"The next page's URL (path and query); absent on the last"`
	}
}

func (a *API) auditRoutes(h huma.API) {
	register(h, auth.ManageUsers, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: Prefix + "/audit",
		Summary: "List the audit log, newest first", Tags: []string{"audit"},
	}, a.listAudit)
}

func (a *API) listAudit(ctx context.Context, in *listAuditInput) (*listAuditOutput, error) {
	limit := in.Limit
	if limit == 0 {
		limit = 100
	}
	f := store.AuditFilter{Action: in.Action, BeforeID: in.Before, Since: in.Since, Until: in.Until, Limit: limit + 1}
	if in.User != "" {
		u, err := a.opts.Store.GetUserByName(ctx, in.User)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fieldError("query.user", "no such user: "+in.User, in.User)
		}
		if err != nil {
			return nil, a.fail(ctx, err)
		}
		f.UserID = u.ID
	}
	es, err := a.opts.Store.ListAudit(ctx, f)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listAuditOutput{}
	if len(es) > limit {
		es = es[:limit]
		out.Body.NextBefore = es[len(es)-1].ID
		q := url.Values{}
		for k, v := range map[string]string{"user": in.User, "action": in.Action} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if !in.Since.IsZero() {
			q.Set("since", in.Since.UTC().Format(time.RFC3339Nano))
		}
		if !in.Until.IsZero() {
			q.Set("until", in.Until.UTC().Format(time.RFC3339Nano))
		}
		if in.Limit != 0 {
			q.Set("limit", strconv.Itoa(in.Limit))
		}
		q.Set("before", strconv.FormatInt(out.Body.NextBefore, 10))
		out.Body.Next = Prefix + "/audit?" + q.Encode()
		out.Link = "<" + out.Body.Next + `>; rel="next"`
	}
	out.Body.Items = make([]AuditEntry, 0, len(es))
	for _, e := range es {
		out.Body.Items = append(out.Body.Items, AuditEntry{ID: e.ID, Time: e.Time.UTC(), UserID: e.UserID, Actor: e.Actor,
			Action: e.Action, Target: e.Target, Detail: e.Detail, RemoteAddr: e.RemoteAddr})
	}
	return out, nil
}
