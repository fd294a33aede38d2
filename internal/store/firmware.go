package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
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

// DeleteFirmware removes an image record; an image that any firmware
// update refers to is ErrConflict.
func (s *Store) DeleteFirmware(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete firmware %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM firmware WHERE id = $1", id)))
}

// FirmwareUpdate is the update of one endpoint to one image. At most one
// update per endpoint is Active at a time.
type FirmwareUpdate struct {
	ID           int64
	EndpointID   int64
	FirmwareID   int64
	State        string // the update state machine's state
	Result       string // the outcome, e.g. the Update Result (5/0/5)
	Active       bool   // in progress; false once finished
	OperationIDs []int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const firmwareUpdateCols = "id, endpoint_id, firmware_id, state, result, active, operation_ids, created_at, updated_at"

func scanFirmwareUpdate(r rowScanner) (FirmwareUpdate, error) {
	var u FirmwareUpdate
	var ops string
	var created, updated int64
	if err := r.Scan(&u.ID, &u.EndpointID, &u.FirmwareID, &u.State, &u.Result, &u.Active, &ops, &created, &updated); err != nil {
		return FirmwareUpdate{}, err
	}
	if err := json.Unmarshal([]byte(ops), &u.OperationIDs); err != nil {
		return FirmwareUpdate{}, fmt.Errorf("firmware update %d: operation_ids: %w", u.ID, err)
	}
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

// CreateFirmwareUpdate starts an update: it stores u's EndpointID,
// FirmwareID, State, Result and OperationIDs as an active update. An
// endpoint that already has an active update is ErrConflict, and so is a
// missing endpoint or image.
func (s *Store) CreateFirmwareUpdate(ctx context.Context, u FirmwareUpdate) (FirmwareUpdate, error) {
	op := fmt.Sprintf("create firmware update of endpoint %d", u.EndpointID)
	if u.State == "" {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: empty state", op)
	}
	now := millis(s.now())
	out, err := scanFirmwareUpdate(s.wdb.QueryRowContext(ctx, `
		INSERT INTO firmware_update (endpoint_id, firmware_id, state, result, active, operation_ids, created_at, updated_at)
		VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6) RETURNING `+firmwareUpdateCols,
		u.EndpointID, u.FirmwareID, u.State, u.Result, operationIDsJSON(u.OperationIDs), now))
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

// FirmwareUpdateFilter selects updates for ListFirmwareUpdates; zero
// fields do not restrict.
type FirmwareUpdateFilter struct {
	EndpointID int64
	FirmwareID int64
	ActiveOnly bool
	Limit      int // <= 0: 100
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
	if f.ActiveOnly {
		where = append(where, "active")
	}
	q := "SELECT " + firmwareUpdateCols + " FROM firmware_update"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(limitOr(f.Limit, 100))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list firmware updates", err)
	}
	out, err := collect(rows, scanFirmwareUpdate)
	return out, wrap("list firmware updates", err)
}

// UpdateFirmwareUpdate stores u's State, Result, Active and OperationIDs
// for the update u.ID and returns it. Re-activating an update while the
// endpoint has another active one is ErrConflict.
func (s *Store) UpdateFirmwareUpdate(ctx context.Context, u FirmwareUpdate) (FirmwareUpdate, error) {
	op := fmt.Sprintf("update firmware update %d", u.ID)
	if u.State == "" {
		return FirmwareUpdate{}, fmt.Errorf("store: %s: empty state", op)
	}
	out, err := scanFirmwareUpdate(s.wdb.QueryRowContext(ctx, `
		UPDATE firmware_update SET state = $2, result = $3, active = $4, operation_ids = $5, updated_at = $6
		WHERE id = $1 RETURNING `+firmwareUpdateCols,
		u.ID, u.State, u.Result, u.Active, operationIDsJSON(u.OperationIDs), millis(s.now())))
	return out, wrap(op, err)
}

// DeleteFirmwareUpdate removes an update record.
func (s *Store) DeleteFirmwareUpdate(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete firmware update %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM firmware_update WHERE id = $1", id)))
}
