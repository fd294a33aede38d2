package dtlsmux

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// socketBuffer is the receive and send buffer asked of the kernel for a
// device-facing socket (capped by net.core.rmem_max/wmem_max): a fleet
// that registers at once after an outage sends bursts the default
// ~200 KiB would drop, costing each dropped device a 2 s retransmission.
const socketBuffer = 4 << 20

// ListenUDP binds a UDP socket ("127.0.0.1:0", ":5683") with 4 MiB
// kernel buffers (best effort: a smaller buffer only costs
// retransmissions).
func ListenUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	return c, nil
}

// Socket is one listening socket of a server (plain CoAP or CoAP/DTLS)
// and the server loop on it: bound once, served once, stopped with the
// server. The zero Socket is ready for use; Name names it in errors and
// logs ("CoAP", "CoAP/DTLS"). It is safe for concurrent use.
type Socket struct {
	Name string

	mu     sync.Mutex
	addr   netip.AddrPort // guarded by mu
	serve  func() error   // runs the server loop on the socket; guarded by mu
	close  func() error   // closes the socket if the loop never ran; guarded by mu
	served chan struct{}  // closed when the loop returns; nil until it starts; guarded by mu
}

// Bind records the bound socket: its address, the loop that serves it and
// how to close it unserved. It fails when already bound.
func (t *Socket) Bind(local net.Addr, serve, close func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.serve != nil {
		return fmt.Errorf("dtlsmux: already listening on %s", t.Name)
	}
	t.serve, t.close = serve, close
	if a, ok := local.(*net.UDPAddr); ok {
		t.addr = a.AddrPort()
	}
	return nil
}

// Run serves the bound socket until the server stops. A loop that ends
// because its socket was closed is no error.
func (t *Socket) Run() error {
	t.mu.Lock()
	serve := t.serve
	if serve == nil || t.served != nil {
		t.mu.Unlock()
		return fmt.Errorf("dtlsmux: serving %s before listening, or twice", t.Name)
	}
	served := make(chan struct{})
	t.served = served
	t.mu.Unlock()
	defer close(served)
	if err := serve(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("dtlsmux: serve %s: %w", t.Name, err)
	}
	return nil
}

// Bound returns the bound address, or the zero AddrPort before Bind.
func (t *Socket) Bound() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// StoppedWithin closes a socket that was bound but never served and waits
// up to d for a running loop to return; the caller has stopped the server
// and closed what its loop waits for. A loop still running after d is
// logged and left behind.
func (t *Socket) StoppedWithin(d time.Duration, log *slog.Logger) {
	t.mu.Lock()
	served, closeFn := t.served, t.close
	t.mu.Unlock()
	if served == nil {
		if closeFn != nil {
			_ = closeFn()
		}
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-served:
	case <-timer.C:
		log.Error("server loop still running after shutdown", "transport", t.Name, "waited", d)
	}
}

// Unmapped returns a with an IPv4-mapped IPv6 address unmapped, so that
// one peer has one key on dual-stack sockets.
func Unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// AddrOf returns the unmapped address of a UDP net.Addr, the zero
// AddrPort for any other.
func AddrOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		return Unmapped(ua.AddrPort())
	}
	return netip.AddrPort{}
}

// SourceKey is the source a peer's load counts against: an IPv4 address,
// or the /64 of an IPv6 one (one subscriber's prefix).
func SourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
