package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// Endpoint is one LwM2M client, known by its endpoint name.
type Endpoint struct {
	ID     int64
	Name   string // e.g. "urn:imei:351234567890123"
	SiteID int64  // 0: no site
	// RegistrationID is the location of the live registration ("rd/<id>");
	// empty while offline.
	RegistrationID string
	Online         bool
	RegisteredAt   time.Time // last Register; zero if never registered
	LastSeen       time.Time // last Register or Update: the lifetime runs from it (Expiry); zero if never registered
	Address        string    // last source address, "ip:port"
	Lifetime       time.Duration
	Binding        string // "U", "UQ", "S", ...
	LwM2MVersion   string // "1.0", "1.1", "1.2"
	SMSNumber      string
	QueueMode      bool
	ObjectLinks    string // the registration's link-format payload
	// Transport is what the device last talked over to Register, Update
	// or move its registration to a new address; requests to the device go
	// back over it, also after a restart.
	Transport       Transport
	FirmwareVersion string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Transport is how a device reaches the server.
type Transport string

// The transports.
const (
	TransportUDP  Transport = "udp"  // plain CoAP
	TransportDTLS Transport = "dtls" // CoAP over DTLS
)

// orUDP returns t, or TransportUDP when t is empty, and an error for a
// transport that is neither.
func (t Transport) orUDP() (Transport, error) {
	switch t {
	case "":
		return TransportUDP, nil
	case TransportUDP, TransportDTLS:
		return t, nil
	}
	return "", fmt.Errorf("invalid transport %q", string(t))
}

// Expiry returns when the registration lapses: LastSeen plus Lifetime.
func (e Endpoint) Expiry() time.Time { return e.LastSeen.Add(e.Lifetime) }

const endpointCols = "id, name, site_id, registration_id, online, registered_at, last_seen, address, " +
	"lifetime, binding, lwm2m_version, sms_number, queue_mode, object_links, transport, firmware_version, " +
	"created_at, updated_at"

func scanEndpoint(r rowScanner) (Endpoint, error) {
	var e Endpoint
	var site sql.NullInt64
	var regID sql.NullString
	var registered, seen sql.NullInt64
	var lifetime, created, updated int64
	err := r.Scan(&e.ID, &e.Name, &site, &regID, &e.Online, &registered, &seen, &e.Address,
		&lifetime, &e.Binding, &e.LwM2MVersion, &e.SMSNumber, &e.QueueMode, &e.ObjectLinks,
		&e.Transport, &e.FirmwareVersion, &created, &updated)
	if err != nil {
		return Endpoint{}, err
	}
	e.SiteID = site.Int64
	e.RegistrationID = regID.String
	e.RegisteredAt = fromNullMillis(registered)
	e.LastSeen = fromNullMillis(seen)
	e.Lifetime = time.Duration(lifetime) * time.Second
	e.CreatedAt = fromMillis(created)
	e.UpdatedAt = fromMillis(updated)
	return e, nil
}

// EndpointRegistration is what a Register request establishes.
type EndpointRegistration struct {
	Name           string
	RegistrationID string
	Address        string
	Lifetime       time.Duration // stored in whole seconds
	Binding        string
	LwM2MVersion   string
	SMSNumber      string
	QueueMode      bool
	ObjectLinks    string
	Transport      Transport // "" is TransportUDP
	Time           time.Time // when it registered; zero means now
}

// UpsertEndpointRegistration records a Register: it creates the endpoint
// named r.Name or updates it, and marks it online with the registration's
// id, address, lifetime, binding, version, SMS number, queue mode, object
// links and transport; registered_at and last_seen become r.Time. Site and
// firmware version are kept. A registration id held by another endpoint is
// ErrConflict.
func (s *Store) UpsertEndpointRegistration(ctx context.Context, r EndpointRegistration) (Endpoint, error) {
	op := fmt.Sprintf("register endpoint %q", r.Name)
	args, err := registerArgs(r, s.now)
	if err != nil {
		return Endpoint{}, fmt.Errorf("store: %s: %w", op, err)
	}
	if args, err = s.bulkArgs(bulkEndpoint, 1, args); err != nil {
		return Endpoint{}, fmt.Errorf("store: %s: %w", op, err)
	}
	e, err := scanEndpoint(s.wdb.QueryRowContext(ctx, s.bulkSQL(bulkEndpoint, 1), args...))
	return e, wrap(op, err)
}

// registerCols are the columns of a Register's endpoint row (bulkEndpoint);
// registerArgs gives their values.
const registerCols = "name, registration_id, online, registered_at, last_seen, address, lifetime, " +
	"binding, lwm2m_version, sms_number, queue_mode, object_links, transport, created_at, updated_at"

const endpointNCols = 15

// registerArgs returns the endpoint row of r (registerCols), with now() as
// the time when r has none, or an error for an empty name or an invalid
// transport.
func registerArgs(r EndpointRegistration, now func() time.Time) ([]any, error) {
	if r.Name == "" {
		return nil, errors.New("empty endpoint name")
	}
	tr, err := r.Transport.orUDP()
	if err != nil {
		return nil, err
	}
	t := r.Time
	if t.IsZero() {
		t = now()
	}
	ms := millis(t)
	return []any{r.Name, nullText(r.RegistrationID), true, ms, ms, r.Address, int64(r.Lifetime / time.Second),
		r.Binding, r.LwM2MVersion, r.SMSNumber, r.QueueMode, r.ObjectLinks, tr, ms, ms}, nil
}

// EndpointUpdate is what a registration Update request changes. Nil fields
// are left as they are.
type EndpointUpdate struct {
	Address     string // "" keeps the stored address
	Lifetime    *time.Duration
	Binding     *string
	SMSNumber   *string
	QueueMode   *bool
	ObjectLinks *string
	Transport   *Transport
	Time        time.Time // when it updated; zero means now
}

// UpdateEndpointRegistration records a registration Update of the endpoint
// with the given id: it applies the fields set in u, sets last_seen to
// u.Time and marks the endpoint online.
func (s *Store) UpdateEndpointRegistration(ctx context.Context, id int64, u EndpointUpdate) (Endpoint, error) {
	op := fmt.Sprintf("update endpoint %d registration", id)
	args, err := updateArgs(id, u, s.now())
	if err != nil {
		return Endpoint{}, fmt.Errorf("store: %s: %w", op, err)
	}
	e, err := scanEndpoint(s.wdb.QueryRowContext(ctx, updateSQL+" RETURNING "+endpointCols, args...))
	return e, wrap(op, err)
}

// updateSQL is UpdateEndpointRegistration's statement; updateArgs gives
// its arguments.
const updateSQL = `
	UPDATE endpoint SET
		online = TRUE, last_seen = $2, updated_at = $2,
		address = COALESCE(NULLIF($3, ''), address),
		lifetime = COALESCE($4, lifetime),
		binding = COALESCE($5, binding),
		sms_number = COALESCE($6, sms_number),
		queue_mode = COALESCE($7, queue_mode),
		object_links = COALESCE($8, object_links),
		transport = COALESCE($9, transport)
	WHERE id = $1`

// updateLiveCond restricts updateSQL to the endpoint's live registration,
// named by a tenth argument.
const updateLiveCond = " AND online AND registration_id = $10"

// updateArgs returns the arguments of updateSQL for u on the endpoint
// with the given id, with now as the time when u has none, or an error
// for an invalid transport.
func updateArgs(id int64, u EndpointUpdate, now time.Time) ([]any, error) {
	var transport any
	if u.Transport != nil {
		if tr := *u.Transport; tr != TransportUDP && tr != TransportDTLS {
			return nil, fmt.Errorf("invalid transport %q", string(tr))
		}
		transport = *u.Transport
	}
	t := u.Time
	if t.IsZero() {
		t = now
	}
	var lifetime any
	if u.Lifetime != nil {
		lifetime = int64(*u.Lifetime / time.Second)
	}
	optText := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	var queue any
	if u.QueueMode != nil {
		queue = *u.QueueMode
	}
	return []any{id, millis(t), u.Address, lifetime, optText(u.Binding), optText(u.SMSNumber), queue,
		optText(u.ObjectLinks), transport}, nil
}

// GetEndpoint returns the endpoint with the given name.
func (s *Store) GetEndpoint(ctx context.Context, name string) (Endpoint, error) {
	e, err := scanEndpoint(s.rdb.QueryRowContext(ctx, "SELECT "+endpointCols+" FROM endpoint WHERE name = $1", name))
	return e, wrap(fmt.Sprintf("get endpoint %q", name), err)
}

// GetEndpointByID returns the endpoint with the given id.
func (s *Store) GetEndpointByID(ctx context.Context, id int64) (Endpoint, error) {
	e, err := scanEndpoint(s.rdb.QueryRowContext(ctx, "SELECT "+endpointCols+" FROM endpoint WHERE id = $1", id))
	return e, wrap(fmt.Sprintf("get endpoint %d", id), err)
}

// GetEndpointByRegistrationID returns the endpoint whose live registration
// has the given id; ErrNotFound when none has (or it went offline).
func (s *Store) GetEndpointByRegistrationID(ctx context.Context, regID string) (Endpoint, error) {
	e, err := scanEndpoint(s.rdb.QueryRowContext(ctx,
		"SELECT "+endpointCols+" FROM endpoint WHERE registration_id = $1", regID))
	return e, wrap(fmt.Sprintf("get endpoint by registration %q", regID), err)
}

// EndpointFilter selects endpoints for ListEndpoints. The zero filter
// selects all.
type EndpointFilter struct {
	Online *bool  // nil: both
	SiteID *int64 // nil: any site; pointer to 0: endpoints without a site
	// SiteIDs, when non-nil, restricts the result to endpoints of these
	// sites (an empty non-nil slice selects nothing): the sites a user may
	// see.
	SiteIDs []int64
	// Scope, when non-nil, restricts the result to the endpoints in it
	// (see auth.Scope; the zero Scope selects nothing).
	Scope    *auth.Scope
	NameLike string // substring of the name, case-insensitive for ASCII
	Limit    int    // <= 0: 100
	Offset   int
	// Prefix, Transport and FirmwareVersion, when set, select the
	// endpoints whose name starts with Prefix, that last talked over
	// Transport, that report FirmwareVersion. Object, when set, selects
	// those whose registration announced that object.
	Prefix          string
	Transport       string
	FirmwareVersion string
	Object          *uint16
	// After, when set, starts the page after the endpoint of that name
	// (keyset paging; the count ignores it).
	After string
}

// ListEndpoints returns one page of the endpoints matching f, ordered by
// name, and the number of all matching endpoints.
func (s *Store) ListEndpoints(ctx context.Context, f EndpointFilter) ([]Endpoint, int, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Online != nil {
		where = append(where, "online = "+arg(*f.Online))
	}
	if f.SiteID != nil {
		if *f.SiteID == 0 {
			where = append(where, "site_id IS NULL")
		} else {
			where = append(where, "site_id = "+arg(*f.SiteID))
		}
	}
	if f.SiteIDs != nil {
		if len(f.SiteIDs) == 0 {
			return nil, 0, nil
		}
		ph := make([]string, len(f.SiteIDs))
		for i, id := range f.SiteIDs {
			ph[i] = arg(id)
		}
		where = append(where, "site_id IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Scope != nil {
		if c := scopeCond(*f.Scope, "site_id", arg); c != "" {
			where = append(where, c)
		}
	}
	if f.NameLike != "" {
		where = append(where, `LOWER(name) LIKE `+arg(likeContains(strings.ToLower(f.NameLike)))+` ESCAPE '\'`)
	}
	where = append(where, f.moreWhere(arg)...)
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM endpoint"+cond, args...).Scan(&total); err != nil {
		return nil, 0, wrap("list endpoints", err)
	}
	if f.After != "" {
		cond = " WHERE " + strings.Join(append(where, "name > "+arg(f.After)), " AND ")
	}
	q := "SELECT " + endpointCols + " FROM endpoint" + cond + " ORDER BY name LIMIT " + arg(limitOr(f.Limit, 100)) +
		" OFFSET " + arg(max(f.Offset, 0))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, wrap("list endpoints", err)
	}
	out, err := collect(rows, scanEndpoint)
	if err != nil {
		return nil, 0, wrap("list endpoints", err)
	}
	return out, total, nil
}

// TouchEndpoint moves the endpoint's last_seen, from which its
// registration's lifetime runs, to lastSeen and records addr ("" keeps the
// stored address). It does not bring an offline endpoint back online: that
// takes a Register.
func (s *Store) TouchEndpoint(ctx context.Context, id int64, addr string, lastSeen time.Time) error {
	return wrap(fmt.Sprintf("touch endpoint %d", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE endpoint SET last_seen = $2, address = COALESCE(NULLIF($3, ''), address) WHERE id = $1",
		id, millis(lastSeen), addr)))
}

// SetEndpointOffline marks the endpoint offline (De-register) and clears
// its registration id.
func (s *Store) SetEndpointOffline(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("set endpoint %d offline", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE endpoint SET online = FALSE, registration_id = NULL, updated_at = $2 WHERE id = $1",
		id, millis(s.now()))))
}

// ExpireEndpoints is ExpireRegistrations without history values.
func (s *Store) ExpireEndpoints(ctx context.Context, now time.Time) ([]Endpoint, error) {
	return s.ExpireRegistrations(ctx, now, nil)
}

// SetEndpointSite moves the endpoint to a site (0: no site).
func (s *Store) SetEndpointSite(ctx context.Context, id, siteID int64) error {
	return wrap(fmt.Sprintf("set endpoint %d site", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE endpoint SET site_id = $2, updated_at = $3 WHERE id = $1", id, nullID(siteID), millis(s.now()))))
}

// SetEndpointFirmwareVersion records the firmware version the endpoint
// reports (3/0/3).
func (s *Store) SetEndpointFirmwareVersion(ctx context.Context, id int64, version string) error {
	return wrap(fmt.Sprintf("set endpoint %d firmware version", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE endpoint SET firmware_version = $2, updated_at = $3 WHERE id = $1", id, version, millis(s.now()))))
}

// DeleteEndpoint removes the endpoint with all its values, events,
// operations and firmware updates.
func (s *Store) DeleteEndpoint(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete endpoint %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM endpoint WHERE id = $1", id)))
}
