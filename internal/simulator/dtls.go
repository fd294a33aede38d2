package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// PSK is a device's DTLS pre-shared key.
type PSK struct {
	Identity string
	Key      []byte
}

// dtlsOptions are the handshake options of device i towards host: its PSK
// (TLS_PSK_WITH_AES_128_CCM_8) or its certificate
// (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, the server verified against
// Config.RootCAs for host), asking the server for a Connection ID as an
// nRF91 does (a zero-length one of its own).
func (d *Device) dtlsOptions(host string) []dtls.ClientOption {
	opts := []dtls.ClientOption{dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator())}
	if d.cfg.PSK != nil {
		psk := d.cfg.PSK(d.index)
		return append(opts,
			dtls.WithPSK(func([]byte) ([]byte, error) { return psk.Key, nil }),
			dtls.WithPSKIdentityHint([]byte(psk.Identity)),
			dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8))
	}
	return append(opts,
		dtls.WithCertificates(d.cfg.Certificate(d.index)),
		dtls.WithRootCAs(d.cfg.RootCAs),
		dtls.WithServerName(host),
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8))
}

// handshakeDTLS opens a socket to server ("host:port"), completes a DTLS
// handshake with the device's credentials and returns the session with
// its socket.
func (d *Device) handshakeDTLS(ctx context.Context, server string) (*dtls.Conn, *rebindConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, nil, err
	}
	if raddr.IP.IsUnspecified() {
		// A server listening on all addresses (":5684") answers from a
		// concrete one, and a DTLS session takes only its peer's records:
		// talk to it on loopback.
		if raddr.IP.To4() != nil {
			raddr.IP = net.IPv4(127, 0, 0, 1)
		} else {
			raddr.IP = net.IPv6loopback
		}
	}
	pc, err := newRebindConn(raddr)
	if err != nil {
		return nil, nil, err
	}
	host, _, _ := net.SplitHostPort(server)
	dc, err := dtls.ClientWithOptions(pc, raddr, d.dtlsOptions(host)...)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		return nil, nil, fmt.Errorf("DTLS handshake: %w", err)
	}
	return dc, pc, nil
}

// dialDTLS opens a socket to the server, completes a DTLS handshake with
// dtlsOptions and returns the CoAP connection over it. Called with mu
// held.
func (d *Device) dialDTLS(opts []udp.Option) (*client.Conn, error) {
	dc, pc, err := d.handshakeDTLS(context.Background(), d.cfg.Server)
	if err != nil {
		return nil, err
	}
	d.stats.handshakes.Add(1)
	d.sock = pc
	return coapdtls.Client(dc, append(opts, options.WithCloseSocket())...), nil
}

// Rebind moves the device to a new source port without telling the
// server, as a NAT that forgot its mapping does. Over DTLS the session
// goes on (the server finds it by the Connection ID it gave); over plain
// CoAP the device continues on a new socket with its registration, which
// the server knows by address only after the next Update.
func (d *Device) Rebind() error {
	d.mu.Lock()
	sock := d.sock
	d.mu.Unlock()
	if sock != nil {
		return sock.rebind()
	}
	if d.connection() == nil {
		return errors.New("simulator: Rebind of a stopped device")
	}
	d.reconnect()
	return nil
}

// rebindConn is a UDP packet connection to one server whose socket can be
// replaced under a DTLS session.
type rebindConn struct {
	raddr *net.UDPAddr

	mu     sync.Mutex
	c      *net.UDPConn // guarded by mu
	closed bool         // guarded by mu
}

func newRebindConn(raddr *net.UDPAddr) (*rebindConn, error) {
	c, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	return &rebindConn{raddr: raddr, c: c}, nil
}

func (r *rebindConn) conn() *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

// rebind opens a new socket and closes the old one; a read blocked on the
// old socket continues on the new one.
func (r *rebindConn) rebind() error {
	c, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = c.Close()
		return net.ErrClosed
	}
	old := r.c
	r.c = c
	r.mu.Unlock()
	return old.Close()
}

// ReadFrom reads the next datagram from the server, dropping any other
// source's.
func (r *rebindConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		c := r.conn()
		n, from, err := c.ReadFromUDP(p)
		if err != nil {
			r.mu.Lock()
			moved := r.c != c && !r.closed
			r.mu.Unlock()
			if moved {
				continue
			}
			return n, nil, err
		}
		if from.Port == r.raddr.Port && from.IP.Equal(r.raddr.IP) {
			return n, r.raddr, nil
		}
	}
}

func (r *rebindConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	return r.conn().WriteToUDP(p, r.raddr)
}

func (r *rebindConn) Close() error {
	r.mu.Lock()
	r.closed = true
	c := r.c
	r.mu.Unlock()
	return c.Close()
}

func (r *rebindConn) LocalAddr() net.Addr { return r.conn().LocalAddr() }

func (r *rebindConn) SetDeadline(t time.Time) error      { return r.conn().SetDeadline(t) }
func (r *rebindConn) SetReadDeadline(t time.Time) error  { return r.conn().SetReadDeadline(t) }
func (r *rebindConn) SetWriteDeadline(t time.Time) error { return r.conn().SetWriteDeadline(t) }
