package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Firmware Update (object 5) states and results, LwM2M 1.1 Appendix E.6.
const (
	fwIdle        = 0
	fwDownloading = 1
	fwDownloaded  = 2
	fwUpdating    = 3

	fwResultInitial     = 0
	fwResultSuccess     = 1
	fwResultNoFlash     = 2
	fwResultNoRAM       = 3
	fwResultConnLost    = 4
	fwResultIntegrity   = 5
	fwResultBadType     = 6
	fwResultInvalidURI  = 7
	fwResultFailed      = 8
	fwResultUnsupported = 9 // unsupported protocol
)

var fwStateNames = map[int64]string{fwIdle: "idle", fwDownloading: "downloading", fwDownloaded: "downloaded", fwUpdating: "updating"}

// maxFirmware bounds a downloaded firmware package.
const maxFirmware = 16 << 20

// firmware is the Object 5 state the resources do not hold. Guarded by
// Device.mu.
type firmware struct {
	next     time.Time          // when the running download or update step ends (zero: none)
	epoch    int                // bumps on every new download, so stale downloads are ignored
	cancel   context.CancelFunc // of the running download
	pkg      []byte             // the downloaded or written package
	Download FirmwareInfo       // last package received
}

// FirmwareInfo describes the last firmware package a device received.
type FirmwareInfo struct {
	URI    string // "" for a package written to /5/0/0
	Size   int
	SHA256 string // hex
}

// Firmware returns what the device knows of its last firmware package.
func (d *Device) Firmware() FirmwareInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fw.Download
}

func (d *Device) setFwStateLocked(state, result int64) {
	d.model.set(pathFwState, lwm2m.Int(state))
	d.model.set(pathFwResult, lwm2m.Int(result))
	name := fwStateNames[state]
	d.mu.Unlock()
	d.emit(Event{Kind: EventFirmware, Op: name})
	d.mu.Lock()
}

// schemeProtocols maps Package URI schemes to Firmware Update Protocol
// Support values (/5/0/8).
var schemeProtocols = map[string]int{"coap": 0, "coaps": 1, "http": 2, "https": 3}

// checkFwWriteLocked applies the state machine of LwM2M 1.1 Appendix E.6.1
// to a write of Package (/5/0/0) or Package URI (/5/0/1) before it is
// stored: an empty value resets the machine in any state but Updating; a
// package or URI starts a download only in Idle (a write that is no
// trigger of the current state is rejected); and only the delivery
// methods /5/0/9 offers are accepted.
func (d *Device) checkFwWriteLocked(p lwm2m.Path, v lwm2m.Value) error {
	empty := v.StringValue() == ""
	if p == pathFwPackage {
		pkg := v.Opaque()
		empty = len(pkg) == 0 || (len(pkg) == 1 && pkg[0] == 0)
	}
	st := d.model.value(pathFwState).IntValue()
	switch {
	case st == fwUpdating:
		return statusf(codes.BadRequest, "firmware is updating")
	case empty:
		return nil
	case p == pathFwURI && d.cfg.FirmwareDelivery == "push":
		return statusf(codes.MethodNotAllowed, "the device takes firmware by push only (/5/0/9 = 1)")
	case p == pathFwPackage && d.cfg.FirmwareDelivery == "pull":
		return statusf(codes.MethodNotAllowed, "the device takes firmware by pull only (/5/0/9 = 0)")
	case st != fwIdle:
		return statusf(codes.BadRequest, "firmware is %s: reset it with an empty Package URI first", fwStateNames[st])
	}
	return nil
}

// fwResetLocked returns the state machine to Idle with result 0 and
// forgets the package (an empty Package URI or Package was written).
func (d *Device) fwResetLocked() {
	d.stopDownloadLocked()
	d.fw.pkg = nil
	d.model.set(pathFwPkgName, lwm2m.String(""))
	d.model.set(pathFwPkgVersion, lwm2m.String(""))
	d.setFwStateLocked(fwIdle, fwResultInitial)
}

// fwFailLocked ends a download or update with a failure result.
func (d *Device) fwFailLocked(result int64, reason string, err error) {
	d.fw.pkg = nil
	d.model.set(pathFwPkgName, lwm2m.String(""))
	d.model.set(pathFwPkgVersion, lwm2m.String(""))
	level := slog.LevelWarn
	if errors.Is(err, errInjected) {
		level = slog.LevelInfo
	}
	d.log.Log(context.Background(), level, "firmware update failed", "result", result, "reason", reason, "err", err)
	d.setFwStateLocked(fwIdle, result)
}

// fwURIWrittenLocked starts a pull download of the written Package URI, or
// resets the state machine when the URI is empty. coap://, coaps://,
// http:// and https:// URIs are fetched for real (downloadCoAP,
// downloadHTTP); a scheme missing from Config.FirmwareProtocols ends in
// result 9 (unsupported protocol), a URI without a host in 7 (invalid URI).
func (d *Device) fwURIWrittenLocked() {
	uri := d.model.value(pathFwURI).StringValue()
	if uri == "" {
		d.fwResetLocked()
		return
	}
	d.stopDownloadLocked()
	u, err := url.Parse(uri)
	if err == nil && u.Hostname() == "" {
		err = errors.New("no host")
	}
	if err != nil {
		d.fwFailLocked(fwResultInvalidURI, "invalid URI", err)
		return
	}
	proto, ok := schemeProtocols[u.Scheme]
	if !ok || !slices.Contains(d.cfg.FirmwareProtocols, proto) {
		d.fwFailLocked(fwResultUnsupported, "unsupported protocol", fmt.Errorf("scheme %q not in /5/0/8 %v", u.Scheme, d.cfg.FirmwareProtocols))
		return
	}
	switch d.cfg.FirmwareFail {
	case fwResultInvalidURI:
		d.fwFailLocked(fwResultInvalidURI, "invalid URI", errInjected)
		return
	case fwResultUnsupported:
		d.fwFailLocked(fwResultUnsupported, "unsupported protocol", errInjected)
		return
	}
	d.fw.pkg = nil
	d.setFwStateLocked(fwDownloading, fwResultInitial)
	d.fw.epoch++
	epoch := d.fw.epoch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	d.fw.cancel = cancel
	fetch := d.fetchFirmware
	if d.cfg.FirmwareFail == fwResultConnLost {
		fetch = func(context.Context, *url.URL) ([]byte, error) { return nil, errInjected }
	}
	d.fwWG.Add(1)
	go func() {
		defer d.fwWG.Done()
		defer cancel()
		data, err := fetch(ctx, u)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.fw.epoch != epoch {
			return // superseded or cancelled
		}
		d.fw.cancel = nil
		switch {
		case errors.Is(err, errInvalidURI):
			d.fwFailLocked(fwResultInvalidURI, "invalid URI", err)
		case errors.Is(err, errUnsupportedProtocol):
			d.fwFailLocked(fwResultUnsupported, "unsupported protocol", err)
		case errors.Is(err, errFirmwareTooLarge):
			d.fwFailLocked(fwResultNoFlash, "package larger than the flash", err)
		case err != nil:
			d.fwFailLocked(fwResultConnLost, "download failed", fmt.Errorf("%s: %w", u.Redacted(), err))
		default:
			d.fwReceivedLocked(uri, data)
		}
		d.wake()
	}()
}

// errInjected marks failures Config.FirmwareFail asked for.
var errInjected = errors.New("injected by FirmwareFail")

// stopDownloadLocked cancels a running download.
func (d *Device) stopDownloadLocked() {
	d.fw.epoch++
	if d.fw.cancel != nil {
		d.fw.cancel()
		d.fw.cancel = nil
	}
	d.fw.next = time.Time{}
}

// fwPackageWrittenLocked handles a package pushed to /5/0/0 (whole, after
// its Block1 transfer): an empty one (or a single NUL byte) resets the
// state machine, any other is received at once.
func (d *Device) fwPackageWrittenLocked() {
	pkg := d.model.valueStored(pathFwPackage).Opaque()
	// The package is write-only: keep it out of the object tree.
	d.model.set(pathFwPackage, lwm2m.Opaque(nil))
	if len(pkg) == 0 || (len(pkg) == 1 && pkg[0] == 0) {
		d.fwResetLocked()
		return
	}
	d.stopDownloadLocked()
	d.setFwStateLocked(fwDownloading, fwResultInitial)
	d.fwReceivedLocked("", bytes.Clone(pkg))
}

// fwReceivedLocked checks a received package (Config.FirmwareFail, size,
// integrity) and moves to Downloaded, or to Idle with the failure result.
func (d *Device) fwReceivedLocked(uri string, pkg []byte) {
	sum := sha256.Sum256(pkg)
	d.fw.Download = FirmwareInfo{URI: uri, Size: len(pkg), SHA256: hex.EncodeToString(sum[:])}
	switch f := int64(d.cfg.FirmwareFail); f {
	case fwResultNoFlash, fwResultNoRAM, fwResultIntegrity, fwResultBadType:
		d.fwFailLocked(f, "received package refused", errInjected)
		return
	}
	if len(pkg) > maxFirmware {
		d.fwFailLocked(fwResultNoFlash, "package larger than the flash", fmt.Errorf("%d bytes", len(pkg)))
		return
	}
	if len(pkg) == 0 {
		d.fwFailLocked(fwResultIntegrity, "integrity check", errors.New("empty package"))
		return
	}
	version, err := verifyImage(pkg, d.model.value(pathFirmwareVer).StringValue())
	if err != nil {
		d.fwFailLocked(fwResultIntegrity, "integrity check", err)
		return
	}
	d.fw.pkg = pkg
	d.model.set(pathFwPkgName, lwm2m.String("flownexus-sim"))
	d.model.set(pathFwPkgVersion, lwm2m.String(version))
	d.setFwStateLocked(fwDownloaded, fwResultInitial)
}

// fwUpdateLocked starts installing the downloaded package (Execute /5/0/2),
// which is allowed in state Downloaded only (else 4.05); it takes
// Config.FirmwareDelay, then the device reboots into it.
func (d *Device) fwUpdateLocked() error {
	if st := d.model.value(pathFwState).IntValue(); st != fwDownloaded {
		return statusf(codes.MethodNotAllowed, "firmware state is %s, not downloaded", fwStateNames[st])
	}
	d.setFwStateLocked(fwUpdating, fwResultInitial)
	d.fw.next = d.clock.Now().Add(d.cfg.FirmwareDelay)
	return nil
}

// fwStepLocked finishes an update whose time has come: the firmware version
// becomes the package's, the result "success", and the device reboots (or,
// with Config.FirmwareFail 8, the update fails and the device goes on with
// its old firmware).
func (d *Device) fwStepLocked(now time.Time) {
	if d.fw.next.IsZero() || now.Before(d.fw.next) {
		return
	}
	d.fw.next = time.Time{}
	if d.model.value(pathFwState).IntValue() != fwUpdating {
		return
	}
	if d.cfg.FirmwareFail == fwResultFailed {
		d.fwFailLocked(fwResultFailed, "install", errInjected)
		return
	}
	v := d.model.value(pathFwPkgVersion).StringValue()
	d.model.set(pathFirmwareVer, lwm2m.String(v))
	d.model.set(lwm2m.NewPath(objDevice, 0, 19), lwm2m.String(v))
	d.fw.pkg = nil
	d.setFwStateLocked(fwIdle, fwResultSuccess)
	d.requestRebootLocked()
}

// factoryResetLocked restores the initial object tree (Execute /3/0/5).
func (d *Device) factoryResetLocked() {
	d.stopDownloadLocked()
	d.fw = firmware{}
	d.timeOffset = 0
	d.buildModel()
}

var versionLine = regexp.MustCompile(`(?m)^version=([0-9A-Za-z.+-]{1,32})\s*$`)

// packageVersion returns the version a package declares with a line
// "version=X" in its first kilobyte, or cur with its last number raised.
func packageVersion(pkg []byte, cur string) string {
	if m := versionLine.FindSubmatch(pkg[:min(len(pkg), 1024)]); m != nil {
		return string(m[1])
	}
	i := strings.LastIndexByte(cur, '.')
	n, err := strconv.Atoi(cur[i+1:])
	if err != nil {
		return cur + ".1"
	}
	return cur[:i+1] + strconv.Itoa(n+1)
}

var errInvalidURI = errors.New("invalid firmware URI")

// download fetches a firmware package over CoAP(S) (Block2) or HTTP(S)
// (Range requests), dropping the connection once when
// Config.FirmwareDropAt says so.
func (d *Device) download(ctx context.Context, u *url.URL) ([]byte, error) {
	drop := &dropOnce{at: d.cfg.FirmwareDropAt}
	switch u.Scheme {
	case "coap", "coaps":
		return d.downloadCoAP(ctx, u, drop)
	case "http", "https":
		return d.downloadHTTP(ctx, u, drop)
	}
	return nil, fmt.Errorf("%w: %s", errUnsupportedProtocol, u.Scheme)
}
