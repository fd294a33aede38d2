package simulator

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Defaults applied by Config.withDefaults to zero fields.
const (
	DefaultLifetime         = 300 * time.Second
	DefaultValueInterval    = 10 * time.Second
	DefaultReceiveWindow    = 93 * time.Second // Zephyr's CONFIG_LWM2M_QUEUE_MODE_UPTIME
	DefaultRequestTimeout   = 10 * time.Second
	DefaultStartConcurrency = 32
	DefaultProgressInterval = time.Second
	DefaultFirmwareDelay    = time.Second
	DefaultFirmwareChunk    = 2048 // bytes per HTTP Range request, as Nordic's download client
	DefaultFirmwareBlock    = 512  // CoAP Block2 size of firmware downloads
	DefaultBaseIMEI         = "35000000000000"
	maxDevices              = 1_000_000
)

// DefaultSendPaths are the resources a device reports with Send when
// Config.SendPaths is empty: both sensor values and the battery level.
var DefaultSendPaths = []lwm2m.Path{
	lwm2m.NewPath(3303, 0, 5700),
	lwm2m.NewPath(3304, 0, 5700),
	lwm2m.NewPath(3, 0, 9),
}

// Config describes a fleet of simulated devices. The zero value of every
// field but Server selects a default; Validate reports unusable values.
// A Config is copied by NewFleet and NewDevice; slices and funcs in it are
// shared and must not be modified afterwards.
type Config struct {
	// Server is the LwM2M server's UDP address, "host:port": its CoAP
	// port, or its CoAP/DTLS port when PSK is set.
	Server string
	// PSK, when set, gives device i its DTLS pre-shared key: the device
	// then talks CoAP over DTLS 1.2 (TLS_PSK_WITH_AES_128_CCM_8) and asks
	// the server for a Connection ID, so Device.Rebind keeps the session.
	// A reboot starts a new session with a new handshake.
	PSK func(i int) PSK
	// Certificate, when set instead of PSK, gives device i an X.509
	// certificate (ECDSA P-256 keeps the handshake small) to talk DTLS
	// with; the server's certificate is verified against RootCAs for the
	// host of Server.
	Certificate func(i int) tls.Certificate
	RootCAs     *x509.CertPool
	// Devices is the number of devices a Fleet runs (default 1).
	Devices int
	// BaseIMEI is the first 14 digits (TAC and serial number) of device 0's
	// IMEI; device i uses BaseIMEI+i followed by its Luhn check digit, and
	// its endpoint name is "urn:imei:" and those 15 digits. Default
	// DefaultBaseIMEI.
	BaseIMEI string
	// Endpoint, when set, names device i instead of the IMEI scheme.
	Endpoint func(i int) string
	// Lifetime is the registration lifetime (whole seconds, default 300 s).
	// A device sends an Update after 90% of it.
	Lifetime time.Duration
	// Binding is "U" (default) or "UQ" (queue mode).
	Binding string
	// Version is the LwM2M enabler version a device registers with
	// (default 1.1). On 4.12 Precondition Failed it steps down (1.2 to 1.1
	// to 1.0).
	Version lwm2m.Version
	// Format is the content format of multi-value answers (object,
	// instance and multiple-resource reads and observations) to requests
	// without an Accept option; single values then go as text/plain, or
	// application/octet-stream when opaque. With LwM2M 1.1 and later it is
	// also announced as ct= on the registration's root link. Default
	// SenML-CBOR, or TLV for a device on LwM2M 1.0 (and after a step-down
	// to 1.0 when Format needs 1.1).
	Format lwm2m.MediaType
	// ValueInterval is the period of a sensor value step (default 10 s).
	ValueInterval time.Duration
	// SendInterval is the period of the LwM2M Send operation (POST /dp,
	// SenML-CBOR, confirmable); 0 disables Send. Send needs LwM2M 1.1.
	SendInterval time.Duration
	// SendPaths are the resources Send reports (default DefaultSendPaths).
	SendPaths []lwm2m.Path
	// ReceiveWindow is how long a queue-mode device stays reachable after
	// its last exchange with the server (default 93 s).
	ReceiveWindow time.Duration
	// Seed makes sensor values and injected faults reproducible: device i
	// draws from a generator seeded with (Seed, i).
	Seed uint64
	// Clock is the time source of all timing logic (default the system
	// clock).
	Clock Clock
	// Logger receives the devices' logs and go-coap's errors (default:
	// discarded).
	Logger *slog.Logger
	// RequestTimeout bounds each request a device sends (Register, Update,
	// De-register, Send, confirmable notifications); default 10 s.
	RequestTimeout time.Duration
	// StartConcurrency bounds how many devices of a Fleet register at the
	// same time during Start and Stop (default 32).
	StartConcurrency int
	// FirmwareDelay is how long installing a firmware package takes
	// (Execute /5/0/2 until the reboot), on Clock (default 1 s).
	FirmwareDelay time.Duration
	// HTTPClient, when set and FirmwareCA is not, lends the TLS settings
	// of its *http.Transport (RootCAs) to https:// firmware downloads. The
	// download itself always runs on the device's own transport (Range
	// requests, one HTTP/1.1 connection, TLS records checked).
	HTTPClient *http.Client
	// FirmwareCA verifies the certificate of https:// firmware servers
	// (default: HTTPClient's roots, else the system's).
	FirmwareCA *x509.CertPool
	// FirmwareProtocols is Firmware Update Protocol Support (/5/0/8): the
	// Package URI schemes the device downloads with, 0 CoAP, 1 CoAPS,
	// 2 HTTP 1.1, 3 HTTPS 1.1. A URI of another scheme ends the download
	// with result 9 (unsupported protocol). Default CoAP, CoAPS (only with
	// PSK or Certificate: coaps uses the device's own DTLS credentials) and
	// HTTPS.
	FirmwareProtocols []int
	// FirmwareDelivery is Firmware Update Delivery Method (/5/0/9):
	// "pull" (Package URI only), "push" (Package /5/0/0 only) or "both"
	// (default). A write to the mechanism not offered is 4.05.
	FirmwareDelivery string
	// FirmwareChunk is the size of the Range requests of HTTP(S)
	// downloads (default 2048 bytes).
	FirmwareChunk int
	// FirmwareBlockSize is the Block2 size a CoAP(S) download asks for: a
	// power of two in 16..1024 (default 512).
	FirmwareBlockSize int
	// FirmwareFail, when 2..9, makes every firmware update fail with that
	// Update Result at the stage it belongs to: 2 (not enough flash),
	// 3 (out of RAM), 5 (integrity) and 6 (unsupported package type) once
	// a package was received (pulled or pushed); 4 (connection lost) when
	// a pull download starts; 7 (invalid URI) and 9 (unsupported
	// protocol) when a Package URI is written; 8 (update failed) at the
	// end of Execute /5/0/2 (the device keeps its firmware and does not
	// reboot). 0 disables it.
	FirmwareFail int
	// FirmwareDropAt, when positive, drops the connection of each pull
	// download once after that many bytes; the download then resumes (by
	// Range over HTTP, from the next block over CoAP).
	FirmwareDropAt int64
	// Faults injects failures into the handling of server requests.
	Faults Faults
	// CaptureDir, when set, receives a file for every payload a device
	// sends (see Capture).
	CaptureDir string
	// OnEvent, when set, is called synchronously for every Event. It must
	// not block for long and must not call back into the Device.
	OnEvent func(Event)
	// Progress, when set, is called by Fleet.Run every ProgressInterval
	// (default 1 s, real time) with the current Stats.
	Progress         func(Stats)
	ProgressInterval time.Duration
}

// Faults configures fault injection on server requests (not on the
// device's own Register, Update and Send). Shares are probabilities in
// [0, 1], drawn per request from the device's seeded generator.
type Faults struct {
	// DropRate is the share of requests dropped without any answer.
	DropRate float64
	// ErrorRate is the share of requests answered with ErrorCode.
	ErrorRate float64
	// ErrorCode is the error answer (default 5.00 Internal Server Error).
	ErrorCode codes.Code
	// Delay is added before answering DelayRate of the requests (all of
	// them when DelayRate is 0), waited on Config.Clock.
	Delay     time.Duration
	DelayRate float64
}

// deliveryMethods maps Config.FirmwareDelivery to /5/0/9's value.
var deliveryMethods = map[string]int64{"pull": 0, "push": 1, "both": 2}

// Validate reports the first unusable field of c, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Server == "" {
		return errors.New("simulator: config: Server is empty")
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return fmt.Errorf("simulator: config: Server %q: %w", c.Server, err)
	}
	if c.PSK != nil && c.Certificate != nil {
		return errors.New("simulator: config: PSK and Certificate are both set")
	}
	if c.Certificate != nil && c.RootCAs == nil {
		return errors.New("simulator: config: Certificate needs RootCAs to verify the server")
	}
	if c.Devices < 1 || c.Devices > maxDevices {
		return fmt.Errorf("simulator: config: Devices %d not in 1..%d", c.Devices, maxDevices)
	}
	if c.Endpoint == nil {
		base, err := parseBaseIMEI(c.BaseIMEI)
		if err != nil {
			return err
		}
		if base+uint64(c.Devices)-1 > 99_999_999_999_999 {
			return fmt.Errorf("simulator: config: BaseIMEI %s leaves no room for %d devices", c.BaseIMEI, c.Devices)
		}
	}
	if c.Lifetime < time.Second {
		return fmt.Errorf("simulator: config: Lifetime %v below 1s", c.Lifetime)
	}
	if c.Binding != "U" && c.Binding != "UQ" {
		return fmt.Errorf("simulator: config: Binding %q: want U or UQ", c.Binding)
	}
	if _, err := lwm2m.ParseVersion(string(c.Version)); err != nil {
		return fmt.Errorf("simulator: config: %w", err)
	}
	if !formatSupported(c.Format, c.Version) || c.Format == lwm2m.FormatText || c.Format == lwm2m.FormatOpaque || c.Format == lwm2m.FormatLinkFormat {
		return fmt.Errorf("simulator: config: Format %v is not a multi-value format of LwM2M %s", c.Format, c.Version)
	}
	for name, d := range map[string]time.Duration{
		"ValueInterval": c.ValueInterval, "SendInterval": c.SendInterval, "ReceiveWindow": c.ReceiveWindow,
		"RequestTimeout": c.RequestTimeout, "FirmwareDelay": c.FirmwareDelay, "Faults.Delay": c.Faults.Delay,
	} {
		if d < 0 {
			return fmt.Errorf("simulator: config: %s %v is negative", name, d)
		}
	}
	for _, p := range c.FirmwareProtocols {
		if p < 0 || p > 3 {
			return fmt.Errorf("simulator: config: FirmwareProtocols: %d not one of 0 CoAP, 1 CoAPS, 2 HTTP, 3 HTTPS", p)
		}
		if p == 1 && c.PSK == nil && c.Certificate == nil {
			return errors.New("simulator: config: FirmwareProtocols: CoAPS needs PSK or Certificate")
		}
	}
	if _, ok := deliveryMethods[c.FirmwareDelivery]; !ok {
		return fmt.Errorf("simulator: config: FirmwareDelivery %q: want pull, push or both", c.FirmwareDelivery)
	}
	if c.FirmwareChunk < 16 || c.FirmwareChunk > maxFirmware {
		return fmt.Errorf("simulator: config: FirmwareChunk %d not in 16..%d", c.FirmwareChunk, maxFirmware)
	}
	if _, ok := blockSZX(c.FirmwareBlockSize); !ok {
		return fmt.Errorf("simulator: config: FirmwareBlockSize %d: want a power of two in 16..1024", c.FirmwareBlockSize)
	}
	if c.FirmwareFail != 0 && (c.FirmwareFail < 2 || c.FirmwareFail > 9) {
		return fmt.Errorf("simulator: config: FirmwareFail %d: want 0 or an Update Result in 2..9", c.FirmwareFail)
	}
	if c.FirmwareDropAt < 0 {
		return fmt.Errorf("simulator: config: FirmwareDropAt %d is negative", c.FirmwareDropAt)
	}
	f := c.Faults
	for name, r := range map[string]float64{"DropRate": f.DropRate, "ErrorRate": f.ErrorRate, "DelayRate": f.DelayRate} {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("simulator: config: Faults.%s %v not in [0, 1]", name, r)
		}
	}
	if f.DropRate+f.ErrorRate > 1 {
		return errors.New("simulator: config: Faults.DropRate + ErrorRate above 1")
	}
	if cl := f.ErrorCode >> 5; cl != 4 && cl != 5 {
		return fmt.Errorf("simulator: config: Faults.ErrorCode %v is not a 4.xx or 5.xx code", f.ErrorCode)
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Devices == 0 {
		c.Devices = 1
	}
	if c.BaseIMEI == "" {
		c.BaseIMEI = DefaultBaseIMEI
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	c.Lifetime = c.Lifetime.Truncate(time.Second)
	if c.Binding == "" {
		c.Binding = "U"
	}
	if c.Version == "" {
		c.Version = lwm2m.V1_1
	}
	if c.Format == 0 {
		c.Format = lwm2m.FormatSenMLCBOR
		if c.Version == lwm2m.V1_0 {
			c.Format = lwm2m.FormatTLV
		}
	}
	if c.ValueInterval == 0 {
		c.ValueInterval = DefaultValueInterval
	}
	if len(c.SendPaths) == 0 {
		c.SendPaths = DefaultSendPaths
	}
	if c.ReceiveWindow == 0 {
		c.ReceiveWindow = DefaultReceiveWindow
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.StartConcurrency <= 0 {
		c.StartConcurrency = DefaultStartConcurrency
	}
	if c.FirmwareDelay == 0 {
		c.FirmwareDelay = DefaultFirmwareDelay
	}
	if len(c.FirmwareProtocols) == 0 {
		c.FirmwareProtocols = []int{0, 3}
		if c.PSK != nil || c.Certificate != nil {
			c.FirmwareProtocols = []int{0, 1, 3}
		}
	}
	if c.FirmwareDelivery == "" {
		c.FirmwareDelivery = "both"
	}
	if c.FirmwareChunk == 0 {
		c.FirmwareChunk = DefaultFirmwareChunk
	}
	if c.FirmwareBlockSize == 0 {
		c.FirmwareBlockSize = DefaultFirmwareBlock
	}
	if c.Faults.ErrorCode == 0 {
		c.Faults.ErrorCode = codes.InternalServerError
	}
	if c.Faults.Delay > 0 && c.Faults.DelayRate == 0 {
		c.Faults.DelayRate = 1
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	return c
}

// EndpointName returns the endpoint name of device i under c: c.Endpoint(i)
// when set, else "urn:imei:" followed by the IMEI built from c.BaseIMEI.
func (c Config) EndpointName(i int) (string, error) {
	c = c.withDefaults()
	if c.Endpoint != nil {
		return c.Endpoint(i), nil
	}
	imei, err := IMEI(c.BaseIMEI, i)
	if err != nil {
		return "", err
	}
	return "urn:imei:" + imei, nil
}

// IMEI returns the 15-digit IMEI of device i: the 14-digit base plus i,
// followed by its Luhn check digit.
func IMEI(base string, i int) (string, error) {
	b, err := parseBaseIMEI(base)
	if err != nil {
		return "", err
	}
	if i < 0 {
		return "", fmt.Errorf("simulator: negative device index %d", i)
	}
	n := b + uint64(i)
	if n > 99_999_999_999_999 {
		return "", fmt.Errorf("simulator: IMEI base %s + %d overflows 14 digits", base, i)
	}
	body := fmt.Sprintf("%014d", n)
	return body + strconv.Itoa(luhnDigit(body)), nil
}

func parseBaseIMEI(s string) (uint64, error) {
	if len(s) != 14 {
		return 0, fmt.Errorf("simulator: config: BaseIMEI %q: want 14 digits", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("simulator: config: BaseIMEI %q: want 14 digits", s)
	}
	return n, nil
}

// luhnDigit returns the Luhn check digit of the decimal digits in s.
func luhnDigit(s string) int {
	sum := 0
	double := true // the rightmost payload digit is doubled
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}
