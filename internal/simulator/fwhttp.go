package simulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxTLSRecord is the largest TLS record (header length field) an nRF91
// modem's offloaded TLS stack accepts; a larger one fails the socket with
// NRF_EMSGSIZE.
const maxTLSRecord = 2048

// ErrTLSRecordTooLarge fails an HTTPS firmware download when the server
// sends a TLS record larger than an nRF91 modem accepts.
var ErrTLSRecordTooLarge = errors.New("NRF_EMSGSIZE: TLS record larger than 2048 bytes")

// errFirmwareTooLarge reports a package larger than the device's flash
// (maxFirmware): result 2, not enough flash.
var errFirmwareTooLarge = errors.New("firmware package larger than the flash")

// errConnDropped is the injected connection drop (Config.FirmwareDropAt).
var errConnDropped = errors.New("connection dropped (fault injection)")

// errUnsupportedProtocol reports a Package URI scheme the device does not
// download with: result 9.
var errUnsupportedProtocol = errors.New("unsupported protocol")

// recordScanner follows the TLS record layer in a byte stream (RFC 8446
// §5.1: type, legacy version, 16-bit length, then length bytes) and
// rejects records whose length exceeds max or whose header is not a TLS
// record header. The zero value expects a record header.
type recordScanner struct {
	max  int
	hdr  [5]byte
	nhdr int // header bytes seen of the next record
	left int // body bytes left of the current record
	// largest is the largest record length seen.
	largest int
}

// feed consumes b; the first error is final (the caller stops feeding).
func (s *recordScanner) feed(b []byte) error {
	for len(b) > 0 {
		if s.left > 0 {
			n := min(s.left, len(b))
			s.left -= n
			b = b[n:]
			continue
		}
		n := copy(s.hdr[s.nhdr:], b)
		s.nhdr += n
		b = b[n:]
		if s.nhdr < len(s.hdr) {
			return nil
		}
		s.nhdr = 0
		typ, major := s.hdr[0], s.hdr[1]
		length := int(s.hdr[3])<<8 | int(s.hdr[4])
		if typ < 20 || typ > 24 || major != 3 {
			return fmt.Errorf("not a TLS record header: % x", s.hdr)
		}
		s.largest = max(s.largest, length)
		if length > s.max {
			return fmt.Errorf("%w: a record of type %d carries %d bytes", ErrTLSRecordTooLarge, typ, length)
		}
		s.left = length
	}
	return nil
}

// fwConn is the device side of a firmware download's TCP connection: it
// checks the TLS records the server sends (when scan is set), fails a read
// that waits longer than idle for data, and can drop the connection once
// after a number of bytes.
type fwConn struct {
	net.Conn
	idle  time.Duration
	scan  *recordScanner // nil for plain HTTP
	drop  *dropOnce
	fatal *firstError // receives a record error, which no retry can cure
	err   error       // first failure; guarded by the single reader
}

// firstError keeps the first error set. Safe for concurrent use.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (c *fwConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.drop != nil {
		n, ok := c.drop.allow(len(p))
		if !ok {
			c.err = errConnDropped
			_ = c.Conn.Close()
			return 0, c.err
		}
		p = p[:n]
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if c.drop != nil {
		c.drop.add(n)
	}
	if c.scan != nil {
		if e := c.scan.feed(p[:n]); e != nil {
			c.err = e
			c.fatal.set(e)
			_ = c.Conn.Close()
			return 0, e
		}
	}
	return n, err
}

// dropOnce drops a download's connection once, after at bytes were read
// (counted over all its connections). Safe for concurrent use.
type dropOnce struct {
	mu      sync.Mutex
	at      int64 // 0: never
	read    int64
	dropped bool
}

// allow returns how many of n bytes may be read before the drop point,
// and false when the connection is to be dropped now.
func (d *dropOnce) allow(n int) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at <= 0 || d.dropped {
		return n, true
	}
	if d.read >= d.at {
		d.dropped = true
		return 0, false
	}
	return int(min(int64(n), d.at-d.read)), true
}

// hit reports, once, whether a download that holds total bytes has
// reached the drop point (a nil dropOnce never drops).
func (d *dropOnce) hit(total int64) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at <= 0 || d.dropped || total < d.at {
		return false
	}
	d.dropped = true
	return true
}

func (d *dropOnce) add(n int) {
	d.mu.Lock()
	d.read += int64(n)
	d.mu.Unlock()
}

// fwRetries is how often a download retries (resuming where it stopped)
// after a failed request before it reports "connection lost".
const fwRetries = 3

// httpTransport returns the transport of one HTTP(S) firmware download:
// HTTP/1.1 on one kept-alive connection, no compression, TLS trusting
// Config.FirmwareCA (or the roots of Config.HTTPClient's transport), with
// every TLS record the server sends checked against maxTLSRecord.
func (d *Device) httpTransport(drop *dropOnce, fatal *firstError) *http.Transport {
	var tlsCfg *tls.Config
	if c := d.cfg.HTTPClient; c != nil {
		if t, ok := c.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			tlsCfg = t.TLSClientConfig.Clone()
		}
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	if d.cfg.FirmwareCA != nil {
		tlsCfg.RootCAs = d.cfg.FirmwareCA
	}
	tlsCfg.NextProtos = []string{"http/1.1"}
	dialer := &net.Dialer{Timeout: d.cfg.RequestTimeout}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &fwConn{Conn: c, idle: d.cfg.RequestTimeout, drop: drop}, nil
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tc := tls.Client(&fwConn{Conn: c, idle: d.cfg.RequestTimeout, scan: &recordScanner{max: maxTLSRecord}, drop: drop, fatal: fatal}, cfg)
			hctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				_ = c.Close()
				return nil, err
			}
			return tc, nil
		},
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableCompression:    true,
		MaxConnsPerHost:       1,
		MaxIdleConnsPerHost:   1,
		ResponseHeaderTimeout: d.cfg.RequestTimeout,
		IdleConnTimeout:       30 * time.Second,
	}
}

// downloadHTTP fetches a package over HTTP(S) as Nordic's download client
// does: by Range requests of Config.FirmwareChunk bytes over one
// kept-alive connection (a new one when the server closed it), resuming
// from the bytes received after a failure, up to fwRetries times in a
// row. A server that ignores Range (200) sends the whole package at once.
func (d *Device) downloadHTTP(ctx context.Context, u *url.URL, drop *dropOnce) ([]byte, error) {
	// net/http retries a GET on a new connection when a reused one fails
	// before the answer: a record error is caught here all the same, as
	// the modem's socket error ends its download.
	var fatal firstError
	tr := d.httpTransport(drop, &fatal)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var buf []byte
	total := -1
	failures := 0
	for total < 0 || len(buf) < total {
		part, size, err := d.fetchRange(ctx, client, u, len(buf))
		if e := fatal.get(); e != nil {
			err = e
		}
		switch {
		case err == nil:
			failures = 0
			if size < 0 { // 200: the whole package
				return part, nil
			}
			total = size
			buf = append(buf, part...)
			continue
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errInvalidURI), errors.Is(err, errFirmwareTooLarge), errors.Is(err, ErrTLSRecordTooLarge):
			return nil, err
		}
		failures++
		if failures > fwRetries {
			return nil, fmt.Errorf("after %d retries at byte %d: %w", fwRetries, len(buf), err)
		}
		d.log.Info("firmware download interrupted, resuming", "uri", u.Redacted(), "offset", len(buf), "err", err)
		tr.CloseIdleConnections()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(failures) * 50 * time.Millisecond):
		}
	}
	return buf, nil
}

// fetchRange asks for the chunk at off and returns it with the package's
// total size from Content-Range, or the whole package with total -1 when
// the server answered 200.
func (d *Device) fetchRange(ctx context.Context, client *http.Client, u *url.URL, off int) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, errInvalidURI
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+d.cfg.FirmwareChunk-1))
	req.Header.Set("User-Agent", "flownexus-sim")
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxFirmware+1))
		if err != nil {
			return nil, 0, err
		}
		if len(data) > maxFirmware {
			return nil, 0, errFirmwareTooLarge
		}
		return data, -1, nil
	case http.StatusRequestedRangeNotSatisfiable:
		// Past the end: the package is off bytes long (0: empty).
		if _, _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && total == off {
			return nil, total, nil
		}
		return nil, 0, fmt.Errorf("http firmware download: %s at byte %d", resp.Status, off)
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusUnauthorized, http.StatusBadRequest:
		return nil, 0, fmt.Errorf("%w: %s", errInvalidURI, resp.Status)
	default:
		return nil, 0, fmt.Errorf("http firmware download: %s", resp.Status)
	}
	first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || first != off || last < first || last >= total || last-first >= d.cfg.FirmwareChunk {
		return nil, 0, fmt.Errorf("http firmware download: bad Content-Range %q for bytes %d-", resp.Header.Get("Content-Range"), off)
	}
	if total > maxFirmware {
		return nil, 0, fmt.Errorf("%w: %d bytes", errFirmwareTooLarge, total)
	}
	part := make([]byte, last-first+1)
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		return nil, 0, err
	}
	return part, total, nil
}

// parseContentRange parses "bytes first-last/total" (a 416 answer's
// "bytes */total" gives first = last = -1).
func parseContentRange(s string) (first, last, total int, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	total, err := strconv.Atoi(tot)
	if err != nil || total < 0 {
		return 0, 0, 0, false
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || first < 0 || last < 0 {
		return 0, 0, 0, false
	}
	return first, last, total, true
}
