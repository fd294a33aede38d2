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
// Firmware Update (object 5) is simulated end to end, following the state
// machine of LwM2M 1.1 Appendix E.6.1: a Package URI written in state Idle
// is downloaded for real, an empty one (or an empty or NUL Package) resets
// the machine to Idle with result 0 (in any state but Updating), and
// writes that are no trigger of the current state (a URI or package
// outside Idle, any write while Updating) are 4.00: a server resets a
// device left Downloaded with an empty URI before it starts anew.
// Execute /5/0/2 outside Downloaded is 4.05. Protocol Support
// (/5/0/8, Config.FirmwareProtocols) and Delivery Method (/5/0/9,
// Config.FirmwareDelivery) say what a device takes. https:// and http://
// are fetched as an nRF91's download client does: by Range requests of
// Config.FirmwareChunk (2 KiB) bytes over one kept-alive HTTP/1.1
// connection, with every TLS record the server sends checked: a record
// over 2048 bytes fails the download (NRF_EMSGSIZE, result 4).
// coap:// and coaps:// (with the device's own DTLS credentials) are
// fetched by Block2, one request per block of Config.FirmwareBlockSize
// bytes. A broken connection is resumed from the bytes received, up to 3
// times in a row, then the result is 4 (connection lost). A package
// pushed to /5/0/0 arrives by Block1 (up to 16 MiB). A received package
// made by FirmwareImage must match the size and SHA-256 in its header
// (else result 5); a package without that header is accepted, its version
// taken from a "version=" line or the next patch version. Execute /5/0/2
// installs it after Config.FirmwareDelay: /3/0/3 becomes its version, the
// result 1, and the device reboots and registers again from a new source
// port. State and Update Result changes reach observers as notifications,
// which wake a sleeping queue-mode device. Config.FirmwareFail makes
// updates fail with a chosen result at the stage it belongs to, and
// Config.FirmwareDropAt drops each download's connection once.
//
// Timing logic (lifetimes, intervals, receive windows, pmin/pmax) reads an
// injected Clock, so tests can drive it without sleeping. CoAP retransmission
// timing inside go-coap uses the real clock.
//
// A Fleet starts many devices with bounded concurrency, reports aggregate
// Stats and a progress line, and stops them cleanly. All exported methods of
// Device and Fleet are safe for concurrent use.
package simulator
