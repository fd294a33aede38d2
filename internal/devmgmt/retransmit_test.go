package devmgmt_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// TestRetransmission: a device that loses the server's first request gets
// it again (same message ID, RFC 7252 retransmission) and its answer
// completes the operation.
func TestRetransmission(t *testing.T) {
	s := newStack(t, nil)
	raddr := net.UDPAddrFromAddrPort(s.srv.Addr())
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 1500)
	send := func(m message.Message) {
		t.Helper()
		n, err := coder.DefaultCoder.Encode(m, buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() message.Message {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
			t.Fatal(err)
		}
		m.Payload = append([]byte(nil), m.Payload...)
		m.Token = append(message.Token(nil), m.Token...)
		return m
	}
	opts := message.Options{}.
		Add(message.Option{ID: message.URIPath, Value: []byte("rd")}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("ep=lossy")}).
		Add(message.Option{ID: message.URIQuery, Value: []byte("lwm2m=1.0")})
	send(message.Message{Code: codes.POST, Type: message.Confirmable, MessageID: 100, Token: message.Token{1}, Options: opts,
		Payload: []byte("</3/0>")})
	if m := recv(); m.Code != codes.Created {
		t.Fatalf("register: %v", m.String())
	}

	type result struct {
		rs  []lwm2m.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		rs, err := values(s.mgr.Do(context.Background(), "lossy", devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 9)}}))
		done <- result{rs, err}
	}()
	first := recv() // lost
	t0 := time.Now()
	second := recv()
	if second.MessageID != first.MessageID || string(second.Token) != string(first.Token) || second.Type != message.Confirmable {
		t.Fatalf("retransmission %v differs from %v", second.String(), first.String())
	}
	if d := time.Since(t0); d < time.Second {
		t.Fatalf("retransmitted after %v, before the ACK timeout", d)
	}
	var cf [2]byte
	reply := message.Options{}.Add(message.Option{ID: message.ContentFormat, Value: cf[:0]})
	send(message.Message{Code: codes.Content, Type: message.Acknowledgement, MessageID: second.MessageID,
		Token: second.Token, Options: reply, Payload: []byte("42")})
	r := <-done
	if r.err != nil || len(r.rs) != 1 || r.rs[0].Value.IntValue() != 42 || r.rs[0].Value.Type() != lwm2m.TypeInteger {
		t.Fatalf("read: %+v %v", r.rs, r.err)
	}
}
