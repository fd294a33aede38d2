package simulator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"
)

// testCert returns a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost, and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fw test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// chunkConn writes at most n bytes per Write to the TLS connection under
// it, so every TLS record carries at most n bytes of application data
// (crypto/tls writes at least one record per Write).
type chunkConn struct {
	net.Conn
	n int
}

func (c chunkConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), c.n)
		m, err := c.Conn.Write(p[:k])
		written += m
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

type chunkListener struct {
	net.Listener
	n int
}

func (l chunkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return chunkConn{Conn: c, n: l.n}, nil
}

// fwHTTPServer serves firmware images over HTTPS (or plain HTTP) on
// loopback with Range support, counting connections and requests.
type fwHTTPServer struct {
	URL  string // scheme://127.0.0.1:port
	CA   *x509.CertPool
	srv  *http.Server
	mu   sync.Mutex
	conn int           // connections accepted
	reqs []string      // Range header of every request
	hold chan struct{} // when set, requests past the first wait for it to close
	img  map[string][]byte
	// closeEvery, when positive, answers every closeEvery-th request
	// with Connection: close.
	closeEvery int
}

// newFWHTTPServer starts a firmware server: TLS with records of at most
// recordCap bytes of data (0: Go's default record sizes), or plain HTTP
// when plain is set.
func newFWHTTPServer(t testing.TB, plain bool, recordCap int) *fwHTTPServer {
	t.Helper()
	s := &fwHTTPServer{img: map[string][]byte{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if !plain {
		scheme = "https"
		cert, ca := testCert(t)
		s.CA = ca
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		if recordCap > 0 {
			l = chunkListener{Listener: l, n: recordCap}
		}
	}
	s.URL = scheme + "://" + l.Addr().String()
	s.srv = &http.Server{
		Handler:      http.HandlerFunc(s.serve),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.mu.Lock()
				s.conn++
				s.mu.Unlock()
			}
		},
		ErrorLog: nil,
	}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.release()
		_ = s.srv.Shutdown(ctx)
		_ = s.srv.Close()
	})
	return s
}

func (s *fwHTTPServer) put(name string, img []byte) string {
	s.mu.Lock()
	s.img[name] = img
	s.mu.Unlock()
	return s.URL + "/binaries/" + name
}

func (s *fwHTTPServer) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

func (s *fwHTTPServer) stats() (conns int, ranges []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, append([]string(nil), s.reqs...)
}

func (s *fwHTTPServer) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/binaries/")
	s.mu.Lock()
	img, found := s.img[name]
	s.reqs = append(s.reqs, r.Header.Get("Range"))
	n := len(s.reqs)
	hold := s.hold
	closeNow := s.closeEvery > 0 && n%s.closeEvery == 0
	s.mu.Unlock()
	if hold != nil && n > 1 {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	if closeNow {
		w.Header().Set("Connection", "close")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(img))
}

// fwCoAPServer serves firmware images by CoAP Block2 (over DTLS when psk
// is set) and records the Block2 sizes asked for and the remote
// addresses seen.
type fwCoAPServer struct {
	addr  string
	mu    sync.Mutex
	img   map[string][]byte
	sizes map[int64]int // Block2 size asked -> requests
	peers map[string]bool
}

func newFWCoAPServer(t testing.TB, psk *PSK) *fwCoAPServer {
	t.Helper()
	s := &fwCoAPServer{img: map[string][]byte{}, sizes: map[int64]int{}, peers: map[string]bool{}}
	handler := func(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
		path, _ := r.Options().Path()
		s.mu.Lock()
		img, ok := s.img[strings.TrimPrefix(path, "/fw/")]
		s.mu.Unlock()
		if r.Code() != codes.GET || !ok {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
			return
		}
		_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(img))
	}
	// The server's block-wise layer answers follow-up blocks from its
	// cache: count the requests as they arrive.
	monitor := options.WithRequestMonitor(func(cc *client.Conn, r *pool.Message) (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Code() != codes.GET {
			return false, nil
		}
		if v, err := r.GetOptionUint32(message.Block2); err == nil {
			szx, _, _, _ := blockwise.DecodeBlockOption(v)
			s.sizes[szx.Size()]++
		}
		s.peers[cc.RemoteAddr().String()] = true
		return false, nil
	})
	errs := options.WithErrors(func(err error) { t.Logf("fw coap server: %v", err) })
	if psk == nil {
		l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.addr = l.LocalAddr().String()
		srv := udp.NewServer(options.WithHandlerFunc(handler), errs, monitor)
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(l) }()
		t.Cleanup(func() { srv.Stop(); <-done })
		return s
	}
	l, err := coapnet.NewDTLSListener("udp", "127.0.0.1:0", &piondtls.Config{
		PSK: func(id []byte) ([]byte, error) {
			if string(id) != psk.Identity {
				return nil, net.UnknownNetworkError("unknown identity")
			}
			return psk.Key, nil
		},
		CipherSuites: []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	srv := coapdtls.NewServer(options.WithHandlerFunc(handler), errs, monitor)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); _ = l.Close(); <-done })
	return s
}

func (s *fwCoAPServer) put(scheme, name string, img []byte) string {
	s.mu.Lock()
	s.img[name] = img
	s.mu.Unlock()
	return scheme + "://" + s.addr + "/fw/" + name
}

func (s *fwCoAPServer) seen() (map[int64]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sizes := map[int64]int{}
	for k, v := range s.sizes {
		sizes[k] = v
	}
	return sizes, len(s.peers)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newBufferLogger logs at info level and above into b.
func newBufferLogger(b *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
