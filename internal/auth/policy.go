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

	// OwnTokens: list, create and revoke one's own API tokens. A global
	// administrator has it, and so does every user granted some site
	// permission in some site; it reaches no device (its Scope is empty).
	OwnTokens Permission = "own_tokens"

	// ManageCredentials: list, add and remove device DTLS credentials.
	// Whoever holds it can impersonate any device.
	ManageCredentials Permission = "manage_credentials"
	// ManageUsers: users, their API tokens, and the audit log.
	ManageUsers Permission = "manage_users"
)

// Permissions lists every permission, Public first.
func Permissions() []Permission {
	return []Permission{Public, ViewOverview, ViewData, ViewFirmware, ManageFirmware, PerformOperations,
		ManageDevices, OwnTokens, ManageCredentials, ManageUsers}
}

// Known reports whether p is one of Permissions.
func Known(p Permission) bool { return slices.Contains(Permissions(), p) }

// SitePermissions are the permissions a site membership can grant, in
// the order the flags are shown: a Site Admin has all of them in its
// site, a Site User those its flags name.
func SitePermissions() []Permission {
	return []Permission{ViewOverview, ViewData, ViewFirmware, ManageFirmware, PerformOperations, ManageDevices}
}

// Flags is a set of site permissions, one bit per SitePermissions entry
// (bit 0 is ViewOverview). It is stored as an integer with a membership.
type Flags uint32

// AllFlags holds every site permission: a Site Admin's.
const AllFlags Flags = 1<<6 - 1

// FlagOf returns the flag of a site permission, 0 for any other.
func FlagOf(p Permission) Flags {
	if i := slices.Index(SitePermissions(), p); i >= 0 {
		return 1 << i
	}
	return 0
}

// FlagsOf returns the flags of ps; an unknown or global permission is an
// error naming it.
func FlagsOf(ps ...Permission) (Flags, error) {
	var f Flags
	for _, p := range ps {
		b := FlagOf(p)
		if b == 0 {
			return 0, fmt.Errorf("auth: %q is not a site permission (want one of %v)", p, SitePermissions())
		}
		f |= b
	}
	return f, nil
}

// Has reports whether f holds p.
func (f Flags) Has(p Permission) bool { b := FlagOf(p); return b != 0 && f&b == b }

// Permissions lists the permissions in f, in SitePermissions order.
func (f Flags) Permissions() []Permission {
	var out []Permission
	for _, p := range SitePermissions() {
		if f.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// SiteRole is a user's role in one site.
type SiteRole string

// The site roles.
const (
	// SiteAdmin has every site permission in the site.
	SiteAdmin SiteRole = "admin"
	// SiteUser has the site permissions its membership's flags name.
	SiteUser SiteRole = "user"
)

// Grant is what one membership grants its user in one site.
type Grant struct {
	SiteID int64
	Role   SiteRole
	Flags  Flags // a SiteUser's; ignored for a SiteAdmin
}

// Allows reports whether the grant gives p in its site.
func (g Grant) Allows(p Permission) bool {
	switch g.Role {
	case SiteAdmin:
		return FlagOf(p) != 0
	case SiteUser:
		return g.Flags.Has(p)
	}
	return false
}

// Subject is the user a decision is about, with the grants of its
// memberships (ignored for a global administrator, who has every right
// everywhere, unassigned devices included).
type Subject struct {
	UserID   int64
	Name     string
	Admin    bool
	Disabled bool
	Grants   []Grant
}

// ErrForbidden is matched by the error of a refused decision.
var ErrForbidden = errors.New("auth: forbidden")

// Authorize returns nil when s may do p somewhere: the route-level
// decision. The rule: Public is allowed to everyone; a disabled user may
// do nothing else; a global administrator may do everything; a site
// permission is allowed to a user with a grant allowing it in at least
// one site (which devices it reaches is Scope's decision); OwnTokens to
// a user with a grant allowing any site permission; the global
// permissions (credentials, users) belong to global administrators only.
// A refusal matches ErrForbidden and names the user and the permission;
// an unknown permission is always refused.
func Authorize(s Subject, p Permission) error {
	switch {
	case p == Public:
		return nil
	case !Known(p):
		return fmt.Errorf("%w: unknown permission %q", ErrForbidden, p)
	case s.Disabled:
		return fmt.Errorf("%w: user %q is disabled", ErrForbidden, s.Name)
	case s.Admin:
		return nil
	case p == OwnTokens:
		for _, g := range s.Grants {
			if g.Role == SiteAdmin || g.Flags&AllFlags != 0 {
				return nil
			}
		}
		return fmt.Errorf("%w: user %q lacks permission %s: it has no site permission anywhere", ErrForbidden, s.Name, p)
	case FlagOf(p) == 0:
		return fmt.Errorf("%w: user %q lacks permission %s (global administrators only)", ErrForbidden, s.Name, p)
	}
	for _, g := range s.Grants {
		if g.Allows(p) {
			return nil
		}
	}
	return fmt.Errorf("%w: user %q lacks permission %s in every site", ErrForbidden, s.Name, p)
}

// Scope is a set of devices by site: the devices a user may do one thing
// to. All is every device; otherwise the devices of Sites, and those in
// no site when Unassigned.
type Scope struct {
	All        bool
	Sites      []int64
	Unassigned bool
}

// Everything is the scope of every device.
var Everything = Scope{All: true}

// Scope returns the devices s may do p to: every device for a global
// administrator (and for Public); for another enabled user the sites
// whose grant allows p; nothing for a disabled user.
func (s Subject) Scope(p Permission) Scope {
	switch {
	case p == Public:
		return Everything
	case s.Disabled || !Known(p) || p == OwnTokens:
		return Scope{}
	case s.Admin:
		return Everything
	}
	sc := Scope{Sites: []int64{}}
	for _, g := range s.Grants {
		if g.Allows(p) {
			sc.Sites = append(sc.Sites, g.SiteID)
		}
	}
	return sc
}

// Contains reports whether a device of the site (0: no site) is in sc.
func (sc Scope) Contains(siteID int64) bool {
	switch {
	case sc.All:
		return true
	case siteID == 0:
		return sc.Unassigned
	}
	return slices.Contains(sc.Sites, siteID)
}

// Empty reports whether sc holds no device at all.
func (sc Scope) Empty() bool { return !sc.All && !sc.Unassigned && len(sc.Sites) == 0 }

// View is the site switcher's choice: which part of what a user may see
// a page shows.
type View struct {
	// Site is the one site shown; 0 with Unassigned false means all the
	// user's sites.
	Site int64
	// Unassigned shows the devices in no site (global administrators).
	Unassigned bool
}

// Narrow returns the part of sc that v selects: the one site (nothing
// when sc lacks it), the unassigned devices (nothing unless sc holds
// them), or sc itself.
func (sc Scope) Narrow(v View) Scope {
	switch {
	case v.Unassigned:
		return Scope{Sites: []int64{}, Unassigned: sc.All || sc.Unassigned}
	case v.Site != 0:
		if sc.Contains(v.Site) {
			return Scope{Sites: []int64{v.Site}}
		}
		return Scope{Sites: []int64{}}
	}
	return sc
}

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
