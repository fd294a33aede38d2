package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/store"
)

const secretUsage = "secret | secret fingerprint | secret rotate (--old-key-file FILE | --old-key-stdin | FLOWNEXUS_OLD_SECRET_KEY) | secret reset [--drop-psks]"

// oldKeyEnv names the variable that may hold the old key for rotate.
const oldKeyEnv = "FLOWNEXUS_OLD_SECRET_KEY"

// runSecret prints a new secret key, or manages the one in use: its
// fingerprint, a rotation from an old key, or a reset after the old key
// was lost.
func runSecret(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(iox.Stdout, auth.NewSecretKey())
		return nil
	}
	switch args[0] {
	case "fingerprint":
		cfg, pos, err := loadConfig(iox, "secret fingerprint", args[1:], nil)
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return fmt.Errorf("%w: %s", errUsage, secretUsage)
		}
		fmt.Fprintln(iox.Stdout, credential.Fingerprint(cfg.SecretKey))
		return nil
	case "rotate":
		return runSecretRotate(ctx, iox, args[1:])
	case "reset":
		return runSecretReset(ctx, iox, args[1:])
	}
	return fmt.Errorf("%w: unknown secret command %q: %s", errUsage, args[0], secretUsage)
}

// runSecretRotate re-seals the stored PSK keys and the saved DTLS
// sessions from the old key to the configured one.
func runSecretRotate(ctx context.Context, iox IO, args []string) error {
	var oldFile string
	var oldStdin bool
	cfg, pos, err := loadConfig(iox, "secret rotate", args, func(fs *flag.FlagSet) {
		fs.StringVar(&oldFile, "old-key-file", "", "file holding the old secret key (as FLOWNEXUS_SECRET_KEY_FILE does)")
		fs.BoolVar(&oldStdin, "old-key-stdin", false, "read the old secret key from the first line of stdin")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: %s", errUsage, secretUsage)
	}
	old, err := oldKey(iox, oldFile, oldStdin)
	if err != nil {
		return err
	}
	if cfg.UsesDevSecret() {
		return errors.New("secret rotate: the configured key is the public development key: set the new key in FLOWNEXUS_SECRET_KEY or FLOWNEXUS_SECRET_KEY_FILE (`flownexus secret` makes one)")
	}
	st, creds, err := openCredentials(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := creds.Rotate(ctx, store.Actor{Name: "cli"}, old)
	if err != nil {
		return fmt.Errorf("secret rotate: %w", err)
	}
	if res.Resealed == 0 && res.Before == res.To {
		fmt.Fprintf(iox.Stdout, "nothing to do: the PSK keys are sealed with the configured key (fingerprint %s)\n", res.To)
	} else {
		fmt.Fprintf(iox.Stdout, "re-sealed %d PSK keys with the configured key (fingerprint %s, was %s)", res.Resealed, res.To, res.From)
		if res.Current > 0 {
			fmt.Fprintf(iox.Stdout, "; %d were sealed with it already", res.Current)
		}
		if res.Other > 0 {
			fmt.Fprintf(iox.Stdout, "; %d X.509 credentials need none", res.Other)
		}
		fmt.Fprintln(iox.Stdout)
	}
	path := cfg.DTLSSessionFile()
	switch ok, err := creds.ResealSessionFile(path, old); {
	case err != nil:
		// The PSKs are rotated; the server discards what it cannot open.
		newLogger(cfg, iox.Stderr).Warn("saved DTLS sessions not re-sealed: the server discards them at start and their devices handshake again",
			"file", path, "err", err)
	case ok:
		fmt.Fprintf(iox.Stdout, "re-sealed the saved DTLS sessions in %s\n", path)
	}
	return nil
}

// oldKey returns the old secret key from exactly one of --old-key-file,
// --old-key-stdin and FLOWNEXUS_OLD_SECRET_KEY. It is not checked for
// strength: a weak key is what one rotates away from.
func oldKey(iox IO, file string, stdin bool) (string, error) {
	env, _ := iox.Env(oldKeyEnv)
	n := 0
	for _, set := range []bool{file != "", stdin, env != ""} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return "", fmt.Errorf("%w: secret rotate needs the old key: --old-key-file FILE, --old-key-stdin or %s", errUsage, oldKeyEnv)
	case n > 1:
		return "", fmt.Errorf("%w: give the old key once: --old-key-file, --old-key-stdin or %s", errUsage, oldKeyEnv)
	case file != "":
		key, _, err := config.ReadSecretKeyFile(file)
		if err != nil {
			return "", fmt.Errorf("old key (--old-key-file): %w", err)
		}
		return key, nil
	case stdin:
		key, err := readLine(iox.Stdin)
		if err == nil && key == "" {
			err = errors.New("empty line")
		}
		if err != nil {
			return "", fmt.Errorf("old key (--old-key-stdin): %w", err)
		}
		return key, nil
	}
	return env, nil
}

// runSecretReset lists, and with --drop-psks removes, the PSK credentials
// the configured key cannot open, and records the configured key.
func runSecretReset(ctx context.Context, iox IO, args []string) error {
	var drop bool
	cfg, pos, err := loadConfig(iox, "secret reset", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&drop, "drop-psks", false, "remove the PSK credentials the configured key cannot open and record the configured key")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: %s", errUsage, secretUsage)
	}
	if cfg.UsesDevSecret() && drop {
		return errors.New("secret reset: the configured key is the public development key: set the key to keep in FLOWNEXUS_SECRET_KEY or FLOWNEXUS_SECRET_KEY_FILE")
	}
	st, creds, err := openCredentials(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := creds.ResetSecretKey(ctx, store.Actor{Name: "cli"}, drop)
	if err != nil {
		return fmt.Errorf("secret reset: %w", err)
	}
	recorded := res.From
	if recorded == "" {
		recorded = "none"
	}
	if !drop {
		fmt.Fprintf(iox.Stdout, "%d PSK credentials do not open with the configured key (fingerprint %s; the database records %s), %d do\n",
			len(res.Unreadable), res.To, recorded, res.Kept)
		printEndpoints(iox.Stdout, res.Unreadable)
		fmt.Fprintln(iox.Stdout, "nothing changed: run again with --drop-psks to remove them and record the configured key")
		return nil
	}
	if !res.Dropped {
		fmt.Fprintf(iox.Stdout, "nothing to do: the configured key (fingerprint %s) is recorded and opens all %d PSK keys\n", res.To, res.Kept)
		return nil
	}
	fmt.Fprintf(iox.Stdout, "removed %d PSK credentials the configured key cannot open; recorded the configured key (fingerprint %s, was %s)\n",
		len(res.Unreadable), res.To, recorded)
	printEndpoints(iox.Stdout, res.Unreadable)
	return nil
}

func printEndpoints(w io.Writer, eps []string) {
	for _, ep := range eps {
		fmt.Fprintln(w, "  "+ep)
	}
}
