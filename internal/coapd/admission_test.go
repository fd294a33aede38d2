package coapd_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/coapd"
)

// rawPeer is a device socket that writes datagrams as they are and reads
// the server's answers, for tests that need exact message IDs.
type rawPeer struct {
	t *testing.T
	c *net.UDPConn
}

func newRawPeer(t *testing.T, server string) *rawPeer {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, c: c}
}

// register sends a confirmable Register of ep with message ID mid.
func (p *rawPeer) register(ep string, mid uint16) {
	p.t.Helper()
	m := pool.NewMessage(context.Background())
	m.SetCode(codes.POST)
	m.SetType(message.Confirmable)
	m.SetMessageID(int32(mid))
	m.SetToken([]byte{byte(mid)})
	m.SetPath("/rd")
	m.AddQuery("ep=" + ep)
	m.AddQuery("lwm2m=1.1")
	m.SetContentFormat(message.AppLinkFormat)
	m.SetBody(bytes.NewReader([]byte(links)))
	b, err := m.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// answer reads the next datagram from the server within d; nil when none
// came.
func (p *rawPeer) answer(d time.Duration) *pool.Message {
	p.t.Helper()
	buf := make([]byte, 2048)
	_ = p.c.SetReadDeadline(time.Now().Add(d))
	n, err := p.c.Read(buf)
	if err != nil {
		return nil
	}
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, buf[:n]); err != nil {
		p.t.Fatal(err)
	}
	return m
}

// TestAdmission: while a Register waits for the store, a second message of
// the same device is refused with 5.03 and a Max-Age, a retransmission of
// the waiting one is dropped (and answered once, when it is done), another
// device is served meanwhile, and one host's Registers beyond its budget
// are refused.
func TestAdmission(t *testing.T) {
	release := make(chan struct{})
	s := newStackWith(t, t.TempDir()+"/db.sqlite", newClock(), 0, false, func(c *coapd.Config) {
		c.Admission = coapd.AdmissionConfig{MaxPerConn: 1, RegisterRate: 1, RegisterBurst: 3, RetryAfter: 2 * time.Second}
		c.Known = func(_ context.Context, ep string) (bool, error) {
			if ep == "urn:dev:slow" {
				<-release
			}
			return true, nil
		}
	})
	slow := newRawPeer(t, s.addr)
	slow.register("urn:dev:slow", 1)
	time.Sleep(100 * time.Millisecond) // the handler is now waiting
	slow.register("urn:dev:slow", 1)   // a retransmission: dropped
	slow.register("urn:dev:other", 2)  // a second message of the same address
	m := slow.answer(2 * time.Second)
	if m == nil || m.Code() != codes.ServiceUnavailable || m.MessageID() != 2 || m.Type() != message.Acknowledgement {
		t.Fatalf("second message while one waits: %v, want 5.03 ACK for message 2", m)
	}
	if age, err := m.GetOptionUint32(message.MaxAge); err != nil || age < 2 || age > 4 {
		t.Errorf("Max-Age %d (%v), want 2..4 s", age, err)
	}
	// Another device (its own port) is served while the first waits.
	other := newRawPeer(t, s.addr)
	other.register("urn:dev:quick", 7)
	if m := other.answer(10 * time.Second); m == nil || m.Code() != codes.Created {
		t.Fatalf("another device while one waits: %v, want 2.01", m)
	}
	close(release)
	if m := slow.answer(10 * time.Second); m == nil || m.Code() != codes.Created || m.MessageID() != 1 {
		t.Fatalf("waiting Register: %v, want 2.01 for message 1", m)
	}
	if m := slow.answer(300 * time.Millisecond); m != nil {
		t.Fatalf("the retransmission was answered too: %v", m)
	}
	// The host's budget (3, one refills a second) is spent: 2 more of
	// its Registers, from devices of their own, are refused.
	refused := 0
	for i := range 3 {
		dev := newRawPeer(t, s.addr)
		dev.register(fmt.Sprintf("urn:dev:more%d", i), uint16(20+i))
		if m := dev.answer(10 * time.Second); m != nil && m.Code() == codes.ServiceUnavailable {
			refused++
		}
	}
	if refused < 2 {
		t.Errorf("%d of 3 Registers over the budget refused, want at least 2", refused)
	}
	if st := s.srv.AdmissionStats(); st.Refused["conn"] != 1 || st.Refused["rate"] < 2 {
		t.Errorf("admission stats %+v", st)
	}
}
