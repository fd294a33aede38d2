package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

func runToken(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: token create --user NAME [--name LABEL] [--expires DURATION]", errUsage)
	}
	var user, label string
	var expires time.Duration
	cfg, pos, err := loadConfig(iox, "token create", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "user the token acts as (required)")
		fs.StringVar(&label, "name", "cli", "label shown in token lists")
		fs.DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h; 0 never expires")
	})
	if err != nil {
		return err
	}
	if user == "" || len(pos) > 0 {
		return fmt.Errorf("%w: token create --user NAME [--name LABEL] [--expires DURATION]", errUsage)
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := st.GetUserByName(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q", user)
	}
	if err != nil {
		return err
	}
	token, hash, prefix := auth.NewToken()
	var exp time.Time
	if expires > 0 {
		exp = time.Now().Add(expires)
	}
	if _, err := st.CreateAPIToken(ctx, u.ID, label, hash, prefix, exp); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stderr, "API token %q for %s (shown once; keep it secret):\n", label, u.Username)
	fmt.Fprintln(iox.Stdout, token)
	return nil
}
