package app

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"
)

// TestBlockwiseNotification observes an opaque resource larger than one
// CoAP block: each notification arrives block-wise, the server
// acknowledges its first block and reads the resource in full, stores the
// whole value once, and the device keeps its observation and counts no
// failed notification.
func TestBlockwiseNotification(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 1, nil)
	d := f.Device(0)
	ep := d.Endpoint()
	const path = "/19/0/0/0"
	big := func(c byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{c}, 3000)) }
	history := func() [][]byte {
		var hist struct {
			Values []valueJSON `json:"values"`
		}
		s.call(t, "GET", "/api/v1/endpoints/"+ep+"/history?path="+path, nil, &hist)
		var out [][]byte
		for _, v := range hist.Values {
			str, _ := v.Value.(string)
			raw, _ := base64.StdEncoding.DecodeString(str)
			out = append(out, raw)
		}
		return out
	}
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/write", map[string]any{"path": path, "value": big('a')}, &res); code != 200 {
		t.Fatalf("write: %d", code)
	}
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/observe", map[string]any{"path": path}, &res); code != 200 {
		t.Fatalf("observe: %d", code)
	}
	observed := d.Observations()
	for i, c := range []byte{'b', 'c'} {
		if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/write", map[string]any{"path": path, "value": big(c)}, &res); code != 200 {
			t.Fatalf("write %c: %d", c, code)
		}
		want := bytes.Repeat([]byte{c}, 3000)
		eventually(t, 10*time.Second, "the block-wise notification stored", func() bool {
			h := history()
			return len(h) > 0 && bytes.Equal(h[0], want)
		})
		if n := len(history()); n != i+2 {
			t.Fatalf("%d values stored after %d notifications, want %d (each once)", n, i+1, i+2)
		}
	}
	time.Sleep(3 * time.Second) // past the device's first retransmission timeout
	if n := len(history()); n != 3 {
		t.Fatalf("%d values stored, want 3: a retransmitted first block was read again", n)
	}
	// Auto-observe may still add observations; none may have ended.
	if st := d.Stats(); st.Errors != 0 || d.Observations() < observed {
		t.Fatalf("device: %d errors, %d observations (was %d)", st.Errors, d.Observations(), observed)
	}
}
