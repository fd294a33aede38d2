package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/store"
)

const credentialUsage = "credential add ENDPOINT (--psk-identity ID --psk-key HEX|--psk-key-stdin | --cert-cn CN [--cert-fingerprint SHA256]) | credential import FILE|- | credential list | credential remove ENDPOINT"

func runCredential(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, credentialUsage)
	}
	var req credential.AddRequest
	var keyHex string
	var keyStdin bool
	extra := func(fs *flag.FlagSet) {
		if args[0] != "add" {
			return
		}
		fs.StringVar(&req.PSKIdentity, "psk-identity", "", "PSK identity the device presents")
		fs.StringVar(&keyHex, "psk-key", "", "PSK key in hex (visible in the process list: prefer --psk-key-stdin)")
		fs.BoolVar(&keyStdin, "psk-key-stdin", false, "read the PSK key in hex from the first line of stdin")
		fs.StringVar(&req.CertCN, "cert-cn", "", "certificate common name bound to the endpoint")
		fs.StringVar(&req.CertFingerprint, "cert-fingerprint", "", "SHA-256 of the device certificate in hex")
	}
	cfg, pos, err := loadConfig(iox, "credential "+args[0], args[1:], extra)
	if err != nil {
		return err
	}
	want, known := map[string]int{"add": 1, "import": 1, "list": 0, "remove": 1}[args[0]]
	if !known {
		return fmt.Errorf("%w: unknown credential command %q (add, import, list, remove)", errUsage, args[0])
	}
	if len(pos) != want {
		return fmt.Errorf("%w: %s", errUsage, credentialUsage)
	}
	if args[0] == "add" {
		if keyStdin {
			if keyHex != "" {
				return fmt.Errorf("%w: give --psk-key or --psk-key-stdin, not both", errUsage)
			}
			if keyHex, err = readLine(iox.Stdin); err != nil {
				return fmt.Errorf("reading PSK key from stdin: %w", err)
			}
		}
		if keyHex != "" {
			if req.PSKKey, err = credential.ParseKey(keyHex); err != nil {
				return err
			}
		}
		req.Endpoint = pos[0]
	}
	st, creds, err := openCredentials(ctx, iox, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "add" || args[0] == "import" {
		// They seal PSK keys: only with the key the others are sealed with.
		if err := app.CheckSecretKey(ctx, creds, newLogger(cfg, iox.Stderr)); err != nil {
			return err
		}
	}
	by := store.Actor{Name: "cli"}
	switch args[0] {
	case "list":
		list, err := creds.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tKIND\tPSK IDENTITY\tCERT CN\tCERT FINGERPRINT\tCREATED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Endpoint, c.Kind, dash(c.PSKIdentity), dash(c.CertCN),
				dash(c.CertFingerprint), c.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "add":
		info, err := creds.Add(ctx, by, req)
		switch {
		case errors.Is(err, store.ErrConflict):
			return fmt.Errorf("endpoint %q already has a credential, or PSK identity %q is in use: remove it first", req.Endpoint, req.PSKIdentity)
		case err != nil:
			return err
		}
		fmt.Fprintf(iox.Stdout, "added %s credential for %q\n", info.Kind, info.Endpoint)
	case "import":
		return importPSKFile(ctx, iox, creds, by, pos[0])
	case "remove":
		err := creds.Remove(ctx, by, pos[0])
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("endpoint %q has no credential", pos[0])
		case err != nil:
			return err
		}
		fmt.Fprintf(iox.Stdout, "removed the credential of %q\n", pos[0])
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// importPSKFile adds the credentials of the PSK file at name ("-": stdin)
// all together, or none of them.
func importPSKFile(ctx context.Context, iox IO, creds *credential.Service, by store.Actor, name string) error {
	r, label := iox.Stdin, "stdin"
	if name != "-" {
		label = name
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	n, err := creds.ImportPSK(ctx, by, r)
	if err != nil {
		return fmt.Errorf("%s: nothing imported: %w", label, err)
	}
	fmt.Fprintf(iox.Stdout, "imported %d PSK credentials from %s\n", n, label)
	return nil
}

// openCredentials opens the database (migrating it) and the credential
// service over it, for the commands that handle device credentials; the
// caller closes the store.
func openCredentials(ctx context.Context, iox IO, cfg config.Config) (*store.Store, *credential.Service, error) {
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return nil, nil, err
	}
	creds, err := credential.New(st, cfg.SecretKey)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, creds, nil
}
