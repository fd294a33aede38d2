package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

const tokenUsage = "token create --user NAME [--name LABEL] [--scope read|read-write] [--expires DURATION] | token list [--user NAME] | token revoke ID"

func runToken(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, tokenUsage)
	}
	switch args[0] {
	case "create":
		return tokenCreate(ctx, iox, args[1:])
	case "list":
		return tokenList(ctx, iox, args[1:])
	case "revoke":
		return tokenRevoke(ctx, iox, args[1:])
	}
	return fmt.Errorf("%w: unknown token command %q: %s", errUsage, args[0], tokenUsage)
}

// lifetime is the --expires flag: a positive duration; unset (zero), the
// token never expires.
type lifetime time.Duration

func (l *lifetime) String() string {
	if *l == 0 {
		return ""
	}
	return time.Duration(*l).String()
}

func (l *lifetime) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 720h or 90m")
	}
	if d <= 0 {
		return errors.New("must be positive; leave --expires out for a token that never expires")
	}
	*l = lifetime(d)
	return nil
}

func tokenCreate(ctx context.Context, iox IO, args []string) error {
	var user, label, scope string
	var expires lifetime
	cfg, pos, err := loadConfig(iox, "token create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "user the token acts as (required)")
		fs.StringVar(&label, "name", "cli", "label shown in token lists")
		fs.Var(&expires, "expires", "lifetime, e.g. 720h; without it the token never expires")
		fs.StringVar(&scope, "scope", store.TokenReadWrite, "read (GET and HEAD requests only) or read-write (whatever the user may do)")
	})
	if err != nil {
		return err
	}
	if user == "" || len(pos) > 0 || scope != store.TokenRead && scope != store.TokenReadWrite {
		return fmt.Errorf("%w: token create --user NAME [--name LABEL] [--scope read|read-write] [--expires DURATION]", errUsage)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := userByName(ctx, st, user)
	if err != nil {
		return err
	}
	token, hash, prefix := auth.NewToken()
	var exp time.Time
	if expires > 0 {
		exp = time.Now().Add(time.Duration(expires))
	}
	tok, err := st.CreateScopedAPIToken(ctx, u.ID, label, hash, prefix, scope, exp)
	if err != nil {
		return err
	}
	detail := map[string]any{"token_id": tok.ID, "name": tok.Name, "scope": tok.Scope}
	if !exp.IsZero() {
		detail["expires_at"] = tok.ExpiresAt.UTC()
	}
	if err := audit(ctx, st, "token.create", u.Username, detail); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stderr, "API token %q (%s) for %s (shown once; keep it secret):\n", label, tok.Scope, u.Username)
	fmt.Fprintln(iox.Stdout, token)
	return nil
}

func tokenList(ctx context.Context, iox IO, args []string) error {
	var user string
	cfg, pos, err := loadConfig(iox, "token list", args, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "only the tokens of this user")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: token list [--user NAME]", errUsage)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := st.ListUsers(ctx)
	if err != nil {
		return err
	}
	names := make(map[int64]string, len(users))
	for _, u := range users {
		names[u.ID] = u.Username
	}
	var toks []store.APIToken
	if user != "" {
		u, err := userByName(ctx, st, user)
		if err != nil {
			return err
		}
		toks, err = st.ListAPITokens(ctx, u.ID)
		if err != nil {
			return err
		}
	} else if toks, err = st.ListAllAPITokens(ctx); err != nil {
		return err
	}
	now := time.Now()
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tNAME\tPREFIX\tSCOPE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range toks {
		exp := stamp(t.ExpiresAt)
		if t.Expired(now) {
			exp += " (expired)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, names[t.UserID], t.Name, t.Prefix+"…", t.Scope,
			stamp(t.CreatedAt), exp, stamp(t.LastUsedAt))
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, iox IO, args []string) error {
	cfg, pos, err := loadConfig(iox, "token revoke", args, nil)
	if err != nil {
		return err
	}
	var id int64
	if len(pos) == 1 {
		id, err = strconv.ParseInt(pos[0], 10, 64)
	}
	if len(pos) != 1 || err != nil || id <= 0 {
		return fmt.Errorf("%w: token revoke ID (the ID that token list shows)", errUsage)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := st.GetAPIToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no API token %d", id)
	}
	if err != nil {
		return err
	}
	owner := ""
	if u, err := st.GetUser(ctx, tok.UserID); err == nil {
		owner = u.Username
	}
	if err := st.DeleteAPIToken(ctx, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no API token %d", id)
	} else if err != nil {
		return err
	}
	if err := audit(ctx, st, "token.revoke", owner, map[string]any{"token_id": id, "name": tok.Name}); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "revoked API token %d (%q of %s); it is refused from now on\n", id, tok.Name, owner)
	return nil
}
