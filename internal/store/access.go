package store

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/auth"
)

// campaignWithin is the condition that campaign c (alias of
// firmware_campaign) has no device outside sc.
func campaignWithin(sc auth.Scope, arg func(any) string) string {
	c := scopeCond(sc, "e.site_id", arg)
	if c == "" {
		return ""
	}
	return `NOT EXISTS (SELECT 1 FROM firmware_campaign_device d JOIN endpoint e ON e.id = d.endpoint_id
		WHERE d.campaign_id = c.id AND NOT (` + c + `))`
}

// CampaignWithin reports whether every device of campaign id is in sc:
// the rule by which a campaign is visible to, and manageable by, a user
// (a campaign with no device is within every scope). An unknown campaign
// is ErrNotFound.
func (s *Store) CampaignWithin(ctx context.Context, id int64, sc auth.Scope) (bool, error) {
	var args []any
	arg := argList(&args)
	sel := "1"
	if c := campaignWithin(sc, arg); c != "" {
		sel = "CASE WHEN " + c + " THEN 1 ELSE 0 END"
	}
	q := "SELECT " + sel + " FROM firmware_campaign c WHERE c.id = " + arg(id)
	var n int64
	err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&n)
	if err != nil {
		return false, wrap(fmt.Sprintf("firmware campaign %d within scope", id), err)
	}
	return n != 0, nil
}

// ListFirmwareCampaignsWithin is ListFirmwareCampaigns restricted to the
// campaigns whose devices are all in sc (see CampaignWithin).
func (s *Store) ListFirmwareCampaignsWithin(ctx context.Context, sc auth.Scope, state string, limit, offset int) ([]FirmwareCampaign, error) {
	var args []any
	arg := argList(&args)
	var conds []string
	if state != "" {
		conds = append(conds, "c.state = "+arg(state))
	}
	conds = append(conds, campaignWithin(sc, arg))
	cols := strings.ReplaceAll("c."+campaignCols, ", ", ", c.")
	q := "SELECT " + cols + " FROM firmware_campaign c" + whereAll(conds...) +
		" ORDER BY c.id DESC LIMIT " + arg(limitOr(limit, 100)) + " OFFSET " + arg(max(offset, 0))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list firmware campaigns", err)
	}
	out, err := collect(rows, scanCampaign)
	return out, wrap("list firmware campaigns", err)
}

// Assignment selects endpoints for AssignEndpoints: those Names, or
// those whose name starts with Prefix, or every endpoint of site
// FromSite (with FromSiteSet; 0: those in no site). Exactly one selector
// is used, in that order.
type Assignment struct {
	Names       []string
	Prefix      string
	FromSite    int64
	FromSiteSet bool
}

// AssignEndpoints moves the endpoints sel selects that are in within to
// the site to (0: no site), in one statement, and returns how many moved.
// Endpoints outside within are left alone and not counted. The caller
// decides whether its user may move devices into to.
func (s *Store) AssignEndpoints(ctx context.Context, sel Assignment, to int64, within auth.Scope) (int64, error) {
	var args []any
	arg := argList(&args)
	set := "UPDATE endpoint SET site_id = " + arg(nullID(to)) + ", updated_at = " + arg(millis(s.now()))
	var conds []string
	switch {
	case len(sel.Names) > 0:
		ph := make([]string, len(sel.Names))
		for i, n := range sel.Names {
			ph[i] = arg(n)
		}
		conds = append(conds, "name IN ("+strings.Join(ph, ", ")+")")
	case sel.Prefix != "":
		conds = append(conds, "name >= "+arg(sel.Prefix), "name < "+arg(sel.Prefix+string(utf8.MaxRune)))
	case sel.FromSiteSet && sel.FromSite == 0:
		conds = append(conds, "site_id IS NULL")
	case sel.FromSiteSet:
		conds = append(conds, "site_id = "+arg(sel.FromSite))
	default:
		return 0, fmt.Errorf("store: assign endpoints: nothing selected")
	}
	conds = append(conds, scopeCond(within, "site_id", arg))
	res, err := s.wdb.ExecContext(ctx, set+whereAll(conds...), args...)
	if err != nil {
		return 0, wrap("assign endpoints", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("assign endpoints", err)
}
