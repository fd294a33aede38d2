package simulator

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

var fuzzMethods = []codes.Code{codes.GET, codes.POST, codes.PUT, codes.DELETE, codes.FETCH, codes.PATCH, codes.IPATCH}

// FuzzServe feeds arbitrary server requests to a device's request handling
// (without the network): it must never panic, must answer with a success,
// client error or server error code, and every 2.05 answer must decode
// with the codec of its content format.
func FuzzServe(f *testing.F) {
	entries, err := os.ReadDir(capturesDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(capturesDir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		name := e.Name()
		parts := strings.SplitN(name, "_", 3)
		dot := strings.IndexByte(parts[2], '.')
		path := "/"
		if p := parts[2][:dot]; p != "root" {
			path = "/" + strings.ReplaceAll(p, "_", "/")
		}
		ext := parts[2][dot:]
		var cf uint16
		for _, m := range []lwm2m.MediaType{lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatTLV,
			lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatJSON, lwm2m.FormatLinkFormat} {
			if FormatExt(m) == ext {
				cf = uint16(m)
			}
		}
		f.Add(uint8(2), path, true, cf, false, uint16(0), false, uint32(0), "", data) // PUT
		f.Add(uint8(1), path, true, cf, false, uint16(0), false, uint32(0), "", data) // POST
		f.Add(uint8(6), "/", true, cf, false, uint16(0), false, uint32(0), "", data)  // iPATCH
		f.Add(uint8(0), path, false, uint16(0), true, cf, false, uint32(0), "", []byte(nil))
	}
	f.Add(uint8(4), "/", true, uint16(lwm2m.FormatSenMLJSON), true, uint16(lwm2m.FormatSenMLCBOR), true, uint32(0), "", []byte(`[{"n":"/3/0"},{"n":"/3303"}]`))
	f.Add(uint8(0), "/3303/0/5700", false, uint16(0), false, uint16(0), true, uint32(0), "", []byte(nil))
	f.Add(uint8(2), "/3303/0/5700", false, uint16(0), false, uint16(0), false, uint32(0), "pmin=1&pmax=5&gt=3&st=0.5", []byte(nil))
	f.Add(uint8(1), "/3/0/12", true, uint16(0), false, uint16(0), false, uint32(0), "", []byte("0='a',1"))
	f.Add(uint8(1), "/3303", true, uint16(lwm2m.FormatSenMLJSON), false, uint16(0), false, uint32(0), "", []byte(`[{"bn":"/3303/4/","n":"5750","vs":"x"}]`))
	f.Add(uint8(3), "/3303/0", false, uint16(0), false, uint16(0), false, uint32(0), "", []byte(nil))

	d, err := NewDevice(Config{Server: "127.0.0.1:1", Clock: newFakeClock()}, 0)
	if err != nil {
		f.Fatal(err)
	}
	d.fetchFirmware = func(context.Context, *url.URL) ([]byte, error) { return nil, errors.New("no network in fuzzing") }
	f.Fuzz(func(t *testing.T, method uint8, path string, hasCF bool, cf uint16, hasAccept bool, acc uint16, hasObs bool, obs uint32, queries string, body []byte) {
		req := pool.NewMessage(context.Background())
		req.SetCode(fuzzMethods[int(method)%len(fuzzMethods)])
		if err := req.SetPath(path); err != nil {
			return
		}
		if hasCF {
			req.SetContentFormat(message.MediaType(cf))
		}
		if hasAccept {
			req.SetAccept(message.MediaType(acc))
		}
		if hasObs {
			req.SetObserve(obs & 0xFFFFFF)
		}
		if queries != "" {
			for q := range strings.SplitSeq(queries, "&") {
				req.AddQuery(q)
			}
		}
		if body != nil {
			req.SetBody(bytes.NewReader(body))
		}
		req.SetToken(message.Token("fuzz"))
		res := d.serve(req)
		if c := res.code >> 5; c != 2 && c != 4 && c != 5 {
			t.Fatalf("answer code %v", res.code)
		}
		if res.code == codes.Content && res.format != lwm2m.FormatLinkFormat {
			base := res.path
			if strings.Contains(res.op, "composite") {
				base = lwm2m.Root
			}
			if _, err := decode(res.format, res.body, base, testTypes, d.clock.Now()); err != nil {
				t.Fatalf("%s %s: answer as %v does not decode: %v\n%q", res.op, res.path, res.format, err, res.body)
			}
		}
		// Keep the device usable: drop what the request started.
		d.mu.Lock()
		clear(d.obs)
		d.wantRegister, d.wantUpdate, d.wantDisable = false, false, false
		d.mu.Unlock()
	})
}

// FuzzImageHeader feeds arbitrary packages to the firmware package check:
// it must never panic, must accept every FirmwareImage and a package it
// accepts with a header must have the size the header declares.
func FuzzImageHeader(f *testing.F) {
	f.Add(FirmwareImage("1.2.3", 256))
	f.Add(FirmwareImage(strings.Repeat("v", 64), 300))
	f.Add([]byte("version=1.0.1\n"))
	f.Add([]byte("FNXSIM1 version=1 size=128 sha256=" + strings.Repeat("0", 64) + "\n"))
	f.Add([]byte("FNXSIM1 "))
	f.Fuzz(func(t *testing.T, pkg []byte) {
		v, err := verifyImage(pkg, "1.0.0")
		h, herr := parseImageHeader(pkg)
		if err == nil && herr == nil && (len(pkg) != h.size || v != h.version) {
			t.Fatalf("accepted %d bytes as %+v", len(pkg), h)
		}
		if err == nil && v == "" {
			t.Fatal("accepted without a version")
		}
	})
}

// FuzzRecordScanner feeds an arbitrary byte stream to the TLS record
// checker, whole and split: the verdict must not depend on how the stream
// arrives, and a stream it accepts has no record longer than the limit.
func FuzzRecordScanner(f *testing.F) {
	f.Add([]byte{22, 3, 3, 0, 2, 1, 2, 23, 3, 3, 8, 0}, uint8(3))
	f.Add([]byte{23, 3, 3, 8, 1}, uint8(1))
	f.Add([]byte("GET / HTTP/1.1\r\n"), uint8(4))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		whole := recordScanner{max: maxTLSRecord}
		errWhole := whole.feed(stream)
		split := recordScanner{max: maxTLSRecord}
		var errSplit error
		n := int(step%16) + 1
		for i := 0; i < len(stream) && errSplit == nil; i += n {
			errSplit = split.feed(stream[i:min(i+n, len(stream))])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, split by %d: %v", errWhole, n, errSplit)
		}
		if errWhole == nil && whole.largest > maxTLSRecord {
			t.Fatalf("accepted a record of %d bytes", whole.largest)
		}
	})
}

// FuzzContentRange parses arbitrary Content-Range headers of firmware
// servers: no panic, and what it accepts has non-negative numbers.
func FuzzContentRange(f *testing.F) {
	f.Add("bytes 0-2047/50000")
	f.Add("bytes */0")
	f.Add("bytes 1-/2")
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, ok := parseContentRange(s)
		if ok && (total < 0 || (first < 0) != (last < 0) || first < -1) {
			t.Fatalf("%q: %d-%d/%d", s, first, last, total)
		}
	})
}
