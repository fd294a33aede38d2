package app

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

// nat relays UDP between devices and a server as a NAT does: each device
// address gets an upstream socket of its own, which keeps its port for as
// long as the nat lives. The upstream sockets are unconnected, so an ICMP
// error while the server restarts closes nothing, and the server sees each
// device at the same address before and after.
type nat struct {
	t      *testing.T
	front  *net.UDPConn
	server *net.UDPAddr

	mu   sync.Mutex
	back map[netip.AddrPort]*net.UDPConn // guarded by mu: by device address
}

func newNAT(t *testing.T, server netip.AddrPort) *nat {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &nat{t: t, front: front, server: net.UDPAddrFromAddrPort(server), back: map[netip.AddrPort]*net.UDPConn{}}
	t.Cleanup(n.close)
	go n.run()
	return n
}

// Addr is where devices send to reach the server.
func (n *nat) Addr() string { return n.front.LocalAddr().String() }

func (n *nat) run() {
	buf := make([]byte, 64<<10)
	for {
		k, from, err := n.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		up, err := n.upstream(from)
		if err != nil {
			continue
		}
		_, _ = up.WriteToUDP(buf[:k], n.server)
	}
}

// upstream returns the device's upstream socket, opening it and its
// return path on first use.
func (n *nat) upstream(dev netip.AddrPort) (*net.UDPConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if up := n.back[dev]; up != nil {
		return up, nil
	}
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	n.back[dev] = up
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, _, err := up.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = n.front.WriteToUDPAddrPort(buf[:k], dev)
		}
	}()
	return up, nil
}

func (n *nat) close() {
	n.front.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, up := range n.back {
		up.Close()
	}
}
