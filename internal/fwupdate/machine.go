package fwupdate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// The states of an update (store.FirmwareUpdate.State). Pending,
// Downloading and Updating are active; the others are final.
const (
	StatePending     = "pending"     // the device's delivery options are being read
	StateDownloading = "downloading" // the package is on its way (Package URI written, or pushed)
	StateUpdating    = "updating"    // Execute /5/0/2 sent or queued; waiting for the device to come back
	StateSucceeded   = "succeeded"   // the device runs the image's version
	StateFailed      = "failed"      // Error says why; ResultCode the device's Update Result, if any
	StateCancelled   = "cancelled"   // by an operator
)

// States lists the states in the order an update goes through them.
var States = []string{StatePending, StateDownloading, StateUpdating, StateSucceeded, StateFailed, StateCancelled}

// Methods and protocols of Options and of the stored update.
const (
	MethodAuto = ""
	MethodPull = "pull"
	MethodPush = "push"

	ProtocolAuto  = ""
	ProtocolCoAP  = "coap"
	ProtocolCoAPS = "coaps"
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
)

// Object 5 and 3 paths the machine uses.
var (
	pathFirmware  = lwm2m.NewPath(5, 0)
	pathPackage   = lwm2m.NewPath(5, 0, 0)
	pathURI       = lwm2m.NewPath(5, 0, 1)
	pathUpdate    = lwm2m.NewPath(5, 0, 2)
	pathState     = lwm2m.NewPath(5, 0, 3)
	pathResult    = lwm2m.NewPath(5, 0, 5)
	pathProtocols = lwm2m.NewPath(5, 0, 8)
	pathDelivery  = lwm2m.NewPath(5, 0, 9)
	pathVersion   = lwm2m.NewPath(3, 0, 3)
)

// Firmware Update State (/5/0/3) values.
const (
	deviceIdle        = 0
	deviceDownloading = 1
	deviceDownloaded  = 2
	deviceUpdating    = 3
)

// ResultMeaning is what a Firmware Update Result (/5/0/5) value means
// (LwM2M 1.1 Appendix E.6).
func ResultMeaning(code int) string {
	switch code {
	case 0:
		return "initial value"
	case 1:
		return "firmware updated successfully"
	case 2:
		return "not enough flash memory for the new firmware package"
	case 3:
		return "out of RAM during download"
	case 4:
		return "connection lost during download"
	case 5:
		return "integrity check failure for the new firmware package"
	case 6:
		return "unsupported package type"
	case 7:
		return "invalid URI"
	case 8:
		return "firmware update failed"
	case 9:
		return "unsupported protocol"
	}
	return fmt.Sprintf("unknown update result %d", code)
}

// SameVersion compares firmware versions leniently: case, a leading "v"
// or "V", surrounding space and "_" against "-" do not matter.
func SameVersion(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') {
			s = s[1:]
		}
		return strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	}
	return norm(a) == norm(b)
}

// The roles of the operations an update queues (detail.Ops keys).
const (
	roleReadInfo      = "read_info"      // Read /5/0: protocol support, delivery method, state, result
	roleObserveState  = "observe_state"  // Observe /5/0/3
	roleObserveResult = "observe_result" // Observe /5/0/5
	roleWriteURI      = "write_uri"      // Write /5/0/1
	roleExecute       = "execute"        // Execute /5/0/2
	roleReadState     = "read_state"     // Read /5/0 while downloading or updating (a poll)
	roleReadVersion   = "read_version"   // Read /3/0/3 once the device is back
)

// detail is the machine's bookkeeping, stored as JSON on the update
// (store.FirmwareUpdate.Detail).
type detail struct {
	// Ops are the operations queued, by role; a role queued again names
	// the newest.
	Ops map[string]int64 `json:"ops,omitempty"`
	// Observed lists the paths this update observes (and cancels the
	// observation of when it ends).
	Observed []string `json:"observed,omitempty"`
	// Pushed says the package was written to /5/0/0; PushFailures counts
	// the pushes cut short (timeouts, lost connection).
	Pushed       bool `json:"pushed,omitempty"`
	PushFailures int  `json:"push_failures,omitempty"`
	// Option* are what Start was asked for.
	OptionMethod   string `json:"option_method,omitempty"`
	OptionProtocol string `json:"option_protocol,omitempty"`
}

// value is a value of a path as last known, and when it was received.
type value struct {
	Value lwm2m.Value
	At    time.Time
}

// facts is what the machine knows when it decides: the update, the
// operations it queued, the latest values of the paths it watches (from
// notifications or its reads), and the device's registration.
type facts struct {
	Update store.FirmwareUpdate
	Detail detail
	Now    time.Time
	// Ops are the operations of Detail.Ops that exist, by role.
	Ops map[string]store.Operation
	// Values are the latest values of /5/0/x and /3/0/3.
	Values map[lwm2m.Path]value
	// Online says the device is registered; RegisteredAt is the time of
	// its last Register.
	Online       bool
	RegisteredAt time.Time
	// DTLS says the device registered over DTLS.
	DTLS bool
	// Reachable says a request may be sent to it now (Queue.Reachable).
	Reachable bool
	// Observing lists the paths the device has observations of.
	Observing map[lwm2m.Path]bool
	// Offered are the download URL bases the server has, by protocol.
	Offered map[string]string
	// Filename is the image's file name; ImageSize its size.
	Filename string
	// Timeouts per state, and how often to read the device's state when
	// nothing arrives.
	DownloadTimeout time.Duration
	UpdateTimeout   time.Duration
	ReadInterval    time.Duration
	// MaxPushFailures bounds Detail.PushFailures.
	MaxPushFailures int
}

// queued is an operation the machine wants queued, in its role.
type queued struct {
	Role string
	Op   devmgmt.Operation
}

// decision is what the machine does next: the update as it is to be
// stored (State, Method, Protocol, PackageURI, ResultCode, Error,
// Deadline, Detail's flags) and the work to do for that.
type decision struct {
	Update store.FirmwareUpdate
	Detail detail
	// Changed says the update changed state.
	Changed bool
	// Queue are the operations to queue, in order.
	Queue []queued
	// Push says the step should write the package to /5/0/0 now.
	Push bool
}

// value returns the value of p received at or after since.
func (f *facts) valueSince(p lwm2m.Path, since time.Time) (lwm2m.Value, time.Time, bool) {
	v, ok := f.Values[p]
	if !ok || v.At.Before(since) {
		return lwm2m.Value{}, time.Time{}, false
	}
	return v.Value, v.At, true
}

// opStatus is the status of the operation of role; "" when none.
func (f *facts) opStatus(role string) store.OperationStatus {
	op, ok := f.Ops[role]
	if !ok {
		return ""
	}
	return op.Status
}

// pendingOp says an operation of role is queued or being sent.
func (f *facts) pendingOp(role string) bool {
	s := f.opStatus(role)
	return s == store.OperationQueued || s == store.OperationSending
}

// decide is the state machine: from what is known, what to do next. It
// is a pure function of f.
func decide(f facts) decision {
	d := decision{Update: f.Update, Detail: f.Detail}
	u := &d.Update
	if !u.Active {
		return d
	}
	enter := func(state string, deadline time.Duration) {
		u.State, u.StateAt, d.Changed = state, f.Now, true
		u.Deadline = time.Time{}
		if deadline > 0 {
			u.Deadline = f.Now.Add(deadline)
		}
	}
	fail := func(code int, why string) decision {
		enter(StateFailed, 0)
		u.Active, u.FinishedAt = false, f.Now
		u.ResultCode, u.Error = code, why
		u.Result = why
		if code >= 2 {
			u.Result = ResultMeaning(code)
		}
		d.Queue = nil
		d.Push = false
		return d
	}
	opFailed := func(role, what string) (decision, bool) {
		if f.opStatus(role) != store.OperationFailed {
			return decision{}, false
		}
		op := f.Ops[role]
		why := what + " failed"
		if op.ResultError != "" {
			why += ": " + op.ResultError
		}
		return fail(0, why), true
	}
	add := func(role string, op devmgmt.Operation) {
		d.Queue = append(d.Queue, queued{Role: role, Op: op})
	}
	observe := func() {
		for _, p := range []lwm2m.Path{pathState, pathResult} {
			if f.Observing[p] || slices.Contains(d.Detail.Observed, p.String()) {
				continue
			}
			role := roleObserveState
			if p == pathResult {
				role = roleObserveResult
			}
			add(role, devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{p}})
			d.Detail.Observed = append(d.Detail.Observed, p.String())
		}
	}
	// A result code 2..9 reported since the current state began ends the
	// update, whatever the state.
	resultSince := func(since time.Time) (int, time.Time, bool) {
		v, at, ok := f.valueSince(pathResult, since)
		if !ok {
			return 0, time.Time{}, false
		}
		return int(v.IntValue()), at, true
	}
	if u.State != StatePending {
		if code, _, ok := resultSince(u.StateAt); ok && code >= 2 {
			return fail(code, ResultMeaning(code))
		}
	}
	switch u.State {
	case StatePending:
		if !u.Deadline.IsZero() && !f.Now.Before(u.Deadline) {
			return fail(0, "timed out waiting for the device to start the download")
		}
		needInfo := f.Detail.OptionMethod == MethodAuto ||
			(f.Detail.OptionMethod == MethodPull && f.Detail.OptionProtocol == ProtocolAuto)
		var protocols []int
		delivery := -1
		if needInfo {
			switch f.opStatus(roleReadInfo) {
			case "":
				add(roleReadInfo, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pathFirmware}})
				return d
			case store.OperationQueued, store.OperationSending:
				return d
			case store.OperationConfirmed:
				since := f.Ops[roleReadInfo].CreatedAt
				if v, ok := f.Values[pathDelivery]; ok && !v.At.Before(since) {
					delivery = int(v.Value.IntValue())
				}
				for p, v := range f.Values {
					if p.Depth() == 4 && p.Parent() == pathProtocols && !v.At.Before(since) {
						protocols = append(protocols, int(v.Value.IntValue()))
					}
				}
				if v, ok := f.Values[pathProtocols]; ok && !v.At.Before(since) {
					protocols = append(protocols, int(v.Value.IntValue()))
				}
				slices.Sort(protocols)
				protocols = slices.Compact(protocols)
			}
			// A read that failed for good leaves the device's options
			// unknown: the defaults apply.
		}
		method, protocol, why := choose(f.Detail.OptionMethod, f.Detail.OptionProtocol, protocols, delivery, f.DTLS, f.Offered)
		if why != "" {
			return fail(0, why)
		}
		u.Method, u.Protocol = method, protocol
		enter(StateDownloading, f.DownloadTimeout)
		observe()
		if method == MethodPull {
			u.PackageURI = f.Offered[protocol] + f.Filename
			add(roleWriteURI, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pathURI},
				Values: []lwm2m.Record{{Path: pathURI, Value: lwm2m.String(u.PackageURI)}}})
		} else {
			d.Push = f.Reachable
		}
		return d

	case StateDownloading:
		if out, ok := opFailed(roleWriteURI, "writing the Package URI"); ok {
			return out
		}
		if v, _, ok := f.valueSince(pathState, u.StateAt); ok && v.IntValue() == deviceDownloaded &&
			(u.Method == MethodPush || f.opStatus(roleWriteURI) == store.OperationConfirmed) {
			enter(StateUpdating, f.UpdateTimeout)
			add(roleExecute, devmgmt.Operation{Kind: devmgmt.KindExecute, Paths: []lwm2m.Path{pathUpdate}})
			return d
		}
		if !u.Deadline.IsZero() && !f.Now.Before(u.Deadline) {
			return fail(0, fmt.Sprintf("timed out downloading (%s)", f.DownloadTimeout))
		}
		if u.Method == MethodPush && !d.Detail.Pushed {
			if d.Detail.PushFailures >= f.MaxPushFailures {
				return fail(0, fmt.Sprintf("pushing the package failed %d times", d.Detail.PushFailures))
			}
			d.Push = f.Reachable
			return d
		}
		// The device's state may not be observed (or its notifications
		// held back by pmin): read it now and then.
		sent := f.opStatus(roleWriteURI) == store.OperationConfirmed || d.Detail.Pushed
		if sent {
			pollState(f, &d, u.StateAt)
		}
		return d

	case StateUpdating:
		// The device is back when it registered again, or reported
		// success, after the Execute.
		back := time.Time{}
		if f.Online && f.RegisteredAt.After(u.StateAt) {
			back = f.RegisteredAt
		}
		if code, at, ok := resultSince(u.StateAt); ok && code == 1 && (back.IsZero() || at.Before(back)) {
			back = at
		}
		if !back.IsZero() {
			if v, at, ok := f.valueSince(pathVersion, back); ok {
				if SameVersion(v.StringValue(), u.Version) {
					enter(StateSucceeded, 0)
					u.Active, u.FinishedAt = false, f.Now
					u.ResultCode, u.Result, u.Error = 1, ResultMeaning(1), ""
					return d
				}
				if f.Online && f.RegisteredAt.After(u.StateAt) && !at.Before(f.RegisteredAt) {
					return fail(0, fmt.Sprintf("the device came back with firmware version %q, not %q", v.StringValue(), u.Version))
				}
			}
			// Read the version once the device is back, and again after a
			// later Register. A device that reported success but has not
			// registered again is likely rebooting: its Register is waited
			// for ReadInterval.
			reregistered := f.Online && f.RegisteredAt.After(u.StateAt)
			rv, ok := f.Ops[roleReadVersion]
			if (reregistered || f.Now.Sub(back) >= f.ReadInterval) &&
				(!ok || rv.CreatedAt.Before(back) || (f.Online && rv.CreatedAt.Before(f.RegisteredAt)) || rv.Status == store.OperationFailed) {
				if !f.pendingOp(roleReadVersion) {
					add(roleReadVersion, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pathVersion}})
				}
			}
		}
		if !u.Deadline.IsZero() && !f.Now.Before(u.Deadline) {
			return fail(0, fmt.Sprintf("timed out waiting for the device to come back updated (%s)", f.UpdateTimeout))
		}
		if back.IsZero() {
			if out, ok := opFailed(roleExecute, "Execute Update (/5/0/2)"); ok {
				return out
			}
			if f.opStatus(roleExecute) == store.OperationConfirmed {
				pollState(f, &d, u.StateAt)
			}
		}
		return d
	}
	return d
}

// pollState queues a Read of /5/0 when nothing was heard of the device's
// firmware state for ReadInterval since, and no read is on its way.
func pollState(f facts, d *decision, since time.Time) {
	if f.ReadInterval <= 0 || f.pendingOp(roleReadState) {
		return
	}
	last := since
	if v, ok := f.Values[pathState]; ok && v.At.After(last) {
		last = v.At
	}
	if op, ok := f.Ops[roleReadState]; ok && op.UpdatedAt.After(last) {
		last = op.UpdatedAt
	}
	if f.Now.Sub(last) >= f.ReadInterval {
		d.Queue = append(d.Queue, queued{Role: roleReadState,
			Op: devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pathFirmware}}})
	}
}

// Firmware Update Protocol Support (/5/0/8) values.
var protocolNumbers = map[string]int{ProtocolCoAP: 0, ProtocolCoAPS: 1, ProtocolHTTP: 2, ProtocolHTTPS: 3}

// choose picks the delivery method and, for pull, the protocol: what the
// operator asked for, else what the device supports (protocols from
// /5/0/8, nil when unknown; delivery from /5/0/9, -1 when unknown) among
// what the server offers, preferring the registration's own security. why
// is not empty when nothing fits.
func choose(method, protocol string, protocols []int, delivery int, dtls bool, offered map[string]string) (string, string, string) {
	if method == MethodPush {
		return MethodPush, "", ""
	}
	if method == MethodAuto && delivery == 1 {
		return MethodPush, "", ""
	}
	if protocol != ProtocolAuto {
		if offered[protocol] == "" {
			return "", "", fmt.Sprintf("the server has no download URL for protocol %s", protocol)
		}
		return MethodPull, protocol, ""
	}
	order := []string{ProtocolCoAP, ProtocolCoAPS, ProtocolHTTPS, ProtocolHTTP}
	if dtls {
		order = []string{ProtocolCoAPS, ProtocolHTTPS, ProtocolCoAP, ProtocolHTTP}
	}
	if protocols == nil {
		// Unknown support: the registration's own transport, else HTTPS.
		order = order[:1]
		if offered[order[0]] == "" {
			order = []string{ProtocolHTTPS}
		}
	}
	for _, p := range order {
		if offered[p] != "" && (protocols == nil || slices.Contains(protocols, protocolNumbers[p])) {
			return MethodPull, p, ""
		}
	}
	if method == MethodAuto && delivery == 2 {
		return MethodPush, "", ""
	}
	if protocols == nil {
		return "", "", "the server offers no download URL the device can use (no " + order[0] + " base configured)"
	}
	return "", "", fmt.Sprintf("the device supports none of the protocols the server offers (device: %v)", protocols)
}
