package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// Token is an API token as the API shows it: the token itself only once,
// in the answer that created it (only its hash is stored).
type Token struct {
	ID         int64      `json:"id"`
	User       string     `json:"user" doc:"The user the token acts as"`
	UserID     int64      `json:"user_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix" doc:"The token's first characters, to tell tokens apart"`
	Scope      string     `json:"scope" enum:"read,read-write" doc:"read: GET and HEAD requests only; read-write: whatever the user may do"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Absent: never used (recorded about once a minute)"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty" doc:"Absent: never expires"`
	Token      string     `json:"token,omitempty" doc:"The bearer token: in the answer that created it only"`
}

func toToken(t store.APIToken, user string) Token {
	return Token{ID: t.ID, User: user, UserID: t.UserID, Name: t.Name, Prefix: t.Prefix, Scope: t.Scope,
		CreatedAt: t.CreatedAt.UTC(), LastUsedAt: optTime(t.LastUsedAt), ExpiresAt: optTime(t.ExpiresAt)}
}

type listTokensInput struct {
	User string `query:"user" maxLength:"64" doc:"Global administrators: the tokens of this user, or of every user with *; absent: the caller's own"`
}

type listTokensOutput struct {
	Body struct {
		Items []Token `json:"items" doc:"Newest first"`
	}
}

type createTokenInput struct {
	Body struct {
		Name      string     `json:"name" minLength:"1" maxLength:"64" doc:"A label shown in token lists"`
		Scope     string     `json:"scope,omitempty" enum:"read,read-write" doc:"read or read-write (default)"`
		ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"When the token stops working; absent: never"`
		User      string     `json:"user,omitempty" maxLength:"64" doc:"Global administrators: make the token for this user; absent: the caller"`
	}
}

type tokenOutput struct {
	Body Token
}

type tokenIDInput struct {
	ID int64 `path:"id" doc:"The token's id"`
}

func (a *API) tokenRoutes(h huma.API) {
	tags := []string{"tokens"}
	register(h, auth.OwnTokens, huma.Operation{
		OperationID: "list-tokens", Method: http.MethodGet, Path: Prefix + "/tokens",
		Summary: "List the caller's API tokens (global administrators: any user's)", Tags: tags,
	}, a.listTokens)
	register(h, auth.OwnTokens, huma.Operation{
		OperationID: "create-token", Method: http.MethodPost, Path: Prefix + "/tokens",
		Summary: "Make an API token; the answer holds it, once", Tags: tags, DefaultStatus: http.StatusCreated,
		Description: "A read-only token cannot make tokens (it may not POST).",
	}, a.createToken)
	register(h, auth.OwnTokens, huma.Operation{
		OperationID: "delete-token", Method: http.MethodDelete, Path: Prefix + "/tokens/{id}",
		Summary: "Revoke an API token (one's own; global administrators: any)", Tags: tags, DefaultStatus: http.StatusNoContent,
	}, a.deleteToken)
}

// userNames maps user ids to names.
func (a *API) userNames(ctx context.Context) (map[int64]string, error) {
	us, err := a.opts.Store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(us))
	for _, u := range us {
		names[u.ID] = u.Username
	}
	return names, nil
}

// tokenUser is the user a token request names: the caller when name is
// empty or its own; another only for global administrators (403), and
// it must exist (a field error at location).
func (a *API) tokenUser(ctx context.Context, name, location string) (store.User, error) {
	p := userFrom(ctx)
	if name == "" || name == p.User.Username {
		return p.User, nil
	}
	if !p.Subject.Admin {
		return store.User{}, problem.New(http.StatusForbidden, "forbidden", "only global administrators may manage other users' tokens")
	}
	u, err := a.opts.Store.GetUserByName(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.User{}, fieldError(location, "no such user: "+name, name)
		}
		return store.User{}, a.fail(ctx, err)
	}
	return u, nil
}

func (a *API) listTokens(ctx context.Context, in *listTokensInput) (*listTokensOutput, error) {
	var toks []store.APIToken
	var err error
	if in.User == "*" {
		if !userFrom(ctx).Subject.Admin {
			return nil, problem.New(http.StatusForbidden, "forbidden", "only global administrators may list every user's tokens")
		}
		toks, err = a.opts.Store.ListAllAPITokens(ctx)
	} else {
		var u store.User
		if u, err = a.tokenUser(ctx, in.User, "query.user"); err != nil {
			return nil, err
		}
		toks, err = a.opts.Store.ListAPITokens(ctx, u.ID)
	}
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	names, err := a.userNames(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listTokensOutput{}
	out.Body.Items = make([]Token, 0, len(toks))
	for _, t := range toks {
		out.Body.Items = append(out.Body.Items, toToken(t, names[t.UserID]))
	}
	return out, nil
}

func (a *API) createToken(ctx context.Context, in *createTokenInput) (*tokenOutput, error) {
	b := in.Body
	u, err := a.tokenUser(ctx, b.User, "body.user")
	if err != nil {
		return nil, err
	}
	scope := b.Scope
	if scope == "" {
		scope = store.TokenReadWrite
	}
	var expires time.Time
	if b.ExpiresAt != nil {
		if !b.ExpiresAt.After(a.opts.Now()) {
			return nil, fieldError("body.expires_at", "expires_at must be in the future", b.ExpiresAt)
		}
		expires = *b.ExpiresAt
	}
	token, hash, prefix := auth.NewToken()
	t, err := a.opts.Store.CreateScopedAPIToken(ctx, u.ID, b.Name, hash, prefix, scope, expires)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	detail := map[string]any{"token": t.ID, "prefix": prefix, "name": b.Name, "scope": scope}
	if !expires.IsZero() {
		detail["expires_at"] = expires.UTC()
	}
	a.audit(ctx, "token.create", u.Username, detail)
	out := &tokenOutput{Body: toToken(t, u.Username)}
	out.Body.Token = token
	return out, nil
}

func (a *API) deleteToken(ctx context.Context, in *tokenIDInput) (*struct{}, error) {
	p := userFrom(ctx)
	t, err := a.opts.Store.GetAPIToken(ctx, in.ID)
	if err == nil && t.UserID != p.User.ID && !p.Subject.Admin {
		err = store.ErrNotFound // another user's token is absent
	}
	if err != nil {
		return nil, a.notFoundOr(ctx, err, "token", in.ID)
	}
	if err := a.opts.Store.DeleteAPIToken(ctx, t.ID); err != nil {
		return nil, a.notFoundOr(ctx, err, "token", in.ID)
	}
	owner := p.User.Username
	if t.UserID != p.User.ID {
		if u, err := a.opts.Store.GetUser(ctx, t.UserID); err == nil {
			owner = u.Username
		}
	}
	a.audit(ctx, "token.revoke", owner, map[string]any{"token": t.ID, "prefix": t.Prefix, "name": t.Name})
	return nil, nil
}
