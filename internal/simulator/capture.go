package simulator

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Capture is one payload a device sent: a Read, Discover or Observe answer,
// a notification, a Register or Update object list, or a Send.
type Capture struct {
	Seq     int    // per device, from 1
	Op      string // "read", "discover", "observe", "notify", "register", "update", "send", ...
	Path    lwm2m.Path
	Format  lwm2m.MediaType
	Payload []byte
}

// FileName is the name a capture is stored under in Config.CaptureDir:
// "<seq>_<op>_<path>.<ext>", e.g. "000012_read_3303_0.senml.cbor", with the
// path's IDs joined by "_" ("root" for /) and an extension naming the
// format.
func (c Capture) FileName() string {
	p := "root"
	if !c.Path.IsRoot() {
		p = strings.ReplaceAll(strings.TrimPrefix(c.Path.String(), "/"), "/", "_")
	}
	return fmt.Sprintf("%06d_%s_%s%s", c.Seq, c.Op, p, FormatExt(c.Format))
}

// FormatExt returns the file extension captures of format f carry.
func FormatExt(f lwm2m.MediaType) string {
	switch f {
	case lwm2m.FormatText:
		return ".txt"
	case lwm2m.FormatOpaque:
		return ".bin"
	case lwm2m.FormatCBOR:
		return ".cbor"
	case lwm2m.FormatTLV:
		return ".tlv"
	case lwm2m.FormatSenMLJSON:
		return ".senml.json"
	case lwm2m.FormatSenMLCBOR:
		return ".senml.cbor"
	case lwm2m.FormatLwM2MCBOR:
		return ".lwm2m.cbor"
	case lwm2m.FormatJSON:
		return ".lwm2m.json"
	case lwm2m.FormatLinkFormat:
		return ".link"
	}
	return "." + strconv.Itoa(int(f))
}

// capture stores a sent payload under Config.CaptureDir/<endpoint>/, the
// endpoint's ':' replaced by '_'.
func (d *Device) capture(op string, p lwm2m.Path, f lwm2m.MediaType, payload []byte) {
	if d.cfg.CaptureDir == "" {
		return
	}
	d.mu.Lock()
	d.capSeq++
	c := Capture{Seq: d.capSeq, Op: op, Path: p, Format: f, Payload: payload}
	d.mu.Unlock()
	dir := filepath.Join(d.cfg.CaptureDir, strings.ReplaceAll(d.endpoint, ":", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.log.Warn("capture", "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, c.FileName()), payload, 0o644); err != nil {
		d.log.Warn("capture", "err", err)
	}
}
