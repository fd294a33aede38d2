package simulator

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// EventKind says what happened in an Event.
type EventKind uint8

// The kinds of Event.
const (
	EventRegistered      EventKind = iota + 1 // Register answered 2.01; Version, Location set
	EventRegisterFailed                       // Register failed; Code or Err set
	EventVersionStepDown                      // Register answered 4.12; Version is the next try
	EventUpdated                              // Update answered 2.04
	EventUpdateFailed                         // Update failed; Code or Err set
	EventDeregistered                         // De-register answered 2.02 (or failed: Err set)
	EventRequest                              // a server request was answered; Op, Path, Code set
	EventDropped                              // a server request was dropped (fault injection or asleep)
	EventObserve                              // an observation started; Path set (first path)
	EventCancel                               // an observation ended; Path set, Op "cancel", "reset" or "timeout"
	EventNotified                             // a notification was acknowledged; Path, Code set
	EventNotifyFailed                         // a notification was not acknowledged; Err set
	EventSendAcked                            // Send answered 2.04
	EventSendFailed                           // Send failed; Code or Err set
	EventWake                                 // a queue-mode device woke up
	EventSleep                                // a queue-mode device went to sleep
	EventReboot                               // the device rebooted (Execute /3/0/4, firmware update)
	EventExecute                              // an executable resource ran; Path, Args set
	EventFirmware                             // Object 5 changed state; Op is the new state name
)

var eventNames = [...]string{
	EventRegistered:      "registered",
	EventRegisterFailed:  "register-failed",
	EventVersionStepDown: "version-step-down",
	EventUpdated:         "updated",
	EventUpdateFailed:    "update-failed",
	EventDeregistered:    "deregistered",
	EventRequest:         "request",
	EventDropped:         "dropped",
	EventObserve:         "observe",
	EventCancel:          "cancel",
	EventNotified:        "notified",
	EventNotifyFailed:    "notify-failed",
	EventSendAcked:       "send-acked",
	EventSendFailed:      "send-failed",
	EventWake:            "wake",
	EventSleep:           "sleep",
	EventReboot:          "reboot",
	EventExecute:         "execute",
	EventFirmware:        "firmware",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event reports one thing a device did. Fields not relevant to the Kind
// are zero.
type Event struct {
	Kind     EventKind
	Endpoint string
	Time     time.Time // Config.Clock's time
	// Op names the server operation for EventRequest ("read", "discover",
	// "write", "write-attributes", "execute", "create", "delete",
	// "observe", "cancel", "read-composite", "observe-composite",
	// "write-composite"), the way an observation ended for EventCancel,
	// and the new firmware state for EventFirmware.
	Op       string
	Path     lwm2m.Path
	Code     codes.Code
	Version  lwm2m.Version
	Location string // registration location, e.g. "/rd/5a3f"
	Args     string // Execute arguments
	Err      error
}

// Stats are counters of a device or, summed, of a fleet. Counters only
// grow; Registered and Awake are current states.
type Stats struct {
	Devices         int
	Registered      int // devices currently registered
	Awake           int // queue-mode devices currently reachable
	Registrations   uint64
	Updates         uint64
	Deregistrations uint64
	Requests        uint64 // server requests answered
	Dropped         uint64 // server requests dropped (fault injection or asleep)
	Faults          uint64 // server requests answered with the injected error
	Notifications   uint64 // notifications acknowledged
	Sends           uint64
	SendsAcked      uint64
	Reboots         uint64
	Errors          uint64 // failed Register, Update, Send, notification
	Handshakes      uint64 // completed DTLS handshakes
}

// String formats the progress line, e.g. "registered 812/1000, updates 40,
// requests 96, notifications 4200, sends 310/312 acked, errors 3".
func (s Stats) String() string {
	var b strings.Builder
	b.WriteString("registered ")
	b.WriteString(strconv.Itoa(s.Registered))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(s.Devices))
	add := func(name string, n uint64) {
		b.WriteString(", ")
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(n, 10))
	}
	add("updates", s.Updates)
	add("requests", s.Requests)
	add("notifications", s.Notifications)
	b.WriteString(", sends ")
	b.WriteString(strconv.FormatUint(s.SendsAcked, 10))
	b.WriteByte('/')
	b.WriteString(strconv.FormatUint(s.Sends, 10))
	b.WriteString(" acked")
	if s.Dropped > 0 {
		add("dropped", s.Dropped)
	}
	if s.Faults > 0 {
		add("faults", s.Faults)
	}
	add("errors", s.Errors)
	return b.String()
}

// Add returns the sum of s and t.
func (s Stats) Add(t Stats) Stats {
	s.Devices += t.Devices
	s.Registered += t.Registered
	s.Awake += t.Awake
	s.Registrations += t.Registrations
	s.Updates += t.Updates
	s.Deregistrations += t.Deregistrations
	s.Requests += t.Requests
	s.Dropped += t.Dropped
	s.Faults += t.Faults
	s.Notifications += t.Notifications
	s.Sends += t.Sends
	s.SendsAcked += t.SendsAcked
	s.Reboots += t.Reboots
	s.Errors += t.Errors
	s.Handshakes += t.Handshakes
	return s
}

// counters are a device's Stats counters, updated without its lock.
type counters struct {
	registrations, updates, deregistrations atomic.Uint64
	requests, dropped, faults               atomic.Uint64
	notifications, sends, sendsAcked        atomic.Uint64
	reboots, errors, handshakes             atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Registrations:   c.registrations.Load(),
		Updates:         c.updates.Load(),
		Deregistrations: c.deregistrations.Load(),
		Requests:        c.requests.Load(),
		Dropped:         c.dropped.Load(),
		Faults:          c.faults.Load(),
		Notifications:   c.notifications.Load(),
		Sends:           c.sends.Load(),
		SendsAcked:      c.sendsAcked.Load(),
		Reboots:         c.reboots.Load(),
		Errors:          c.errors.Load(),
		Handshakes:      c.handshakes.Load(),
	}
}
