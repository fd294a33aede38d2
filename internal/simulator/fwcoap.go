package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// blockSZX returns the Block2 size exponent of a block size (a power of
// two in 16..1024).
func blockSZX(size int) (blockwise.SZX, bool) {
	for szx := blockwise.SZX16; szx <= blockwise.SZX1024; szx++ {
		if int(szx.Size()) == size {
			return szx, true
		}
	}
	return 0, false
}

// dialFirmwareCoAP opens a CoAP connection to the host of a coap:// or
// coaps:// URI (coaps with the device's own DTLS credentials), with
// go-coap's block-wise layer off: downloadCoAP asks for each block itself.
func (d *Device) dialFirmwareCoAP(ctx context.Context, u *url.URL) (*client.Conn, error) {
	host := u.Host
	if u.Port() == "" {
		port := "5683"
		if u.Scheme == "coaps" {
			port = "5684"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	opts := []udp.Option{
		options.WithErrors(func(err error) { d.log.Debug("coap firmware download", "err", err) }),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithContext(ctx),
	}
	if u.Scheme == "coap" {
		return udp.Dial(host, opts...)
	}
	if d.cfg.PSK == nil && d.cfg.Certificate == nil {
		return nil, fmt.Errorf("%w: coaps needs DTLS credentials", errUnsupportedProtocol)
	}
	dc, _, err := d.handshakeDTLS(ctx, host)
	if err != nil {
		return nil, err
	}
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}

// downloadCoAP fetches a package by CoAP Block2, one block of
// Config.FirmwareBlockSize bytes per request (or smaller when the server
// says so). After a failed request it dials again and continues from the
// next block it lacks, up to fwRetries times in a row.
func (d *Device) downloadCoAP(ctx context.Context, u *url.URL, drop *dropOnce) ([]byte, error) {
	szx, _ := blockSZX(d.cfg.FirmwareBlockSize) // Validate checked it
	path := u.Path
	if path == "" {
		path = "/"
	}
	var queries []string
	if u.RawQuery != "" {
		queries = strings.Split(u.RawQuery, "&")
	}
	var conn *client.Conn
	closeConn := func() {
		if conn != nil {
			_ = conn.Close()
			<-conn.Done()
			conn = nil
		}
	}
	defer closeConn()
	var buf []byte
	failures := 0
	for {
		var err error
		if conn == nil {
			conn, err = d.dialFirmwareCoAP(ctx, u)
			if errors.Is(err, errUnsupportedProtocol) {
				return nil, err
			}
		}
		var part []byte
		var more bool
		if err == nil {
			part, more, szx, err = d.getBlock(ctx, conn, path, queries, len(buf), szx)
		}
		if err == nil {
			buf = append(buf, part...)
			switch {
			case len(buf) > maxFirmware:
				return nil, errFirmwareTooLarge
			case !more:
				return buf, nil
			case !drop.hit(int64(len(buf))):
				failures = 0
				continue
			}
			err = errConnDropped
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errInvalidURI), errors.Is(err, errFirmwareTooLarge):
			return nil, err
		}
		closeConn()
		failures++
		if failures > fwRetries {
			return nil, fmt.Errorf("after %d retries at byte %d: %w", fwRetries, len(buf), err)
		}
		d.log.Info("firmware download interrupted, resuming", "uri", u.Redacted(), "offset", len(buf), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(failures) * 50 * time.Millisecond):
		}
	}
}

// getBlock asks for the block of size szx that starts at off (a multiple
// of the size) and returns its bytes, whether more follow and the size
// the server answered with (at most szx).
func (d *Device) getBlock(ctx context.Context, conn *client.Conn, path string, queries []string, off int, szx blockwise.SZX) ([]byte, bool, blockwise.SZX, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	req, err := conn.NewGetRequest(ctx, path)
	if err != nil {
		return nil, false, szx, fmt.Errorf("%w: %v", errInvalidURI, err)
	}
	defer conn.ReleaseMessage(req)
	for _, q := range queries {
		req.AddQuery(q)
	}
	num := int64(off) / szx.Size()
	opt, err := blockwise.EncodeBlockOption(szx, num, false)
	if err != nil {
		return nil, false, szx, err
	}
	req.SetOptionUint32(message.Block2, opt)
	resp, err := conn.Do(req)
	if err != nil {
		return nil, false, szx, err
	}
	defer conn.ReleaseMessage(resp)
	switch c := resp.Code(); {
	case c == codes.Content:
	case c == codes.NotFound || c == codes.BadRequest || c == codes.Forbidden || c == codes.Unauthorized || c == codes.BadOption:
		return nil, false, szx, fmt.Errorf("%w: %v", errInvalidURI, c)
	default:
		return nil, false, szx, fmt.Errorf("coap firmware download: %v", c)
	}
	if n, err := resp.GetOptionUint32(message.Size2); err == nil && n > maxFirmware {
		return nil, false, szx, fmt.Errorf("%w: %d bytes", errFirmwareTooLarge, n)
	}
	body, err := resp.ReadBody()
	if err != nil {
		return nil, false, szx, err
	}
	v, err := resp.GetOptionUint32(message.Block2)
	if err != nil {
		if off == 0 {
			return body, false, szx, nil // small enough for one message
		}
		return nil, false, szx, fmt.Errorf("coap firmware download: no Block2 in the answer for byte %d", off)
	}
	rszx, rnum, more, err := blockwise.DecodeBlockOption(v)
	if err != nil || rszx > szx || rszx == blockwise.SZXBERT {
		return nil, false, szx, fmt.Errorf("coap firmware download: bad Block2 %#x in the answer", v)
	}
	if rnum*rszx.Size() != int64(off) || int64(len(body)) > rszx.Size() || (more && int64(len(body)) != rszx.Size()) {
		return nil, false, szx, fmt.Errorf("coap firmware download: block %d of %d bytes (%d) does not continue at byte %d", rnum, rszx.Size(), len(body), off)
	}
	return body, more, rszx, nil
}
