package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

const endpointUsage = "endpoint add NAME... | endpoint import FILE|- (one name a line) | endpoint remove NAME" +
	" | endpoint assign SITE|- NAME... | endpoint assign SITE|- --prefix P"

// runEndpoint provisions endpoints before their devices register (with
// --register-policy known only these and endpoints with credentials may
// register over plain CoAP) and removes endpoints with their data.
func runEndpoint(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, endpointUsage)
	}
	var prefix string
	extra := func(fs *flag.FlagSet) {
		if args[0] == "assign" {
			fs.StringVar(&prefix, "prefix", "", "move the endpoints whose name starts with this")
		}
	}
	cfg, pos, err := loadConfig(iox, "endpoint "+args[0], args[1:], extra)
	if err != nil {
		return err
	}
	switch args[0] {
	case "assign":
		if len(pos) == 0 || (len(pos) == 1) == (prefix == "") {
			return fmt.Errorf("%w: endpoint assign SITE|- NAME... or endpoint assign SITE|- --prefix P", errUsage)
		}
		st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
		if err != nil {
			return err
		}
		defer st.Close()
		return endpointAssign(ctx, iox, st, pos[0], prefix, pos[1:])
	case "add", "remove":
		if len(pos) == 0 || (args[0] == "remove" && len(pos) != 1) {
			return fmt.Errorf("%w: %s", errUsage, endpointUsage)
		}
	case "import":
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s", errUsage, endpointUsage)
		}
	default:
		return fmt.Errorf("%w: unknown endpoint command %q (add, import, remove, assign)", errUsage, args[0])
	}
	names := pos
	if args[0] == "import" {
		if names, err = readEndpointNames(iox, pos[0]); err != nil {
			return err
		}
	} else if args[0] == "add" {
		var errs []error
		for _, n := range names {
			if err := lwm2m.CheckEndpointName(n); err != nil {
				errs = append(errs, fmt.Errorf("%q: %w", n, err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("nothing added: %w", errors.Join(errs...))
		}
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "remove" {
		ep, err := st.GetEndpoint(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no endpoint %q", pos[0])
		}
		if err == nil {
			err = st.DeleteEndpoint(ctx, ep.ID)
		}
		if err == nil {
			_, err = st.AppendAudit(ctx, store.AuditEntry{Actor: "cli", Action: "endpoint.delete", Target: ep.Name})
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "removed endpoint %q and its stored data\n", ep.Name)
		return nil
	}
	n, err := st.ProvisionEndpoints(ctx, names, store.AuditEntry{Actor: "cli"})
	if err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "provisioned %d endpoints (%d new)\n", len(names), n)
	return nil
}

// readEndpointNames reads endpoint names, one a line, from the file name
// ("-": stdin); blank lines and lines starting with # are skipped. Every
// bad line is reported with its number, and then nothing is returned.
func readEndpointNames(iox IO, name string) ([]string, error) {
	var r io.Reader = iox.Stdin
	label := "stdin"
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, label = f, name
	}
	var names []string
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		n := strings.TrimSpace(sc.Text())
		if n == "" || strings.HasPrefix(n, "#") {
			continue
		}
		if err := lwm2m.CheckEndpointName(n); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			continue
		}
		if first, dup := seen[n]; dup {
			errs = append(errs, fmt.Errorf("line %d: %q repeats line %d", line, n, first))
			continue
		}
		seen[n] = line
		names = append(names, n)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: nothing imported: %w", label, errors.Join(errs...))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no endpoint names", label)
	}
	return names, nil
}
