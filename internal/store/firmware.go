package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// Firmware is an uploaded firmware image; the file itself lives in the
// firmware directory under Filename.
type Firmware struct {
	ID        int64
	Version   string
	Filename  string
	Size      int64
	SHA256    string // hex
	CreatedAt time.Time
}

const firmwareCols = "id, version, filename, size, sha256, created_at"

func scanFirmware(r rowScanner) (Firmware, error) {
	var f Firmware
	var created int64
	if err := r.Scan(&f.ID, &f.Version, &f.Filename, &f.Size, &f.SHA256, &created); err != nil {
		return Firmware{}, err
	}
	f.CreatedAt = fromMillis(created)
	return f, nil
}

// CreateFirmware records an image; a version already stored is
// ErrConflict.
func (s *Store) CreateFirmware(ctx context.Context, f Firmware) (Firmware, error) {
	op := fmt.Sprintf("create firmware %q", f.Version)
	if f.Version == "" || f.Filename == "" {
		return Firmware{}, fmt.Errorf("store: %s: version and filename are required", op)
	}
	out, err := scanFirmware(s.wdb.QueryRowContext(ctx,
		"INSERT INTO firmware (version, filename, size, sha256, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING "+firmwareCols,
		f.Version, f.Filename, f.Size, f.SHA256, millis(s.now())))
	return out, wrap(op, err)
}

// GetFirmware returns the image with the given id.
func (s *Store) GetFirmware(ctx context.Context, id int64) (Firmware, error) {
	f, err := scanFirmware(s.rdb.QueryRowContext(ctx, "SELECT "+firmwareCols+" FROM firmware WHERE id = $1", id))
	return f, wrap(fmt.Sprintf("get firmware %d", id), err)
}

// GetFirmwareByVersion returns the image with the given version.
func (s *Store) GetFirmwareByVersion(ctx context.Context, version string) (Firmware, error) {
	f, err := scanFirmware(s.rdb.QueryRowContext(ctx, "SELECT "+firmwareCols+" FROM firmware WHERE version = $1", version))
	return f, wrap(fmt.Sprintf("get firmware %q", version), err)
}

// ListFirmware returns all images, newest first.
func (s *Store) ListFirmware(ctx context.Context) ([]Firmware, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+firmwareCols+" FROM firmware ORDER BY id DESC")
	if err != nil {
		return nil, wrap("list firmware", err)
	}
	out, err := collect(rows, scanFirmware)
	return out, wrap("list firmware", err)
}

// DeleteFirmware removes an image record. An image that an active
// firmware update or an unfinished campaign (running or paused) uses is
// ErrConflict; finished updates and campaigns keep their version and lose
// their FirmwareID (0).
func (s *Store) DeleteFirmware(ctx context.Context, id int64) error {
	op := fmt.Sprintf("delete firmware %d", id)
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM firmware WHERE id = $1
		AND NOT EXISTS (SELECT 1 FROM firmware_update WHERE firmware_id = $1 AND active)
		AND NOT EXISTS (SELECT 1 FROM firmware_campaign WHERE firmware_id = $1 AND state IN ('running', 'paused'))`, id)
	if err != nil {
		return wrap(op, err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return wrap(op, err)
	}
	if _, err := s.GetFirmware(ctx, id); err != nil {
		return wrap(op, err)
	}
	return fmt.Errorf("store: %s: an active firmware update or campaign uses it: %w", op, ErrConflict)
}

// FirmwareUpdate is the update of one endpoint to one image, and the
// progress of the state machine that drives it (package fwupdate owns the
// meaning of State, Method, Protocol and Detail). At most one update per
// endpoint is Active at a time.
type FirmwareUpdate struct {
	ID         int64
	EndpointID int64
	// FirmwareID is the image's; 0 once a finished update's image was
	// removed (Version stays).
	FirmwareID   int64
	Version      string // the image's version
	State        string // the update state machine's state
	Result       string // the outcome in words, e.g. the Update Result's meaning
	Active       bool   // in progress; false once finished
	OperationIDs []int64
	Method       string // e.g. "pull", "push"
	Protocol     string // e.g. "coap", "https"
	PackageURI   string // the Package URI written (pull)
	ResultCode   int    // the device's Update Result (5/0/5); 0: none
	Error        string // why it failed
	// Detail is the state machine's own bookkeeping (JSON object); nil
	// stores {}.
	Detail []byte
	// Rev counts the writes of the row: UpdateFirmwareUpdate writes only
	// over the revision it was given.
	Rev        int64
	StateAt    time.Time // when State began
	Deadline   time.Time // when State times out; zero: never
	FinishedAt time.Time // zero while active
	CreatedBy  int64     // user id; 0: the system
	CampaignID int64     // the campaign that started it; 0: none
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

const firmwareUpdateCols = "id, endpoint_id, firmware_id, version, state, result, active, operation_ids, method, protocol, " +
	"package_uri, result_code, error, detail, rev, state_at, deadline, finished_at, created_by, campaign_id, created_at, updated_at"

func scanFirmwareUpdate(r rowScanner) (FirmwareUpdate, error) {
	var u FirmwareUpdate
	var ops, detail string
	var fw, deadline, finished, by, campaign sql.NullInt64
	var stateAt, created, updated int64
	if err := r.Scan(&u.ID, &u.EndpointID, &fw, &u.Version, &u.State, &u.Result, &u.Active, &ops, &u.Method, &u.Protocol,
		&u.PackageURI, &u.ResultCode, &u.Error, &detail, &u.Rev, &stateAt, &deadline, &finished, &by, &campaign, &created, &updated); err != nil {
		return FirmwareUpdate{}, err
	}
	if err := json.Unmarshal([]byte(ops), &u.OperationIDs); err != nil {
		return FirmwareUpdate{}, fmt.Errorf("firmware update %d: operation_ids: %w", u.ID, err)
	}
	u.FirmwareID, u.CreatedBy, u.CampaignID = fw.Int64, by.Int64, campaign.Int64
	u.Detail = []byte(detail)
	u.StateAt, u.Deadline, u.FinishedAt = fromMillis(stateAt), fromNullMillis(deadline), fromNullMillis(finished)
	u.CreatedAt, u.UpdatedAt = fromMillis(created), fromMillis(updated)
	return u, nil
}

func operationIDsJSON(ids []int64) string {
	if ids == nil {
		ids = []int64{}
	}
	b, _ := json.Marshal(ids) // []int64 always marshals
	return string(b)
}

func detailJSON(d []byte) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	if !json.Valid(d) {
		return "", errors.New("detail is not JSON")
	}
	return string(d), nil
}

// CreateFirmwareUpdate starts an update: it stores u's EndpointID,
// FirmwareID, Version, State, Result, OperationIDs, Method, Protocol,
// PackageURI, Detail, StateAt (zero: now), Deadline and CreatedBy as an
// active update at revision 1. An endpoint that already has an active
// update is ErrConflict, and so is a missing endpoint or image.
func (s *Store) CreateFirmwareUpdate(ctx context.Context, u FirmwareUpdate) (FirmwareUpdate, error) {
	return s.createFirmwareUpdate(ctx, s.wdb, u)
}

// CreateFirmwareUpdateTx is CreateFirmwareUpdate inside the transaction
// tx, so that the update and the job that drives it commit together.
func (s *Store) CreateFirmwareUpdateTx(ctx context.Context, tx *sql.Tx, u FirmwareUpdate) (FirmwareUpdate, error) {
	return s.createFirmwareUpdate(ctx, tx, u)
}

func (s *Store) createFirmwareUpdate(ctx context.Context, q querier, u FirmwareUpdate) (FirmwareUpdate, error) {
	op := fmt.Sprintf("create firmware update of endpoint %d", u.EndpointID)
	if u.State == "" {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: empty state", op)
	}
	detail, err := detailJSON(u.Detail)
	if err != nil {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: %w", op, err)
	}
	now := s.now()
	if u.StateAt.IsZero() {
		u.StateAt = now
	}
	if u.Version == "" && u.FirmwareID != 0 {
		if err := q.QueryRowContext(ctx, "SELECT version FROM firmware WHERE id = $1", u.FirmwareID).Scan(&u.Version); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = fmt.Errorf("image %d: %w", u.FirmwareID, ErrConflict)
			}
			return FirmwareUpdate{}, wrap(op, err)
		}
	}
	out, err := scanFirmwareUpdate(q.QueryRowContext(ctx, `
		INSERT INTO firmware_update (endpoint_id, firmware_id, version, state, result, active, operation_ids, method,
			protocol, package_uri, detail, rev, state_at, deadline, created_by, campaign_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $8, $9, $10, 1, $11, $12, $13, $14, $15, $15) RETURNING `+firmwareUpdateCols,
		u.EndpointID, nullID(u.FirmwareID), u.Version, u.State, u.Result, operationIDsJSON(u.OperationIDs), u.Method,
		u.Protocol, u.PackageURI, detail, millis(u.StateAt), nullMillis(u.Deadline), nullID(u.CreatedBy), nullID(u.CampaignID), millis(now)))
	return out, wrap(op, err)
}

// GetFirmwareUpdate returns the update with the given id.
func (s *Store) GetFirmwareUpdate(ctx context.Context, id int64) (FirmwareUpdate, error) {
	u, err := scanFirmwareUpdate(s.rdb.QueryRowContext(ctx,
		"SELECT "+firmwareUpdateCols+" FROM firmware_update WHERE id = $1", id))
	return u, wrap(fmt.Sprintf("get firmware update %d", id), err)
}

// ActiveFirmwareUpdate returns the endpoint's active update; ErrNotFound
// when it has none.
func (s *Store) ActiveFirmwareUpdate(ctx context.Context, endpointID int64) (FirmwareUpdate, error) {
	u, err := scanFirmwareUpdate(s.rdb.QueryRowContext(ctx,
		"SELECT "+firmwareUpdateCols+" FROM firmware_update WHERE endpoint_id = $1 AND active", endpointID))
	return u, wrap(fmt.Sprintf("active firmware update of endpoint %d", endpointID), err)
}

// ActiveFirmwareEndpoints returns the ids of the endpoints that have an
// active update.
func (s *Store) ActiveFirmwareEndpoints(ctx context.Context) ([]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT endpoint_id FROM firmware_update WHERE active ORDER BY endpoint_id")
	if err != nil {
		return nil, wrap("active firmware endpoints", err)
	}
	out, err := collect(rows, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	return out, wrap("active firmware endpoints", err)
}

// FirmwareUpdateFilter selects updates for ListFirmwareUpdates; zero
// fields do not restrict.
type FirmwareUpdateFilter struct {
	EndpointID int64
	FirmwareID int64
	Version    string
	ActiveOnly bool
	// FinishedOnly selects the updates that are not active.
	FinishedOnly bool
	// Scope, when non-nil, selects the updates of endpoints in it (the
	// zero Scope selects none).
	Scope  *auth.Scope
	Limit  int // <= 0: 100
	Offset int
}

// ListFirmwareUpdates returns the updates matching f, newest first.
func (s *Store) ListFirmwareUpdates(ctx context.Context, f FirmwareUpdateFilter) ([]FirmwareUpdate, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.EndpointID != 0 {
		where = append(where, "endpoint_id = "+arg(f.EndpointID))
	}
	if f.FirmwareID != 0 {
		where = append(where, "firmware_id = "+arg(f.FirmwareID))
	}
	if f.Version != "" {
		where = append(where, "version = "+arg(f.Version))
	}
	if f.ActiveOnly {
		where = append(where, "active")
	}
	if f.FinishedOnly {
		where = append(where, "NOT active")
	}
	if f.Scope != nil {
		if c := scopeCond(*f.Scope, "e.site_id", arg); c != "" {
			where = append(where, "endpoint_id IN (SELECT e.id FROM endpoint e WHERE "+c+")")
		}
	}
	q := "SELECT " + firmwareUpdateCols + " FROM firmware_update"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(limitOr(f.Limit, 100)) + " OFFSET " + arg(max(f.Offset, 0))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list firmware updates", err)
	}
	out, err := collect(rows, scanFirmwareUpdate)
	return out, wrap("list firmware updates", err)
}

// UpdateFirmwareUpdate stores u's State, Result, Active, OperationIDs,
// Method, Protocol, PackageURI, ResultCode, Error, Detail, StateAt,
// Deadline and FinishedAt for the update u.ID, if it is still at revision
// u.Rev, and returns it at the next revision. A row written meanwhile (its
// revision moved on) is ErrConflict, and so is re-activating an update
// while the endpoint has another active one.
func (s *Store) UpdateFirmwareUpdate(ctx context.Context, u FirmwareUpdate) (FirmwareUpdate, error) {
	op := fmt.Sprintf("update firmware update %d", u.ID)
	if u.State == "" {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: empty state", op)
	}
	detail, err := detailJSON(u.Detail)
	if err != nil {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: %w", op, err)
	}
	out, err := scanFirmwareUpdate(s.wdb.QueryRowContext(ctx, `
		UPDATE firmware_update SET state = $3, result = $4, active = $5, operation_ids = $6, method = $7, protocol = $8,
			package_uri = $9, result_code = $10, error = $11, detail = $12, state_at = $13, deadline = $14,
			finished_at = $15, rev = rev + 1, updated_at = $16
		WHERE id = $1 AND rev = $2 RETURNING `+firmwareUpdateCols,
		u.ID, u.Rev, u.State, u.Result, u.Active, operationIDsJSON(u.OperationIDs), u.Method, u.Protocol,
		u.PackageURI, u.ResultCode, u.Error, detail, millis(u.StateAt), nullMillis(u.Deadline),
		nullMillis(u.FinishedAt), millis(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := s.GetFirmwareUpdate(ctx, u.ID); gerr != nil {
			return FirmwareUpdate{}, fmt.Errorf("store: %s: %w", op, gerr)
		}
		return FirmwareUpdate{}, fmt.Errorf("store: %s: written meanwhile (revision %d is gone): %w", op, u.Rev, ErrConflict)
	}
	return out, wrap(op, err)
}

// DeleteFirmwareUpdate removes an update record.
func (s *Store) DeleteFirmwareUpdate(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete firmware update %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM firmware_update WHERE id = $1", id)))
}
