package loadgen

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func startEcho(t *testing.T) *Echo {
	t.Helper()
	e, err := ListenEcho("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestRunAgainstEcho(t *testing.T) {
	e := startEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Server: e.Addr().String(), Devices: 50, Send: 500 * time.Millisecond,
		Deregister: true, FloodRate: 200, FloodFor: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Register; r.OK != 50 || r.Requests != 50 || len(r.Failures) != 0 || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
		t.Errorf("register: %+v", r)
	}
	// Each device sends back to back: 50 devices for half a second on
	// loopback make far more than one Send each.
	if s := rep.Send; s == nil || s.OK < 100 || len(s.Failures) != 0 || s.Rate <= 0 {
		t.Errorf("send: %+v", s)
	}
	if d := rep.Deregister; d == nil || d.OK != 50 || len(d.Failures) != 0 {
		t.Errorf("deregister: %+v", d)
	}
	if f := rep.Flood; f == nil || f.Sent < 90 || f.Sent > 110 || f.Answers["2.01"] < f.Sent/2 {
		t.Errorf("flood: %+v", f)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"register:   50/50 ok", "send:", "deregister: 50/50 ok", "flood:", "failures: none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]map[string]any
	_ = json.Unmarshal(raw, &back)
	if back["register"]["ok"] != 50.0 || back["register"]["p99_ms"].(float64) <= 0 {
		t.Errorf("JSON report: %s", raw)
	}
}

// A server that answers nothing: every device retransmits and times out,
// and the report says so instead of hanging.
func TestRunTimesOutAndStops(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			got++
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{Server: c.LocalAddr().String(), Devices: 3, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || rep == nil || rep.Register.OK != 0 {
		t.Fatalf("Run = %+v, %v; want no registration and the context's error", rep, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Run took %v after its context ended", time.Since(start))
	}
	c.Close()
	<-done
	// Each device sent its Register and retransmitted it once: the first
	// timeout is 2 to 3 s.
	if got < 3 || got > 6 {
		t.Errorf("server received %d datagrams from 3 devices in 2.5 s, want 3 to 6", got)
	}
}

// The devices answer the server's requests as the package documentation
// says, and a retransmitted request gets the same answer.
func TestDeviceAnswersServerRequests(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	stats := &serverStats{}
	d := newDevice("urn:imei:1", c, 1, stats)
	go d.readLoop()
	defer c.Close()

	// ask sends a GET, or with a query ("pmin=60") a Write-Attributes.
	ask := func(mid int32, path string, accept lwm2m.MediaType, observe bool, query ...string) message.Message {
		t.Helper()
		m := message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: mid, Token: []byte{1, 2, byte(mid)}}
		for _, s := range strings.Split(strings.Trim(path, "/"), "/") {
			m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(s)})
		}
		for _, q := range query {
			m.Code = codes.PUT
			m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
		}
		m.Options = m.Options.Add(uintOption(message.Accept, uint32(accept)))
		if observe {
			m.Options = m.Options.Add(message.Option{ID: message.Observe, Value: []byte{}})
		}
		pkt, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WriteTo(pkt, c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := srv.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		resp := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Type != message.Acknowledgement || resp.MessageID != mid || string(resp.Token) != string(m.Token) {
			t.Fatalf("answer to %s: %v", path, resp.String())
		}
		return resp
	}
	r := ask(10, "/3303/0/5700", lwm2m.FormatSenMLCBOR, true)
	if _, err := r.Options.Observe(); r.Code != codes.Content || err != nil || len(r.Payload) == 0 {
		t.Errorf("observe of a sensor: %v", r.String())
	}
	if cf, _ := r.Options.ContentFormat(); cf != message.MediaType(lwm2m.FormatSenMLCBOR) {
		t.Errorf("observe answered in format %d", cf)
	}
	if r := ask(10, "/3303/0/5700", lwm2m.FormatSenMLCBOR, true); r.Code != codes.Content || stats.observe.Load() != 1 {
		t.Errorf("retransmitted observe: %v, %d observes counted", r.String(), stats.observe.Load())
	}
	if r := ask(11, "/5/0/3", lwm2m.FormatText, false); r.Code != codes.Content || string(r.Payload) != "0" {
		t.Errorf("read of the firmware state: %v %q", r.String(), r.Payload)
	}
	if r := ask(12, "/3/0/0", lwm2m.FormatText, false); r.Code != codes.NotFound {
		t.Errorf("read of another resource: %v", r.String())
	}
	if r := ask(13, "/3303/0/5700", lwm2m.FormatText, false, "pmin=60"); r.Code != codes.Changed {
		t.Errorf("write-attributes of the temperature: %v", r.String())
	}
	if r := ask(14, "/3/0/0", lwm2m.FormatText, false, "pmin=60"); r.Code != codes.NotFound {
		t.Errorf("write-attributes of another resource: %v", r.String())
	}
	if got := (ServerRequests{stats.observe.Load(), stats.read.Load(), stats.attrs.Load(), stats.notFound.Load(), 0}); got != (ServerRequests{1, 1, 1, 2, 0}) {
		t.Errorf("server requests counted %+v", got)
	}
}

func TestIMEIName(t *testing.T) {
	// 49015420323751 is the IMEI of the Luhn example in 3GPP TS 23.003.
	if got := imeiName(49015420323751); got != "urn:imei:490154203237518" {
		t.Errorf("imeiName = %s", got)
	}
}

func TestSourceAddresses(t *testing.T) {
	c := Config{From: netip.MustParsePrefix("127.1.0.0/16")}
	for i, want := range map[int]string{0: "127.1.0.1", 1: "127.1.0.2", 65534: "127.1.255.255", 65535: "127.1.0.1"} {
		if got := c.source(i).IP.String(); got != want {
			t.Errorf("source(%d) = %s, want %s", i, got, want)
		}
	}
	if (Config{}).source(3) != nil {
		t.Error("no prefix: want the system's address")
	}
}
