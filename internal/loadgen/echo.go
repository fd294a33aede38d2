package loadgen

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpserver "github.com/plgd-dev/go-coap/v3/udp/server"
)

// socketBuffer is the receive and send buffer asked of the kernel for the
// echo server's socket, the same as flownexus asks for its own.
const socketBuffer = 4 << 20

// Echo is the baseline server: it answers the LwM2M registration
// interface and Send at once and stores nothing. Create it with
// ListenEcho; Close it once.
type Echo struct {
	srv  *udpserver.Server
	conn *coapnet.UDPConn
	addr netip.AddrPort
	done chan error
	next atomic.Uint64 // registration IDs handed out
}

// ListenEcho binds addr ("127.0.0.1:5699", ":0") and serves on it in the
// background until Close. Transport errors go to log at debug level (nil:
// slog.Default()).
func ListenEcho(addr string, log *slog.Logger) (*Echo, error) {
	if log == nil {
		log = slog.Default()
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: echo: %w", err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("loadgen: echo: %w", err)
	}
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	e := &Echo{conn: coapnet.NewUDPConn("udp", c), done: make(chan error, 1)}
	e.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	e.srv = udp.NewServer(
		options.WithHandlerFunc(e.handle),
		options.WithErrors(func(err error) { log.Debug("loadgen echo transport", "err", err) }),
	)
	go func() { e.done <- e.srv.Serve(e.conn) }()
	return e, nil
}

// Addr is the bound address.
func (e *Echo) Addr() netip.AddrPort { return e.addr }

// Close stops the server and waits for it.
func (e *Echo) Close() error {
	e.srv.Stop()
	err := <-e.done
	_ = e.conn.Close()
	return err
}

func (e *Echo) handle(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
	path, _ := r.Path()
	segs := strings.Split(strings.Trim(path, "/"), "/")
	code := codes.NotFound
	var location []string
	switch {
	case r.Code() == codes.Empty || r.Code() >= codes.Created:
		return // an ACK, a Reset or a response: nothing to answer
	case len(segs) == 1 && segs[0] == "rd" && r.Code() == codes.POST:
		code = codes.Created
		location = []string{"rd", strconv.FormatUint(e.next.Add(1), 36)}
	case len(segs) == 2 && segs[0] == "rd" && r.Code() == codes.POST:
		code = codes.Changed
	case len(segs) == 2 && segs[0] == "rd" && r.Code() == codes.DELETE:
		code = codes.Deleted
	case len(segs) == 1 && segs[0] == "dp" && r.Code() == codes.POST:
		code = codes.Changed
	}
	if err := w.SetResponse(code, message.TextPlain, nil); err != nil {
		return
	}
	for _, l := range location {
		w.Message().AddOptionString(message.LocationPath, l)
	}
}
