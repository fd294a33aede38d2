package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

const userUsage = "user create NAME [--admin] [--password-stdin] | user passwd NAME [--password-stdin] | user list" +
	" | user disable NAME | user enable NAME | user delete NAME" +
	" | user grant NAME SITE --role admin|user [--flags view_overview,view_data,...] | user revoke NAME SITE"

func runUser(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, userUsage)
	}
	var admin, fromStdin bool
	var role, flags string
	extra := func(fs *flag.FlagSet) {
		if args[0] == "grant" {
			fs.StringVar(&role, "role", "", "the role in the site: admin (Site Admin) or user (Site User)")
			fs.StringVar(&flags, "flags", "", "a Site User's permissions, comma-separated: "+fmt.Sprint(auth.SitePermissions()))
		}
		if args[0] == "create" {
			fs.BoolVar(&admin, "admin", false, "make the user an administrator")
		}
		if args[0] == "create" || args[0] == "passwd" {
			fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
		}
	}
	cfg, pos, err := loadConfig(iox, "user "+args[0], args[1:], extra)
	if err != nil {
		return err
	}
	wantArgs := map[string]int{"create": 1, "passwd": 1, "list": 0, "disable": 1, "enable": 1, "delete": 1,
		"grant": 2, "revoke": 2}
	n, known := wantArgs[args[0]]
	if !known {
		return fmt.Errorf("%w: unknown user command %q: %s", errUsage, args[0], userUsage)
	}
	if len(pos) != n {
		return fmt.Errorf("%w: user %s takes %d argument(s), got %d", errUsage, args[0], n, len(pos))
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()

	switch args[0] {
	case "list":
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tADMIN\tCREATED\tLAST LOGIN\tDISABLED")
		for _, u := range users {
			last, disabled := "never", "no"
			if !u.LastLoginAt.IsZero() {
				last = u.LastLoginAt.UTC().Format(time.RFC3339)
			}
			if u.Disabled() {
				disabled = u.DisabledAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\n", u.Username, u.IsAdmin, u.CreatedAt.UTC().Format(time.RFC3339), last, disabled)
		}
		return tw.Flush()
	case "create":
		name := pos[0]
		if err := checkUsername(name); err != nil {
			return err
		}
		hash, err := askPassword(iox, fromStdin)
		if err != nil {
			return err
		}
		if _, err := st.CreateUser(ctx, name, hash, admin); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("user %q already exists", name)
			}
			return err
		}
		if err := audit(ctx, st, "user.create", name, map[string]any{"admin": admin}); err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "created user %q (admin: %v)\n", name, admin)
	case "passwd":
		u, err := userByName(ctx, st, pos[0])
		if err != nil {
			return err
		}
		hash, err := askPassword(iox, fromStdin)
		if err != nil {
			return err
		}
		if err := st.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		if err := audit(ctx, st, "user.passwd", u.Username, nil); err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "password of %q changed\n", u.Username)
	case "disable", "enable", "delete":
		return changeUser(ctx, iox, st, args[0], pos[0])
	case "grant":
		return userGrant(ctx, iox, st, pos[0], pos[1], role, flags)
	case "revoke":
		return userRevoke(ctx, iox, st, pos[0], pos[1])
	}
	return nil
}

// changeUser disables, enables or deletes the user name. Disabling takes
// effect on the user's next request: every request checks the user.
func changeUser(ctx context.Context, iox IO, st *store.Store, cmd, name string) error {
	u, err := userByName(ctx, st, name)
	if err != nil {
		return err
	}
	var detail map[string]any
	switch cmd {
	case "disable":
		if u.Disabled() {
			fmt.Fprintf(iox.Stdout, "user %q is already disabled (since %s)\n", u.Username, u.DisabledAt.UTC().Format(time.RFC3339))
			return nil
		}
		err = st.DisableUser(ctx, u.ID, time.Now())
	case "enable":
		if !u.Disabled() {
			fmt.Fprintf(iox.Stdout, "user %q is not disabled\n", u.Username)
			return nil
		}
		err = st.EnableUser(ctx, u.ID)
	case "delete":
		var toks []store.APIToken
		if toks, err = st.ListAPITokens(ctx, u.ID); err != nil {
			return err
		}
		detail = map[string]any{"api_tokens": len(toks)}
		err = st.DeleteUser(ctx, u.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", name)
	}
	if err != nil {
		return err
	}
	if err := audit(ctx, st, "user."+cmd, u.Username, detail); err != nil {
		return err
	}
	switch cmd {
	case "disable":
		fmt.Fprintf(iox.Stdout, "disabled user %q: its API tokens are refused from now on\n", u.Username)
	case "enable":
		fmt.Fprintf(iox.Stdout, "enabled user %q\n", u.Username)
	case "delete":
		fmt.Fprintf(iox.Stdout, "deleted user %q and its %d API token(s); its audit entries keep its name\n",
			u.Username, detail["api_tokens"])
	}
	return nil
}

// userByName returns the user name, or an error saying there is none.
func userByName(ctx context.Context, st *store.Store, name string) (store.User, error) {
	u, err := st.GetUserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return u, fmt.Errorf("no user %q", name)
	}
	return u, err
}

// audit appends an entry for a change made on the command line: the actor
// is "cli", as for credential changes.
func audit(ctx context.Context, st *store.Store, action, target string, detail map[string]any) error {
	var d json.RawMessage
	if detail != nil {
		var err error
		if d, err = json.Marshal(detail); err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
	}
	if _, err := st.AppendAudit(ctx, store.AuditEntry{Actor: "cli", Action: action, Target: target, Detail: d}); err != nil {
		return fmt.Errorf("the change is made, but its audit entry was not written: %w", err)
	}
	return nil
}

func checkUsername(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return errors.New("user name must be 1 to 64 characters")
	}
	for _, r := range name {
		ok := r == '_' || r == '-' || r == '.' || r == '@' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("user name %q: use letters, digits and _ - . @ only", name)
		}
	}
	return nil
}

// askPassword reads a password (first stdin line with fromStdin, otherwise
// twice from the terminal without echo) and returns its argon2id hash.
func askPassword(iox IO, fromStdin bool) (string, error) {
	var pw string
	switch {
	case fromStdin:
		var err error
		if pw, err = readLine(iox.Stdin); err != nil {
			return "", fmt.Errorf("reading password from stdin: %w", err)
		}
	case iox.IsTerminal != nil && iox.IsTerminal():
		fmt.Fprint(iox.Stderr, "Password: ")
		p1, err := iox.ReadPassword()
		if err != nil {
			return "", err
		}
		fmt.Fprint(iox.Stderr, "Repeat password: ")
		p2, err := iox.ReadPassword()
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			return "", errors.New("passwords do not match")
		}
		pw = p1
	default:
		return "", errors.New("stdin is not a terminal: pass the password with --password-stdin")
	}
	return auth.HashPassword(pw, auth.DefaultParams)
}
