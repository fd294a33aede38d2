// Package simulator is a fleet of simulated LwM2M 1.1 clients over CoAP/UDP,
// built on the go-coap client. It drives `flownexus simulate` and the
// end-to-end tests of the server.
//
// Each Device has its own UDP socket (so the server sees distinct source
// addresses), an object tree with the objects Server (1), Device (3),
// Connectivity Monitoring (4), Firmware Update (5), BinaryAppDataContainer
// (19, for opaque data), Temperature (3303) and Humidity (3304), and sensor
// values that follow a smooth random walk derived
// from Config.Seed and the device index. A device registers (stepping its
// enabler version down on 4.12 Precondition Failed), keeps its registration
// alive with Updates before the lifetime runs out, answers every device
// management operation a server sends (Read, Discover, Write, Write-Attributes,
// Execute, Create, Delete, Read-, Write- and Observe-Composite, Observe and
// Cancel) in the content format the server asks for, sends notifications
// honouring pmin, pmax, gt, lt and st, sends data with the LwM2M Send
// operation at an interval, and de-registers on Stop. With binding "UQ" a
// device follows the queue-mode cycle: it wakes with an Update, stays
// reachable for a receive window and then ignores the server until it next
// has something to send.
//
// Fault injection (Config.Faults) drops, fails or delays a share of the
// server's requests. Config.CaptureDir records every payload a device sends,
// for codec golden files (testdata/captures holds a set, rewritten with
// `go test -run TestCapture -update`). Config.OnEvent reports what devices
// do (registered, updated, request answered, notified, asleep, ...), so
// tests can wait for behaviour instead of sleeping.
//
// Firmware Update (object 5) is simulated end to end: a written Package URI
// (coap://, http:// or https://) is downloaded for real, a package can be
// pushed to /5/0/0, and Execute /5/0/2 installs it (the firmware version
// becomes the package's "version=" line or the next patch version) and
// reboots the device, which then registers again from a new source port.
//
// Timing logic (lifetimes, intervals, receive windows, pmin/pmax) reads an
// injected Clock, so tests can drive it without sleeping. CoAP retransmission
// timing inside go-coap uses the real clock.
//
// A Fleet starts many devices with bounded concurrency, reports aggregate
// Stats and a progress line, and stops them cleanly. All exported methods of
// Device and Fleet are safe for concurrent use.
package simulator
