package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FirmwareCampaign is an image rolled out to a set of endpoints (package
// fwupdate owns the meaning of State, Method, Protocol and Selection).
type FirmwareCampaign struct {
	ID            int64
	Name          string
	FirmwareID    int64 // 0 once the image was removed
	Version       string
	State         string
	Method        string
	Protocol      string
	Concurrency   int // updates running at once at most
	RatePerMinute int // updates started a minute at most
	MaxRetries    int // further updates of a device whose update failed
	RetryDelay    time.Duration
	Selection     []byte // JSON: how the endpoints were chosen
	// NextStartAt is when the next update may start (the start rate).
	NextStartAt time.Time
	CreatedBy   int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	FinishedAt  time.Time
}

const campaignCols = "id, name, firmware_id, version, state, method, protocol, concurrency, rate_per_minute, max_retries, " +
	"retry_delay_ms, selection, next_start_at, created_by, created_at, updated_at, finished_at"

func scanCampaign(r rowScanner) (FirmwareCampaign, error) {
	var c FirmwareCampaign
	var fw, by, finished sql.NullInt64
	var delay, next, created, updated int64
	var sel string
	if err := r.Scan(&c.ID, &c.Name, &fw, &c.Version, &c.State, &c.Method, &c.Protocol, &c.Concurrency, &c.RatePerMinute,
		&c.MaxRetries, &delay, &sel, &next, &by, &created, &updated, &finished); err != nil {
		return FirmwareCampaign{}, err
	}
	c.FirmwareID, c.CreatedBy = fw.Int64, by.Int64
	c.RetryDelay, c.Selection = time.Duration(delay)*time.Millisecond, []byte(sel)
	c.NextStartAt, c.CreatedAt, c.UpdatedAt, c.FinishedAt = fromMillis(next), fromMillis(created), fromMillis(updated), fromNullMillis(finished)
	return c, nil
}

// CreateFirmwareCampaignTx stores campaign c (all its fields but ID and
// the times) with the endpoints endpointIDs as its devices, in state
// deviceState, inside tx.
func (s *Store) CreateFirmwareCampaignTx(ctx context.Context, tx *sql.Tx, c FirmwareCampaign, endpointIDs []int64, deviceState string) (FirmwareCampaign, error) {
	op := fmt.Sprintf("create firmware campaign %q", c.Name)
	if c.State == "" || c.Version == "" || deviceState == "" {
		return FirmwareCampaign{}, fmt.Errorf("store: %s: state, version and device state are required", op)
	}
	sel, err := detailJSON(c.Selection)
	if err != nil {
		return FirmwareCampaign{}, fmt.Errorf("store: %s: selection: %w", op, err)
	}
	now := millis(s.now())
	out, err := scanCampaign(tx.QueryRowContext(ctx, `
		INSERT INTO firmware_campaign (name, firmware_id, version, state, method, protocol, concurrency, rate_per_minute,
			max_retries, retry_delay_ms, selection, next_start_at, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING `+campaignCols,
		c.Name, nullID(c.FirmwareID), c.Version, c.State, c.Method, c.Protocol, c.Concurrency, c.RatePerMinute,
		c.MaxRetries, c.RetryDelay.Milliseconds(), sel, millis(c.NextStartAt), nullID(c.CreatedBy), now))
	if err != nil {
		return FirmwareCampaign{}, wrap(op, err)
	}
	for start := 0; start < len(endpointIDs); start += 500 {
		batch := endpointIDs[start:min(start+500, len(endpointIDs))]
		var q strings.Builder
		q.WriteString("INSERT INTO firmware_campaign_device (campaign_id, endpoint_id, state, updated_at) VALUES ")
		args := []any{out.ID, deviceState, now}
		for i, id := range batch {
			if i > 0 {
				q.WriteString(", ")
			}
			args = append(args, id)
			fmt.Fprintf(&q, "($1, $%d, $2, $3)", len(args))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return FirmwareCampaign{}, wrap(op, err)
		}
	}
	return out, nil
}

// GetFirmwareCampaign returns campaign id.
func (s *Store) GetFirmwareCampaign(ctx context.Context, id int64) (FirmwareCampaign, error) {
	c, err := scanCampaign(s.rdb.QueryRowContext(ctx, "SELECT "+campaignCols+" FROM firmware_campaign WHERE id = $1", id))
	return c, wrap(fmt.Sprintf("get firmware campaign %d", id), err)
}

// ListFirmwareCampaigns returns campaigns, newest first; a state other
// than "" selects those in it.
func (s *Store) ListFirmwareCampaigns(ctx context.Context, state string, limit, offset int) ([]FirmwareCampaign, error) {
	q := "SELECT " + campaignCols + " FROM firmware_campaign"
	args := []any{limitOr(limit, 100), max(offset, 0)}
	if state != "" {
		q += " WHERE state = $3"
		args = append(args, state)
	}
	rows, err := s.rdb.QueryContext(ctx, q+" ORDER BY id DESC LIMIT $1 OFFSET $2", args...)
	if err != nil {
		return nil, wrap("list firmware campaigns", err)
	}
	out, err := collect(rows, scanCampaign)
	return out, wrap("list firmware campaigns", err)
}

// UpdateFirmwareCampaign stores c's State, NextStartAt and FinishedAt. A
// campaign whose state is no longer from (when given) is ErrConflict.
func (s *Store) UpdateFirmwareCampaign(ctx context.Context, c FirmwareCampaign, from ...string) (FirmwareCampaign, error) {
	op := fmt.Sprintf("update firmware campaign %d", c.ID)
	q := "UPDATE firmware_campaign SET state = $2, next_start_at = $3, finished_at = $4, updated_at = $5 WHERE id = $1"
	args := []any{c.ID, c.State, millis(c.NextStartAt), nullMillis(c.FinishedAt), millis(s.now())}
	if len(from) > 0 {
		var in []string
		for _, st := range from {
			args = append(args, st)
			in = append(in, fmt.Sprintf("$%d", len(args)))
		}
		q += " AND state IN (" + strings.Join(in, ", ") + ")"
	}
	out, err := scanCampaign(s.wdb.QueryRowContext(ctx, q+" RETURNING "+campaignCols, args...))
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := s.GetFirmwareCampaign(ctx, c.ID); gerr != nil {
			return FirmwareCampaign{}, fmt.Errorf("store: %s: %w", op, gerr)
		}
		return FirmwareCampaign{}, fmt.Errorf("store: %s: not in state %v: %w", op, from, ErrConflict)
	}
	return out, wrap(op, err)
}

// CampaignDevice is one endpoint's progress in a campaign.
type CampaignDevice struct {
	CampaignID int64
	EndpointID int64
	Endpoint   string // the endpoint's name (read only)
	State      string
	Attempts   int
	UpdateID   int64 // the update of its last attempt; 0: none
	Error      string
	NextTryAt  time.Time
	UpdatedAt  time.Time
}

const campaignDeviceCols = "d.campaign_id, d.endpoint_id, e.name, d.state, d.attempts, d.update_id, d.error, d.next_try_at, d.updated_at"

func scanCampaignDevice(r rowScanner) (CampaignDevice, error) {
	var d CampaignDevice
	var up sql.NullInt64
	var next, updated int64
	if err := r.Scan(&d.CampaignID, &d.EndpointID, &d.Endpoint, &d.State, &d.Attempts, &up, &d.Error, &next, &updated); err != nil {
		return CampaignDevice{}, err
	}
	d.UpdateID, d.NextTryAt, d.UpdatedAt = up.Int64, fromMillis(next), fromMillis(updated)
	return d, nil
}

// CampaignDeviceFilter selects devices for CampaignDevices; zero fields
// do not restrict.
type CampaignDeviceFilter struct {
	States []string
	// DueBy selects the devices whose NextTryAt is at or before it.
	DueBy  time.Time
	Limit  int // <= 0: 1000
	Offset int
}

// CampaignDevices returns the devices of campaign id matching f, by
// endpoint id.
func (s *Store) CampaignDevices(ctx context.Context, id int64, f CampaignDeviceFilter) ([]CampaignDevice, error) {
	op := fmt.Sprintf("devices of firmware campaign %d", id)
	q := "SELECT " + campaignDeviceCols + " FROM firmware_campaign_device d JOIN endpoint e ON e.id = d.endpoint_id WHERE d.campaign_id = $1"
	args := []any{id}
	if len(f.States) > 0 {
		var in []string
		for _, st := range f.States {
			args = append(args, st)
			in = append(in, fmt.Sprintf("$%d", len(args)))
		}
		q += " AND d.state IN (" + strings.Join(in, ", ") + ")"
	}
	if !f.DueBy.IsZero() {
		args = append(args, millis(f.DueBy))
		q += fmt.Sprintf(" AND d.next_try_at <= $%d", len(args))
	}
	args = append(args, limitOr(f.Limit, 1000), max(f.Offset, 0))
	q += fmt.Sprintf(" ORDER BY d.endpoint_id LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanCampaignDevice)
	return out, wrap(op, err)
}

// CampaignSummary counts the devices of campaign id by state.
func (s *Store) CampaignSummary(ctx context.Context, id int64) (map[string]int, error) {
	op := fmt.Sprintf("summary of firmware campaign %d", id)
	rows, err := s.rdb.QueryContext(ctx, "SELECT state, count(*) FROM firmware_campaign_device WHERE campaign_id = $1 GROUP BY state", id)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap(op, err)
		}
		out[st] = n
	}
	return out, wrap(op, rows.Err())
}

// UpdateCampaignDevice stores d's State, Attempts, UpdateID, Error and
// NextTryAt.
func (s *Store) UpdateCampaignDevice(ctx context.Context, d CampaignDevice) error {
	return wrap(fmt.Sprintf("update device %d of firmware campaign %d", d.EndpointID, d.CampaignID),
		requireRow(s.wdb.ExecContext(ctx, `UPDATE firmware_campaign_device SET state = $3, attempts = $4, update_id = $5,
			error = $6, next_try_at = $7, updated_at = $8 WHERE campaign_id = $1 AND endpoint_id = $2`,
			d.CampaignID, d.EndpointID, d.State, d.Attempts, nullID(d.UpdateID), d.Error, millis(d.NextTryAt), millis(s.now()))))
}

// ClaimCampaignDevice moves device endpointID of campaign id from state
// from to state to, and reports whether it was in state from (another
// node may have claimed it first).
func (s *Store) ClaimCampaignDevice(ctx context.Context, id, endpointID int64, from, to string) (bool, error) {
	res, err := s.wdb.ExecContext(ctx, `UPDATE firmware_campaign_device SET state = $4, updated_at = $5
		WHERE campaign_id = $1 AND endpoint_id = $2 AND state = $3`, id, endpointID, from, to, millis(s.now()))
	if err != nil {
		return false, wrap(fmt.Sprintf("claim device %d of firmware campaign %d", endpointID, id), err)
	}
	n, err := res.RowsAffected()
	return n == 1, wrap(fmt.Sprintf("claim device %d of firmware campaign %d", endpointID, id), err)
}

// SetCampaignDevicesState moves the devices of campaign id in state from
// to state to, and returns how many moved.
func (s *Store) SetCampaignDevicesState(ctx context.Context, id int64, from, to string) (int, error) {
	res, err := s.wdb.ExecContext(ctx, `UPDATE firmware_campaign_device SET state = $3, updated_at = $4
		WHERE campaign_id = $1 AND state = $2`, id, from, to, millis(s.now()))
	if err != nil {
		return 0, wrap(fmt.Sprintf("devices of firmware campaign %d", id), err)
	}
	n, err := res.RowsAffected()
	return int(n), wrap(fmt.Sprintf("devices of firmware campaign %d", id), err)
}

// LatestFirmwareVersions returns the latest Firmware Version (/3/0/3)
// each endpoint reported, by endpoint id.
func (s *Store) LatestFirmwareVersions(ctx context.Context) (map[int64]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT endpoint_id, value_text FROM resource_latest
		WHERE object_id = 3 AND instance_id = 0 AND resource_id = 3 AND value_text IS NOT NULL`)
	if err != nil {
		return nil, wrap("latest firmware versions", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return nil, wrap("latest firmware versions", err)
		}
		out[id] = v
	}
	return out, wrap("latest firmware versions", rows.Err())
}
