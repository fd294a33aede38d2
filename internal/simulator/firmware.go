package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

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
	fwResultConnLost    = 4
	fwResultIntegrity   = 5
	fwResultInvalidURI  = 7
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

// fwURIWrittenLocked starts a pull download of the written Package URI, or
// resets the state machine when the URI is empty. coap:// and http(s)://
// URIs are fetched for real (coap with block-wise transfer); others end in
// "unsupported protocol" or "invalid URI".
func (d *Device) fwURIWrittenLocked() {
	d.stopDownloadLocked()
	uri := d.model.value(pathFwURI).StringValue()
	if uri == "" {
		d.fw.pkg = nil
		d.setFwStateLocked(fwIdle, fwResultInitial)
		return
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		d.setFwStateLocked(fwIdle, fwResultInvalidURI)
		return
	}
	switch u.Scheme {
	case "coap", "http", "https":
	default:
		d.setFwStateLocked(fwIdle, fwResultUnsupported)
		return
	}
	d.setFwStateLocked(fwDownloading, fwResultInitial)
	d.fw.epoch++
	epoch := d.fw.epoch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	d.fw.cancel = cancel
	d.fwWG.Add(1)
	go func() {
		defer d.fwWG.Done()
		defer cancel()
		data, err := d.fetchFirmware(ctx, u)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.fw.epoch != epoch {
			return // superseded or cancelled
		}
		d.fw.cancel = nil
		switch {
		case errors.Is(err, errInvalidURI):
			d.setFwStateLocked(fwIdle, fwResultInvalidURI)
		case err != nil:
			d.log.Info("firmware download failed", "uri", uri, "err", err)
			d.setFwStateLocked(fwIdle, fwResultConnLost)
		case len(data) == 0:
			d.setFwStateLocked(fwIdle, fwResultIntegrity)
		default:
			d.fwReceivedLocked(uri, data)
		}
		d.wake()
	}()
}

// stopDownloadLocked cancels a running download.
func (d *Device) stopDownloadLocked() {
	d.fw.epoch++
	if d.fw.cancel != nil {
		d.fw.cancel()
		d.fw.cancel = nil
	}
	d.fw.next = time.Time{}
}

// fwPackageWrittenLocked handles a package pushed to /5/0/0: an empty one
// resets the state machine, any other is downloaded at once.
func (d *Device) fwPackageWrittenLocked() {
	d.stopDownloadLocked()
	pkg := d.model.valueStored(pathFwPackage).Opaque()
	// The package is write-only: keep it out of the object tree.
	d.model.set(pathFwPackage, lwm2m.Opaque(nil))
	if len(pkg) == 0 {
		d.fw.pkg = nil
		d.setFwStateLocked(fwIdle, fwResultInitial)
		return
	}
	d.fwReceivedLocked("", bytes.Clone(pkg))
}

func (d *Device) fwReceivedLocked(uri string, pkg []byte) {
	sum := sha256.Sum256(pkg)
	d.fw.pkg = pkg
	d.fw.Download = FirmwareInfo{URI: uri, Size: len(pkg), SHA256: hex.EncodeToString(sum[:])}
	d.model.set(pathFwPkgName, lwm2m.String("flownexus-sim"))
	d.model.set(pathFwPkgVersion, lwm2m.String(packageVersion(pkg, d.model.value(pathFirmwareVer).StringValue())))
	d.setFwStateLocked(fwDownloaded, fwResultInitial)
}

// fwUpdateLocked starts installing the downloaded package (Execute /5/0/2);
// it takes Config.FirmwareDelay, then the device reboots into it.
func (d *Device) fwUpdateLocked() error {
	if st := d.model.value(pathFwState).IntValue(); st != fwDownloaded {
		return statusf(codes.MethodNotAllowed, "firmware state is %s, not downloaded", fwStateNames[st])
	}
	d.setFwStateLocked(fwUpdating, fwResultInitial)
	d.fw.next = d.clock.Now().Add(d.cfg.FirmwareDelay)
	return nil
}

// fwStepLocked finishes an update whose time has come: the firmware version
// becomes the package's, the result "success", and the device reboots.
func (d *Device) fwStepLocked(now time.Time) {
	if d.fw.next.IsZero() || now.Before(d.fw.next) {
		return
	}
	d.fw.next = time.Time{}
	if d.model.value(pathFwState).IntValue() != fwUpdating {
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

// download fetches a firmware package over CoAP (block-wise) or HTTP(S).
func (d *Device) download(ctx context.Context, u *url.URL) ([]byte, error) {
	if u.Scheme == "coap" {
		host := u.Host
		if u.Port() == "" {
			host += ":5683"
		}
		conn, err := udp.Dial(host, options.WithErrors(func(err error) { d.log.Debug("coap firmware download", "err", err) }),
			options.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		defer func() { _ = conn.Close(); <-conn.Done() }()
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		resp, err := conn.Get(ctx, path)
		if err != nil {
			return nil, err
		}
		defer conn.ReleaseMessage(resp)
		if resp.Code() == codes.NotFound || resp.Code() == codes.BadRequest {
			return nil, errInvalidURI
		}
		if resp.Code() != codes.Content {
			return nil, fmt.Errorf("coap firmware download: %v", resp.Code())
		}
		if n, err := resp.BodySize(); err == nil && n > maxFirmware {
			return nil, fmt.Errorf("firmware of %d bytes is too large", n)
		}
		return resp.ReadBody()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errInvalidURI
	}
	client := d.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errInvalidURI
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http firmware download: %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFirmware+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFirmware {
		return nil, fmt.Errorf("firmware larger than %d bytes", maxFirmware)
	}
	return data, nil
}
