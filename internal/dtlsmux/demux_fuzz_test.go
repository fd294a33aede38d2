package dtlsmux

import (
	"net"
	"net/netip"
	"testing"
)

// FuzzDemuxRoute routes arbitrary datagrams from a few sources through the
// DTLS demultiplexer and parses them as the server's own ServerHellos and
// alerts: no input panics, only ClientHellos open associations, and a
// ClientHello of any DTLS record version is routed as one.
func FuzzDemuxRoute(f *testing.F) {
	f.Add([]byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(0))
	f.Add([]byte{0x19, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 2, 9, 9}, uint8(1))
	f.Add([]byte{0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 2, 0, 0, 38}, uint8(2))
	f.Add([]byte{0x17, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0xff, 0xff}, uint8(3))
	f.Add([]byte{0x16, 0xfe, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint8(0)) // mbed TLS 2.28's record version
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	d := newDemux(c, cidLen, newHandshakeGate(0, 0), 0)
	f.Cleanup(func() { _ = d.Close() })
	f.Fuzz(func(t *testing.T, b []byte, src uint8) {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, src % 4}), 5684)
		d.route(b, from)
		_, _ = serverHelloCID(b)
		if out := unknownIdentityAlert(b); len(out) != len(b) {
			t.Fatalf("alert rewrite changed the length: %d to %d", len(b), len(out))
		}
		// Accept and close what was opened, so associations do not pile up.
		for {
			select {
			case a := <-d.accept:
				if !isClientHello(b) {
					t.Fatalf("a datagram that is not a ClientHello opened an association: %x", b)
				}
				d.handshakeEnded(a)
				_ = a.Close()
				continue
			default:
			}
			break
		}
	})
}
