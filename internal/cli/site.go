package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

const siteUsage = "site add NAME | site list | site remove NAME"

// runSite manages sites: the groups of devices that memberships grant
// rights in (see package auth).
func runSite(ctx context.Context, iox IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, siteUsage)
	}
	cfg, pos, err := loadConfig(iox, "site "+args[0], args[1:], nil)
	if err != nil {
		return err
	}
	want, known := map[string]int{"add": 1, "list": 0, "remove": 1}[args[0]]
	if !known {
		return fmt.Errorf("%w: unknown site command %q: %s", errUsage, args[0], siteUsage)
	}
	if len(pos) != want {
		return fmt.Errorf("%w: site %s takes %d argument(s), got %d", errUsage, args[0], want, len(pos))
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, iox.Stderr), true)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		sites, err := st.ListSites(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(iox.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SITE\tDEVICES\tMEMBERS\tCREATED")
		for _, s := range sites {
			c, err := st.CountFleet(ctx, auth.Scope{Sites: []int64{s.ID}})
			if err != nil {
				return err
			}
			ms, err := st.ListSiteMembers(ctx, s.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Name, c.Total, len(ms), s.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "add":
		if err := checkUsername(pos[0]); err != nil {
			return fmt.Errorf("site %s", strings.TrimPrefix(err.Error(), "user "))
		}
		s, err := st.CreateSite(ctx, pos[0])
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("site %q already exists", pos[0])
		}
		if err != nil {
			return err
		}
		if err := audit(ctx, st, "site.create", s.Name, nil); err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "created site %q\n", s.Name)
	case "remove":
		s, err := siteByName(ctx, st, pos[0])
		if err != nil {
			return err
		}
		if err := st.DeleteSite(ctx, s.ID); err != nil {
			return err
		}
		if err := audit(ctx, st, "site.delete", s.Name, nil); err != nil {
			return err
		}
		fmt.Fprintf(iox.Stdout, "removed site %q and its memberships; its devices are in no site now\n", s.Name)
	}
	return nil
}

// siteByName returns the site name, or an error saying there is none.
func siteByName(ctx context.Context, st *store.Store, name string) (store.Site, error) {
	s, err := st.GetSiteByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return s, fmt.Errorf("no site %q", name)
	}
	return s, err
}

// parseFlags parses a comma-separated list of site permissions.
func parseFlags(list string) (auth.Flags, error) {
	var ps []auth.Permission
	for p := range strings.SplitSeq(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, auth.Permission(p))
		}
	}
	return auth.FlagsOf(ps...)
}

// userGrant gives the user a role in the site: "admin" (Site Admin, every
// site permission there) or "user" (Site User with flags).
func userGrant(ctx context.Context, iox IO, st *store.Store, user, site, role, flags string) error {
	u, err := userByName(ctx, st, user)
	if err != nil {
		return err
	}
	s, err := siteByName(ctx, st, site)
	if err != nil {
		return err
	}
	var f auth.Flags
	switch auth.SiteRole(role) {
	case auth.SiteAdmin:
		if flags != "" {
			return fmt.Errorf("%w: --flags is for --role user only (a Site Admin has every site permission)", errUsage)
		}
	case auth.SiteUser:
		if f, err = parseFlags(flags); err != nil {
			return fmt.Errorf("%w: --flags: %v", errUsage, err)
		}
	default:
		return fmt.Errorf("%w: --role admin or --role user", errUsage)
	}
	if err := st.SetMembership(ctx, u.ID, s.ID, auth.SiteRole(role), f); err != nil {
		return err
	}
	detail := map[string]any{"role": role}
	if role == string(auth.SiteUser) {
		detail["flags"] = f.Permissions()
	}
	if err := audit(ctx, st, "membership.set", u.Username+"@"+s.Name, detail); err != nil {
		return err
	}
	if role == string(auth.SiteAdmin) {
		fmt.Fprintf(iox.Stdout, "%q is a Site Admin of %q\n", u.Username, s.Name)
	} else {
		fmt.Fprintf(iox.Stdout, "%q is a Site User of %q with %v\n", u.Username, s.Name, f.Permissions())
	}
	return nil
}

// userRevoke ends the user's membership in the site.
func userRevoke(ctx context.Context, iox IO, st *store.Store, user, site string) error {
	u, err := userByName(ctx, st, user)
	if err != nil {
		return err
	}
	s, err := siteByName(ctx, st, site)
	if err != nil {
		return err
	}
	err = st.DeleteMembership(ctx, u.ID, s.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%q is no member of %q", u.Username, s.Name)
	}
	if err != nil {
		return err
	}
	if err := audit(ctx, st, "membership.delete", u.Username+"@"+s.Name, nil); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "%q is no longer a member of %q\n", u.Username, s.Name)
	return nil
}

// endpointAssign moves the named endpoints, or those whose name starts
// with prefix, to the site ("-": no site).
func endpointAssign(ctx context.Context, iox IO, st *store.Store, site, prefix string, names []string) error {
	var to int64
	label, target := "no site", "no site"
	if site != "-" {
		s, err := siteByName(ctx, st, site)
		if err != nil {
			return err
		}
		to, label, target = s.ID, fmt.Sprintf("site %q", s.Name), s.Name
	}
	sel := store.Assignment{Names: names, Prefix: prefix}
	n, err := st.AssignEndpoints(ctx, sel, to, auth.Everything)
	if err != nil {
		return err
	}
	detail := map[string]any{"moved": n}
	if prefix != "" {
		detail["prefix"] = prefix
	} else {
		detail["names"] = len(names)
	}
	if err := audit(ctx, st, "endpoint.assign", target, detail); err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "moved %d endpoint(s) to %s\n", n, label)
	return nil
}
