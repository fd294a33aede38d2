package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/flownexus/flownexus/internal/store"
)

// DefaultMaxSize is the largest image accepted when Config.MaxSize is 0.
const DefaultMaxSize = 8 << 20

// The errors of Images; each is wrapped with what was refused.
var (
	// ErrInvalid: a version that does not match VersionPattern, an empty
	// image, a file name that names no image.
	ErrInvalid = errors.New("firmware: invalid")
	// ErrTooLarge: an image larger than the configured maximum.
	ErrTooLarge = errors.New("firmware: image too large")
	// ErrExists: an image of that version is stored already.
	ErrExists = errors.New("firmware: version exists")
	// ErrInUse: an update refers to the image, so it cannot be removed.
	ErrInUse = errors.New("firmware: image in use")
	// ErrNotFound: no image of that version (it also matches
	// store.ErrNotFound).
	ErrNotFound = fmt.Errorf("firmware: %w", store.ErrNotFound)
)

// VersionPattern is what an image version must match: a letter or digit,
// then up to 63 letters, digits and "._+-" (so that "<version>.bin" is a
// safe file name and URL path segment).
var VersionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// CheckVersion returns an ErrInvalid error when v is no valid version.
func CheckVersion(v string) error {
	if !VersionPattern.MatchString(v) {
		return fmt.Errorf("%w: version %q: want 1 to 64 letters, digits and . _ + - starting with a letter or digit", ErrInvalid, v)
	}
	return nil
}

// Filename is the file name of the image of version v: "<v>.bin".
func Filename(v string) string { return v + ".bin" }

// VersionOf returns the version a file name (as a download URL ends)
// names, and whether it names one: "1.2.bin" gives "1.2". Names with a
// path separator, "..", a NUL or anything else outside VersionPattern
// name none.
func VersionOf(filename string) (string, bool) {
	v, ok := strings.CutSuffix(filename, ".bin")
	if !ok || !VersionPattern.MatchString(v) {
		return "", false
	}
	return v, true
}

// Images is the image store: the firmware rows of the database and their
// files in one directory, <dir>/<version>.bin. An image is complete or
// absent: its file is written under a temporary name, synced and linked
// into place before its row is inserted, and removed again when the
// insert fails. It is safe for concurrent use; two processes (the server
// and the CLI) may share the directory.
type Images struct {
	st  *store.Store
	dir string
	max int64

	mu   sync.RWMutex // guards urls
	urls URLs
}

// Config configures Images.
type Config struct {
	Store *store.Store // required
	Dir   string       // the firmware directory, created when missing
	// MaxSize is the largest image accepted; 0 means DefaultMaxSize.
	MaxSize int64
}

// New returns the image store over cfg.Dir, creating the directory.
func New(cfg Config) (*Images, error) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("firmware directory: %w", err)
	}
	return &Images{st: cfg.Store, dir: cfg.Dir, max: cfg.MaxSize}, nil
}

// MaxSize is the largest image Upload accepts.
func (im *Images) MaxSize() int64 { return im.max }

// Dir is the firmware directory.
func (im *Images) Dir() string { return im.dir }

// Upload stores the image of version read from r: it checks the version,
// refuses an empty image (ErrInvalid), one larger than MaxSize
// (ErrTooLarge) and a version stored already (ErrExists), and records its
// size and SHA-256. On any error, a read error or ctx ending included,
// nothing is left: no file, no row. It writes an audit entry
// "firmware.upload".
func (im *Images) Upload(ctx context.Context, by store.Actor, version string, r io.Reader) (store.Firmware, error) {
	if err := CheckVersion(version); err != nil {
		return store.Firmware{}, err
	}
	if _, err := im.st.GetFirmwareByVersion(ctx, version); err == nil {
		return store.Firmware{}, fmt.Errorf("%w: %q", ErrExists, version)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Firmware{}, err
	}
	tmp, err := os.CreateTemp(im.dir, ".upload-*.tmp")
	if err != nil {
		return store.Firmware{}, fmt.Errorf("firmware: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, im.max+1)})
	switch {
	case err != nil:
		return store.Firmware{}, fmt.Errorf("firmware: reading image %q: %w", version, err)
	case n == 0:
		return store.Firmware{}, fmt.Errorf("%w: image %q is empty", ErrInvalid, version)
	case n > im.max:
		return store.Firmware{}, fmt.Errorf("%w: image %q is larger than %d bytes", ErrTooLarge, version, im.max)
	}
	if err := tmp.Sync(); err != nil {
		return store.Firmware{}, fmt.Errorf("firmware: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return store.Firmware{}, fmt.Errorf("firmware: %w", err)
	}
	f := store.Firmware{Version: version, Filename: Filename(version), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	final := filepath.Join(im.dir, f.Filename)
	if err := im.place(ctx, tmp.Name(), final, version); err != nil {
		return store.Firmware{}, err
	}
	done = true
	os.Remove(tmp.Name())
	syncDir(im.dir)
	out, err := im.st.CreateFirmware(ctx, f)
	if err != nil {
		os.Remove(final)
		if errors.Is(err, store.ErrConflict) {
			return store.Firmware{}, fmt.Errorf("%w: %q", ErrExists, version)
		}
		return store.Firmware{}, err
	}
	im.audit(ctx, by, "firmware.upload", out)
	return out, nil
}

// place links tmp to final without replacing a file there: a file left by
// an upload that died between its link and its row insert (no row) is
// replaced, the file of a stored image is ErrExists.
func (im *Images) place(ctx context.Context, tmp, final, version string) error {
	for range 2 {
		err := os.Link(tmp, final)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("firmware: %w", err)
		}
		if _, err := im.st.GetFirmwareByVersion(ctx, version); err == nil {
			return fmt.Errorf("%w: %q", ErrExists, version)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("firmware: removing stale %s: %w", final, err)
		}
	}
	return fmt.Errorf("%w: %q (another upload of it is in progress)", ErrExists, version)
}

// syncDir makes a rename or link in dir durable; errors are ignored (some
// file systems cannot sync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// List returns every image, newest first.
func (im *Images) List(ctx context.Context) ([]store.Firmware, error) {
	return im.st.ListFirmware(ctx)
}

// Get returns the image of version; ErrNotFound when there is none.
func (im *Images) Get(ctx context.Context, version string) (store.Firmware, error) {
	if err := CheckVersion(version); err != nil {
		return store.Firmware{}, fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	f, err := im.st.GetFirmwareByVersion(ctx, version)
	if errors.Is(err, store.ErrNotFound) {
		return store.Firmware{}, fmt.Errorf("%w: %q", ErrNotFound, version)
	}
	return f, err
}

// Remove deletes the image of version, its row and then its file. An
// image that an unfinished update or campaign (running or paused) uses is
// ErrInUse; finished updates and campaigns keep its version in their
// history (store.DeleteFirmware). It writes an audit entry
// "firmware.remove".
func (im *Images) Remove(ctx context.Context, by store.Actor, version string) error {
	f, err := im.Get(ctx, version)
	if err != nil {
		return err
	}
	active, err := im.st.ListFirmwareUpdates(ctx, store.FirmwareUpdateFilter{FirmwareID: f.ID, ActiveOnly: true, Limit: 1})
	if err != nil {
		return err
	}
	if len(active) > 0 {
		return fmt.Errorf("%w: an unfinished update (id %d) uses %q", ErrInUse, active[0].ID, version)
	}
	if err := im.st.DeleteFirmware(ctx, f.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: an unfinished update or campaign uses %q", ErrInUse, version)
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, version)
		}
		return err
	}
	if err := os.Remove(filepath.Join(im.dir, f.Filename)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("firmware: image %q removed, its file not: %w", version, err)
	}
	im.audit(ctx, by, "firmware.remove", f)
	return nil
}

// Open opens the image a download names by its file name ("1.2.bin") for
// reading: a name that names no image (a path, "..", an unknown version)
// is ErrNotFound. The caller closes the file.
func (im *Images) Open(ctx context.Context, filename string) (*os.File, store.Firmware, error) {
	v, ok := VersionOf(filename)
	if !ok {
		return nil, store.Firmware{}, fmt.Errorf("%w: %q", ErrNotFound, filename)
	}
	f, err := im.Get(ctx, v)
	if err != nil {
		return nil, store.Firmware{}, err
	}
	if f.Filename != filename {
		return nil, store.Firmware{}, fmt.Errorf("%w: %q", ErrNotFound, filename)
	}
	file, err := os.Open(filepath.Join(im.dir, f.Filename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, store.Firmware{}, fmt.Errorf("%w: %q (its file is missing)", ErrNotFound, filename)
	}
	if err != nil {
		return nil, store.Firmware{}, fmt.Errorf("firmware: %w", err)
	}
	return file, f, nil
}

func (im *Images) audit(ctx context.Context, by store.Actor, action string, f store.Firmware) {
	detail := fmt.Sprintf(`{"version":%q,"size":%d,"sha256":%q}`, f.Version, f.Size, f.SHA256)
	// The image is stored (or removed) either way: an audit failure is
	// not the caller's error.
	_, _ = im.st.AppendAudit(context.WithoutCancel(ctx), by.Entry(action, f.Version, []byte(detail)))
}

// ctxReader ends a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// URLs are the bases of the download URLs of images: HTTP the base of
// the HTTPS (or plain HTTP) server ending in "/", e.g.
// "https://fw.example.org/"; CoAP and CoAPS "coap://host:port/" and
// "coaps://host:port/". An empty base has no URL.
type URLs struct {
	HTTP, CoAP, CoAPS string
}

// SetURLs sets the bases ImageURLs builds on (the server sets them once
// its listeners are bound).
func (im *Images) SetURLs(u URLs) {
	im.mu.Lock()
	im.urls = u
	im.mu.Unlock()
}

// ImageURLs returns the absolute download URLs of the image with
// filename: <HTTP>binaries/<filename>, <CoAP>fw/<filename>,
// <CoAPS>fw/<filename>, each "" when its base is.
func (im *Images) ImageURLs(filename string) URLs {
	im.mu.RLock()
	u := im.urls
	im.mu.RUnlock()
	join := func(base, path string) string {
		if base == "" {
			return ""
		}
		return base + path + filename
	}
	return URLs{HTTP: join(u.HTTP, "binaries/"), CoAP: join(u.CoAP, "fw/"), CoAPS: join(u.CoAPS, "fw/")}
}

// DownloadPath is the path of an image on the download server:
// "/binaries/<filename>".
func DownloadPath(filename string) string { return "/binaries/" + filename }
