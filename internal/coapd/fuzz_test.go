package coapd_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// FuzzRegister feeds random Register requests (query, content format,
// payload), each after a random raw datagram, to a running server over
// real UDP: every request must be answered and no handler may panic.
// Seeds are in testdata/fuzz/FuzzRegister.
func FuzzRegister(f *testing.F) {
	f.Add([]byte{}, "ep=dev1&lt=300&lwm2m=1.1&b=U", uint16(40), []byte(`</1/0>,</3/0>`))
	f.Add([]byte{0x40, 0x01, 0x00}, "ep=dev2&lwm2m=1.2", uint16(40), []byte(`</>;rt="oma.lwm2m";ct=110,</1>;ver=1.2,</1/0>`))
	f.Add([]byte{0x50, 0x45, 0x12, 0x34, 0xff, 0x00}, "lt=-1&ep=", uint16(0xffff), []byte(`<`))
	f.Add([]byte{0xff}, "ep=x&Q&sms=+1&b=UQS", uint16(11542), []byte{0xc8, 0x00, 0x14})

	s := newStack(f, filepath.Join(f.TempDir(), "db.sqlite"), newClock())
	d := newRawDevice(f, s.addr)
	f.Cleanup(func() { _ = d.conn.Close() })

	f.Fuzz(func(t *testing.T, raw []byte, query string, cf uint16, payload []byte) {
		if len(raw) > 0 {
			if _, err := d.conn.Write(raw); err != nil {
				t.Fatal(err)
			}
		}
		opts := message.Options{}.Add(message.Option{ID: message.URIPath, Value: []byte("rd")})
		if cf != 0xffff {
			v := []byte{byte(cf >> 8), byte(cf)}
			if cf < 256 {
				v = v[1:]
			}
			if cf == 0 {
				v = nil
			}
			opts = opts.Add(message.Option{ID: message.ContentFormat, Value: v})
		}
		for q := range strings.SplitSeq(query, "&") {
			if len(q) > 255 {
				return // not a valid Uri-Query option
			}
			opts = opts.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
		}
		if len(payload) > 1000 {
			payload = payload[:1000]
		}
		out, err := d.exchange(message.Message{Code: codes.POST, Token: message.Token{7}, Options: opts, Payload: payload})
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if out.Code != codes.Created && (out.Code < codes.BadRequest || out.Code >= codes.InternalServerError) {
			t.Fatalf("answer %v", out.String())
		}
		if strings.Contains(s.logs.String(), "panic") {
			t.Fatalf("handler panicked:\n%s", s.logs.String())
		}
	})
}
