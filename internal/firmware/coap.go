package firmware

import (
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/coapd"
)

// CoAPPattern is the route of CoAP downloads (coapd.Server.Handle):
// GET fw/<version>.bin.
const CoAPPattern = "fw/{file}"

// CoAPHandler serves GET fw/{file}: the image as application/octet-stream
// with its ETag (the first 8 bytes of the SHA-256: CoAP ETags are at most
// 8 bytes), block-wise (Block2) in the block size the client asks for
// (16 to 1024 bytes; 1024 when it asks for none). An unknown image is
// 4.04. The body is a section of the file, read block by block as the
// device asks; the file is closed fileTTL after the last block was read
// (and opened again should the device ask for more).
func (im *Images) CoAPHandler() coapd.Handler {
	return func(req *coapd.Request) (coapd.Response, error) {
		f, img, err := im.Open(req.Context(), req.Var("file"))
		if errors.Is(err, ErrNotFound) {
			return coapd.Response{Code: codes.NotFound}, nil
		}
		if err != nil {
			return coapd.Response{}, err
		}
		etag, _ := hex.DecodeString(img.SHA256)
		if len(etag) > 8 {
			etag = etag[:8]
		}
		return coapd.Response{
			Code:    codes.Content,
			Format:  message.AppOctets,
			Body:    newTimedFile(f, img.Size),
			Options: message.Options{{ID: message.ETag, Value: etag}},
		}, nil
	}
}

// fileTTL bounds how long a CoAP download keeps its file open after its
// last block was read: go-coap never closes a Body (it drops it with its
// block-wise transfer), so the file is closed after this long and opened
// again by name if a block is asked for later. Many devices downloading
// at once thus hold a file descriptor each only while their blocks flow.
const fileTTL = 10 * time.Second

// timedFile is an io.ReadSeeker over the first size bytes of a file that
// closes the file fileTTL after its last read, and reopens it by name
// when read again.
type timedFile struct {
	mu    sync.Mutex
	name  string
	size  int64
	f     *os.File // nil when closed
	off   int64
	timer *time.Timer
}

func newTimedFile(f *os.File, size int64) *timedFile {
	t := &timedFile{name: f.Name(), size: size, f: f}
	t.timer = time.AfterFunc(fileTTL, t.close)
	return t
}

func (t *timedFile) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

func (t *timedFile) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.off >= t.size {
		return 0, io.EOF
	}
	if t.f == nil {
		f, err := os.Open(t.name)
		if err != nil {
			return 0, err
		}
		t.f = f
	}
	t.timer.Reset(fileTTL)
	if rest := t.size - t.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := t.f.ReadAt(p, t.off)
	t.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (t *timedFile) Seek(offset int64, whence int) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += t.off
	case io.SeekEnd:
		offset += t.size
	default:
		return 0, errors.New("firmware: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("firmware: negative position")
	}
	t.off = offset
	return offset, nil
}
