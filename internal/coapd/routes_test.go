package coapd_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
)

// image is the payload of the download route: five 1 KiB blocks and a
// bit, with a byte pattern that shows a block out of place.
var image = func() []byte {
	b := make([]byte, 5000)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// downloads is a route another package adds (as firmware will): GET
// fw/{image} answers a payload larger than a block, which go-coap sends
// block-wise (Block2). It records who asked.
type downloads struct {
	mu    sync.Mutex
	calls []downloadCall
}

type downloadCall struct{ image, identity, endpoint string }

func (d *downloads) handle(req *coapd.Request) (coapd.Response, error) {
	identity, endpoint := req.Identity()
	d.mu.Lock()
	d.calls = append(d.calls, downloadCall{image: req.Var("image"), identity: identity, endpoint: endpoint})
	d.mu.Unlock()
	switch req.Var("image") {
	case "v1":
		req.Endpoint = endpoint
		return coapd.Response{Code: codes.Content, Format: message.AppOctets, Body: bytes.NewReader(image),
			Options: message.Options{{ID: message.ETag, Value: []byte("v1")}}}, nil
	case "broken":
		return coapd.Response{}, errors.New("image store unavailable")
	}
	return coapd.Response{Code: codes.NotFound}, nil
}

func (d *downloads) last(t *testing.T) downloadCall {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) == 0 {
		t.Fatal("the route's handler was not called")
	}
	return d.calls[len(d.calls)-1]
}

// fetch GETs path and returns the code, the whole payload (block-wise
// when the server sends it so) and the ETag.
func fetch(t *testing.T, cc *udpclient.Conn, path string) (codes.Code, []byte, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	var body []byte
	if resp.Body() != nil {
		if body, err = resp.ReadBody(); err != nil {
			t.Fatal(err)
		}
	}
	etag, _ := resp.ETag()
	return resp.Code(), body, etag
}

// TestExtraRouteBlockwise: a route added with Handle is served like the
// LwM2M ones, over plain CoAP and over DTLS: its path variable and the
// device's DTLS identity reach the handler, a large answer goes
// block-wise, and method and path mismatches get 4.05 and 4.04.
func TestExtraRouteBlockwise(t *testing.T) {
	s := newSecureStack(t)
	s.addPSK(t, "urn:imei:1", "dev-1", pskKey)
	var d downloads
	s.srv.Handle(codes.GET, "fw/{image}", d.handle)

	plain := dial(t, s.udp)
	code, body, etag := fetch(t, plain, "/fw/v1")
	if code != codes.Content || !bytes.Equal(body, image) || string(etag) != "v1" {
		t.Fatalf("plain CoAP: %v, %d bytes (equal: %v), ETag %q", code, len(body), bytes.Equal(body, image), etag)
	}
	if c := d.last(t); c != (downloadCall{image: "v1"}) {
		t.Fatalf("plain CoAP handler saw %+v, want image v1 and no identity", c)
	}
	// On the wire: the first answer is block 0 of 1 KiB, more to come.
	raddr, _ := net.ResolveUDPAddr("udp", s.udp)
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := rawExchange(t, conn, message.Message{Code: codes.GET, Type: message.Confirmable, MessageID: 77,
		Token: message.Token{7, 7}, Options: message.Options{{ID: message.URIPath, Value: []byte("fw")},
			{ID: message.URIPath, Value: []byte("v1")}}})
	v, err := first.Options.GetUint32(message.Block2)
	if err != nil {
		t.Fatalf("answer without Block2: %v", first.String())
	}
	if szx, num, more, err := blockwise.DecodeBlockOption(v); err != nil || szx.Size() != 1024 || num != 0 || !more ||
		!bytes.Equal(first.Payload, image[:1024]) {
		t.Fatalf("first block: size %d, num %d, more %v, %v; payload %d bytes", szx.Size(), num, more, err, len(first.Payload))
	}

	secure, err := dialPSK(t, s.dtls, "dev-1", pskKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ = fetch(t, secure, "/fw/v1")
	if code != codes.Content || !bytes.Equal(body, image) {
		t.Fatalf("DTLS: %v, %d bytes (equal: %v)", code, len(body), bytes.Equal(body, image))
	}
	if c := d.last(t); c != (downloadCall{image: "v1", identity: "psk:dev-1", endpoint: "urn:imei:1"}) {
		t.Fatalf("DTLS handler saw %+v", c)
	}

	// The handler's own answer, an error mapped to 5.00 and logged, and
	// the table's 4.04 and 4.05.
	if code, _, _ := fetch(t, plain, "/fw/v2"); code != codes.NotFound {
		t.Errorf("unknown image: %v", code)
	}
	if code, _, _ := fetch(t, secure, "/fw/broken"); code != codes.InternalServerError {
		t.Errorf("handler error: %v", code)
	}
	if !strings.Contains(s.logs.String(), "image store unavailable") {
		t.Errorf("handler error not logged:\n%s", s.logs.String())
	}
	if code, _, _ := fetch(t, plain, "/fw"); code != codes.NotFound {
		t.Errorf("GET /fw: %v, want 4.04", code)
	}
	if code, _, _ := fetch(t, plain, "/rd"); code != codes.MethodNotAllowed {
		t.Errorf("GET /rd: %v, want 4.05", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := plain.Post(ctx, "/fw/v1", message.TextPlain, bytes.NewReader(nil))
	if err != nil || resp.Code() != codes.MethodNotAllowed {
		t.Fatalf("POST /fw/v1: %v %v, want 4.05", resp, err)
	}

	// The LwM2M routes still serve.
	if loc := register(t, plain, "urn:imei:plain"); loc == "" {
		t.Fatal("Register after adding a route: no location")
	}
}

// TestHandleRefusesBadRoutes: malformed patterns, methods that are not
// request methods and a second route for the same method and pattern are
// programming errors.
func TestHandleRefusesBadRoutes(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	h := func(*coapd.Request) (coapd.Response, error) { return coapd.Response{Code: codes.Content}, nil }
	for _, c := range []struct {
		method  codes.Code
		pattern string
	}{
		{codes.POST, "rd/{other}"}, // the Update route's shape
		{codes.POST, "dp"},
		{codes.GET, ""},
		{codes.GET, "/fw"},
		{codes.GET, "fw/"},
		{codes.GET, "fw//x"},
		{codes.GET, "fw/{}"},
		{codes.GET, "fw/{a}/{a}"},
		{codes.GET, "fw/x{a}"},
		{codes.Content, "fw"},
		{codes.Empty, "fw"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%v, %q) did not panic", c.method, c.pattern)
				}
			}()
			s.srv.Handle(c.method, c.pattern, h)
		}()
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Handle with a nil handler did not panic")
			}
		}()
		s.srv.Handle(codes.GET, "fw", nil)
	}()
	// The same path for another method, and another shape, are fine.
	s.srv.Handle(codes.GET, "rd/{id}", h)
	s.srv.Handle(codes.POST, "rd/{id}/x", h)
}
