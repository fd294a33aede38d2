package coapd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// socket is one listening socket of the server (plain CoAP or CoAP/DTLS)
// and the go-coap server loop on it: bound once, served once, stopped
// with the server.
type socket struct {
	name string // for errors: "CoAP", "CoAP/DTLS"

	mu     sync.Mutex
	addr   netip.AddrPort // guarded by mu
	serve  func() error   // runs go-coap's server loop on the socket; guarded by mu
	close  func() error   // closes the socket if the loop never ran; guarded by mu
	served chan struct{}  // closed when the loop returns; nil until it starts; guarded by mu
}

// listenUDP binds a UDP socket ("127.0.0.1:0", ":5683") with the server's
// socket buffers.
func listenUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	// Best effort: a smaller buffer only costs retransmissions.
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	return c, nil
}

// bind records the bound socket: its address, the loop that serves it and
// how to close it unserved. It fails when already bound.
func (t *socket) bind(local net.Addr, serve, close func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.serve != nil {
		return fmt.Errorf("coapd: already listening on %s", t.name)
	}
	t.serve, t.close = serve, close
	if a, ok := local.(*net.UDPAddr); ok {
		t.addr = a.AddrPort()
	}
	return nil
}

// run serves the bound socket until the server stops.
func (t *socket) run() error {
	t.mu.Lock()
	serve := t.serve
	if serve == nil || t.served != nil {
		t.mu.Unlock()
		return fmt.Errorf("coapd: serving %s before listening, or twice", t.name)
	}
	served := make(chan struct{})
	t.served = served
	t.mu.Unlock()
	defer close(served)
	if err := serve(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("coapd: serve %s: %w", t.name, err)
	}
	return nil
}

// bound returns the bound address, or the zero AddrPort before bind.
func (t *socket) bound() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// stoppedWithin closes a socket that was bound but never served and waits
// up to d for a running loop to return; the caller has stopped the go-coap
// server and closed what its loop waits for. A loop still running after d
// is logged and left behind.
func (t *socket) stoppedWithin(d time.Duration, log *slog.Logger) {
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
		log.Error("server loop still running after shutdown", "transport", t.name, "waited", d)
	}
}
