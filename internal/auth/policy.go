package auth

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Permission is something a request may need the right to do. Every route
// of every operator-facing surface (the REST API, the dashboard) declares
// the one permission it needs; Authorize decides whether a user has it.
//
// The six site permissions are those the site roles will grant per site
// (Site Admin, Site User with flags); the global ones stay with global
// administrators.
type Permission string

// The permissions.
const (
	// Public routes need no user at all: the OpenAPI document and schemas.
	Public Permission = "public"

	// ViewOverview: list endpoints and see their state.
	ViewOverview Permission = "view_overview"
	// ViewData: an endpoint's values, history, events, observations,
	// queued operations, object definitions and the live event stream.
	ViewData Permission = "view_data"
	// ViewFirmware: firmware images and update state.
	ViewFirmware Permission = "view_firmware"
	// ManageFirmware: upload images, start and cancel updates.
	ManageFirmware Permission = "manage_firmware"
	// PerformOperations: device operations run now (read, write, execute,
	// observe, ...) and queued ones, and cancelling queued ones.
	PerformOperations Permission = "perform_operations"
	// ManageDevices: add, remove and re-assign endpoints.
	ManageDevices Permission = "manage_devices"

	// ManageCredentials: list, add and remove device DTLS credentials.
	// Whoever holds it can impersonate any device.
	ManageCredentials Permission = "manage_credentials"
	// ManageUsers: users, their API tokens, and the audit log.
	ManageUsers Permission = "manage_users"
)

// Permissions lists every permission, Public first.
func Permissions() []Permission {
	return []Permission{Public, ViewOverview, ViewData, ViewFirmware, ManageFirmware, PerformOperations,
		ManageDevices, ManageCredentials, ManageUsers}
}

// Known reports whether p is one of Permissions.
func Known(p Permission) bool { return slices.Contains(Permissions(), p) }

// nonAdmin is what an enabled user without the administrator flag may do
// until sites and roles exist: see everything about devices and operate
// them, but change nothing about who may talk to the server (credentials,
// users, tokens) or what runs on the devices (firmware).
var nonAdmin = map[Permission]bool{
	Public:            true,
	ViewOverview:      true,
	ViewData:          true,
	PerformOperations: true,
}

// Subject is the user a decision is about.
type Subject struct {
	UserID   int64
	Name     string
	Admin    bool
	Disabled bool
}

// ErrForbidden is matched by the error of a refused decision.
var ErrForbidden = errors.New("auth: forbidden")

// Authorize returns nil when s may do p. The rule: Public is allowed to
// everyone; a disabled user may do nothing else; an administrator may do
// everything; any other user may do what NonAdminAllowed reports. A
// refusal matches ErrForbidden and names the user and the permission; an
// unknown permission is always refused.
func Authorize(s Subject, p Permission) error {
	switch {
	case p == Public:
		return nil
	case !Known(p):
		return fmt.Errorf("%w: unknown permission %q", ErrForbidden, p)
	case s.Disabled:
		return fmt.Errorf("%w: user %q is disabled", ErrForbidden, s.Name)
	case s.Admin, nonAdmin[p]:
		return nil
	}
	return fmt.Errorf("%w: user %q lacks permission %s (administrators only)", ErrForbidden, s.Name, p)
}

// NonAdminAllowed reports whether an enabled user without the
// administrator flag has p: the policy table, for documentation and tests.
func NonAdminAllowed(p Permission) bool { return nonAdmin[p] }

// DenialLimiter decides which refusals are recorded (in the audit log and
// the server log), so that a client looping on a refused request cannot
// flood them: per user, at most Burst refusals are recorded in each Window
// (a fixed window that starts with the user's first refusal); the others
// are counted, and the count is reported with the user's next recorded
// refusal. It is safe for concurrent use. Its memory holds one small entry
// per user refused recently.
type DenialLimiter struct {
	burst  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	users map[int64]*denials
}

type denials struct {
	start      time.Time
	recorded   int
	suppressed int
}

// NewDenialLimiter returns a limiter recording at most burst refusals per
// user per window; burst < 1 means 1, now nil means time.Now.
func NewDenialLimiter(burst int, window time.Duration, now func() time.Time) *DenialLimiter {
	if burst < 1 {
		burst = 1
	}
	if now == nil {
		now = time.Now
	}
	return &DenialLimiter{burst: burst, window: window, now: now, users: map[int64]*denials{}}
}

// Record is called for each refusal of the user's requests. It reports
// whether this refusal is to be recorded and, if so, how many refusals of
// the user were not recorded since the last one that was.
func (l *DenialLimiter) Record(userID int64) (record bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.users[userID]
	if d == nil {
		l.prune(now)
		d = &denials{start: now}
		l.users[userID] = d
	}
	if now.Sub(d.start) >= l.window {
		d.start, d.recorded = now, 0
	}
	if d.recorded >= l.burst {
		d.suppressed++
		return false, 0
	}
	d.recorded++
	suppressed, d.suppressed = d.suppressed, 0
	return true, suppressed
}

// prune forgets users whose window ended with nothing left to report,
// once the map has grown; the caller holds mu.
func (l *DenialLimiter) prune(now time.Time) {
	if len(l.users) < 1024 {
		return
	}
	for id, d := range l.users {
		if d.suppressed == 0 && now.Sub(d.start) >= l.window {
			delete(l.users, id)
		}
	}
}
