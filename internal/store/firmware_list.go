package store

import (
	"context"
	"fmt"

	"github.com/flownexus/flownexus/internal/auth"
)

// FirmwareUpdatePage selects one page of firmware updates for
// PageFirmwareUpdates: of the endpoints in Scope, only active ones when
// ActiveOnly, of campaign CampaignID when not 0, with ids below Before
// (keyset paging: 0 starts at the newest), at most Limit (<= 0: 50, at
// most 500).
type FirmwareUpdatePage struct {
	// Scope is the devices whose updates the page may show; the zero
	// Scope shows none, auth.Everything all.
	Scope      auth.Scope
	ActiveOnly bool
	CampaignID int64
	Before     int64
	Limit      int
}

// ListedUpdate is a firmware update with its endpoint's name and the
// name of the user who started it ("" for the system or a removed user).
type ListedUpdate struct {
	FirmwareUpdate
	Endpoint      string
	CreatedByName string
}

// PageFirmwareUpdates returns one page of the updates p selects, newest
// first, and whether more follow.
func (s *Store) PageFirmwareUpdates(ctx context.Context, p FirmwareUpdatePage) ([]ListedUpdate, bool, error) {
	limit := min(limitOr(p.Limit, 50), 500)
	var args []any
	arg := argList(&args)
	var where []string
	if c := scopeCond(p.Scope, "e.site_id", arg); c != "" {
		where = append(where, c)
	}
	if p.ActiveOnly {
		where = append(where, "fu.active")
	}
	if p.CampaignID != 0 {
		where = append(where, "fu.campaign_id = "+arg(p.CampaignID))
	}
	if p.Before > 0 {
		where = append(where, "fu.id < "+arg(p.Before))
	}
	q := "SELECT " + prefixCols("fu.", firmwareUpdateCols) + ", e.name, COALESCE(u.username, '')" +
		" FROM firmware_update fu JOIN endpoint e ON e.id = fu.endpoint_id LEFT JOIN users u ON u.id = fu.created_by" +
		whereAll(where...) + " ORDER BY fu.id DESC LIMIT " + arg(limit+1)
	return queryPage(ctx, s, "page firmware updates", q, args, limit, func(r rowScanner) (ListedUpdate, error) {
		var l ListedUpdate
		var err error
		l.FirmwareUpdate, err = scanFirmwareUpdate(withExtra(r, &l.Endpoint, &l.CreatedByName))
		return l, err
	})
}

// CampaignsIn returns the campaigns with at least one device in sc,
// newest first, at most limit (<= 0: 100).
func (s *Store) CampaignsIn(ctx context.Context, sc auth.Scope, limit int) ([]FirmwareCampaign, error) {
	var args []any
	arg := argList(&args)
	q := "SELECT " + prefixCols("c.", campaignCols) + " FROM firmware_campaign c"
	if cond := scopeCond(sc, "e.site_id", arg); cond != "" {
		q += " WHERE EXISTS (SELECT 1 FROM firmware_campaign_device d JOIN endpoint e ON e.id = d.endpoint_id" +
			" WHERE d.campaign_id = c.id AND " + cond + ")"
	}
	rows, err := s.rdb.QueryContext(ctx, q+" ORDER BY c.id DESC LIMIT "+arg(limitOr(limit, 100)), args...)
	if err != nil {
		return nil, wrap("campaigns in scope", err)
	}
	out, err := collect(rows, scanCampaign)
	return out, wrap("campaigns in scope", err)
}

// CampaignSummaryIn counts the devices of campaign id in sc by state, and
// the devices of the campaign outside sc.
func (s *Store) CampaignSummaryIn(ctx context.Context, id int64, sc auth.Scope) (map[string]int, int, error) {
	op := fmt.Sprintf("summary of firmware campaign %d", id)
	var args []any
	arg := argList(&args)
	in := "1"
	if cond := scopeCond(sc, "e.site_id", arg); cond != "" {
		in = "CASE WHEN " + cond + " THEN 1 ELSE 0 END"
	}
	q := "SELECT d.state, " + in + ", count(*) FROM firmware_campaign_device d JOIN endpoint e ON e.id = d.endpoint_id" +
		" WHERE d.campaign_id = " + arg(id) + " GROUP BY d.state, " + in
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, wrap(op, err)
	}
	defer rows.Close()
	sum, outside := map[string]int{}, 0
	for rows.Next() {
		var st string
		var inScope, n int
		if err := rows.Scan(&st, &inScope, &n); err != nil {
			return nil, 0, wrap(op, err)
		}
		if inScope == 1 {
			sum[st] += n
		} else {
			outside += n
		}
	}
	return sum, outside, wrap(op, rows.Err())
}

// CampaignDevicesIn returns the devices of campaign id in sc, by endpoint
// id after the endpoint id after (keyset paging: 0 starts at the first),
// at most limit (<= 0: 100, at most 1000), and whether more follow.
func (s *Store) CampaignDevicesIn(ctx context.Context, id int64, sc auth.Scope, after int64, limit int) ([]CampaignDevice, bool, error) {
	op := fmt.Sprintf("devices of firmware campaign %d", id)
	limit = min(limitOr(limit, 100), 1000)
	var args []any
	arg := argList(&args)
	q := "SELECT " + campaignDeviceCols + " FROM firmware_campaign_device d JOIN endpoint e ON e.id = d.endpoint_id" +
		whereAll("d.campaign_id = "+arg(id), "d.endpoint_id > "+arg(after), scopeCond(sc, "e.site_id", arg)) +
		" ORDER BY d.endpoint_id LIMIT " + arg(limit+1)
	return queryPage(ctx, s, op, q, args, limit, scanCampaignDevice)
}

// ImageFacts is what the firmware page shows of an image besides its
// row: who uploaded it and whether an unfinished update or campaign uses
// it (then it cannot be removed).
type ImageFacts struct {
	UploadedBy string // the actor of its latest "firmware.upload" audit entry; "" if none
	InUse      bool
}

// FirmwareImageFacts returns the ImageFacts of every image, by image id.
func (s *Store) FirmwareImageFacts(ctx context.Context) (map[int64]ImageFacts, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT f.id,
		COALESCE((SELECT a.actor FROM audit_log a WHERE a.action = 'firmware.upload' AND a.target = f.version
			ORDER BY a.id DESC LIMIT 1), ''),
		CASE WHEN EXISTS (SELECT 1 FROM firmware_update u WHERE u.firmware_id = f.id AND u.active)
			OR EXISTS (SELECT 1 FROM firmware_campaign c WHERE c.firmware_id = f.id AND c.state IN ('running', 'paused'))
			THEN 1 ELSE 0 END
		FROM firmware f`)
	if err != nil {
		return nil, wrap("firmware image facts", err)
	}
	defer rows.Close()
	out := map[int64]ImageFacts{}
	for rows.Next() {
		var id int64
		var f ImageFacts
		var inUse int
		if err := rows.Scan(&id, &f.UploadedBy, &inUse); err != nil {
			return nil, wrap("firmware image facts", err)
		}
		f.InUse = inUse == 1
		out[id] = f
	}
	return out, wrap("firmware image facts", rows.Err())
}
