package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

func runUser(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: user create NAME [--admin] [--password-stdin] | user passwd NAME [--password-stdin] | user list", errUsage)
	}
	var admin, fromStdin bool
	extra := func(fs *flag.FlagSet) {
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
	wantArgs := map[string]int{"create": 1, "passwd": 1, "list": 0}
	n, known := wantArgs[args[0]]
	if !known {
		return fmt.Errorf("%w: unknown user command %q (create, passwd, list)", errUsage, args[0])
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
		fmt.Fprintln(tw, "USERNAME\tADMIN\tCREATED\tLAST LOGIN")
		for _, u := range users {
			last := "never"
			if !u.LastLoginAt.IsZero() {
				last = u.LastLoginAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", u.Username, u.IsAdmin, u.CreatedAt.UTC().Format(time.RFC3339), last)
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
		fmt.Fprintf(iox.Stdout, "created user %q (admin: %v)\n", name, admin)
	case "passwd":
		u, err := st.GetUserByName(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %q", pos[0])
		}
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
		fmt.Fprintf(iox.Stdout, "password of %q changed\n", u.Username)
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
