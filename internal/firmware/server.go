package firmware

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultRecordSize is the default cap on a whole TLS record the download
// server writes (Nordic's nRF91 modems refuse records over 2 KB; nginx's
// ssl_buffer_size 1370 is the setting this replaces).
const DefaultRecordSize = 1370

// MinRecordSize is the smallest record cap accepted: room for the record
// overhead and some payload.
const MinRecordSize = 256

// MaxRecordSize is the largest whole TLS record (16 KiB of plaintext with
// the largest overhead): a cap at or above it caps nothing.
const MaxRecordSize = 16384 + 256 + 5

// Record overhead of the cipher suites the server allows (every one an
// AEAD with a 16-byte tag):
//
//	TLS 1.3: 5 (header) + 1 (inner content type) + 16 (tag)       = 22
//	TLS 1.2 AES-GCM: 5 (header) + 8 (explicit nonce) + 16 (tag)   = 29
//	TLS 1.2 ChaCha20-Poly1305: 5 (header) + 16 (tag)              = 21
//
// so a Write of at most cap-22 bytes (TLS 1.3) or cap-29 (TLS 1.2) makes
// records of at most cap bytes, header included: 1348 and 1341 for 1370.
const (
	overheadTLS13 = 5 + 1 + 16
	overheadTLS12 = 5 + 8 + 16
)

// CipherSuites are the TLS 1.2 suites the download server allows: ECDHE
// with AEAD only, so the record overhead is known. (TLS 1.3's suites are
// all AEAD and not configurable.)
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig configures the download Server.
type ServerConfig struct {
	Images *Images // required
	// Certificate is the TLS certificate chain and key; nil serves plain
	// HTTP (for lab use).
	Certificate *tls.Certificate
	// RecordSize caps every TLS record the server writes after the
	// handshake, its 5-byte header and AEAD overhead included; 0 means
	// DefaultRecordSize, a negative value caps nothing (crypto/tls's
	// default, up to 16 KiB of plaintext: for comparison only).
	RecordSize int
	// MaxConns bounds the connections served at once (those beyond wait
	// in the kernel's backlog); 0 means 4096.
	MaxConns int
	// WriteTimeout is how long one write to a device may block before
	// the connection is dropped (a stalled download); 0 means 60 s.
	WriteTimeout time.Duration
	Logger       *slog.Logger // nil: slog.Default()
}

// Server is the IoT-safe download server: GET and HEAD of
// /binaries/<version>.bin over HTTP/1.1 (never HTTP/2), no compression,
// single byte ranges, ETag from the image's SHA-256, and TLS records of
// at most RecordSize bytes.
type Server struct {
	cfg  ServerConfig
	tls  *tls.Config
	http *http.Server
	log  *slog.Logger

	mu sync.Mutex
	ln net.Listener // guarded by mu
}

// NewServer returns a download server; nothing listens until Start or
// Serve.
func NewServer(cfg ServerConfig) *Server {
	if cfg.RecordSize == 0 {
		cfg.RecordSize = DefaultRecordSize
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4096
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if cfg.Certificate != nil {
		s.tls = &tls.Config{
			Certificates: []tls.Certificate{*cfg.Certificate},
			MinVersion:   tls.VersionTLS12,
			CipherSuites: CipherSuites,
			NextProtos:   []string{"http/1.1"},
		}
	}
	s.http = &http.Server{
		Handler: http.HandlerFunc(s.serveHTTP),
		// The TLS handshake runs within the first header read. No
		// ReadTimeout: it would cut a long download's background read;
		// requests are GET and HEAD, without a body. Stalled writes end
		// by ServerConfig.WriteTimeout per write instead.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		// HTTP/1.1 only: no HTTP/2 over TLS (our conns are not *tls.Conn,
		// and the map is empty besides).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Handler is the server's HTTP handler (for tests that serve it
// otherwise).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// TLS reports whether the server speaks TLS.
func (s *Server) TLS() bool { return s.tls != nil }

// Start listens on addr and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		if err := s.http.Serve(s.wrap(ln)); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("firmware download server stopped", "err", err)
		}
	}()
	return nil
}

// Serve serves on ln until Shutdown; it returns http.ErrServerClosed
// then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return s.http.Serve(s.wrap(ln))
}

// wrap bounds the connections of ln and, with TLS, makes each a
// record-capped TLS connection.
func (s *Server) wrap(ln net.Listener) net.Listener {
	return &listener{Listener: ln, sem: make(chan struct{}, s.cfg.MaxConns), closed: make(chan struct{}), tls: s.tls,
		record: s.cfg.RecordSize, writeTimeout: s.cfg.WriteTimeout}
}

// Addr is the bound address (after Start or Serve), nil before.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops listening and waits for the downloads in flight until
// ctx ends, then closes their connections.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}

// serveHTTP serves GET and HEAD of /binaries/<filename>. Any other path,
// one with "..", a backslash or an encoded slash, and an unknown image
// are 404; the file name is looked up in the image store, never joined
// into a path as given. Range: one byte range is served as 206 with
// Content-Range; a range past the end is 416 with "Content-Range: bytes
// */<size>", a malformed byte range ("bytes=abc", "bytes=9-1") 416 as
// net/http's ServeContent answers it; a Range of several ranges, or of a
// unit other than bytes, is ignored (RFC 9110 §14.2 allows the one and
// asks for the other) and the whole image served.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/binaries/")
	if !ok || strings.ContainsAny(name, "/\\") {
		http.NotFound(w, r)
		return
	}
	f, img, err := s.cfg.Images.Open(r.Context(), name)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Error("firmware download failed", "path", r.URL.Path, "remote_addr", r.RemoteAddr, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	if rg := r.Header.Get("Range"); rg != "" && (strings.Contains(rg, ",") || !strings.HasPrefix(rg, "bytes=")) {
		r.Header.Del("Range") // several ranges, or a unit other than bytes: ignored
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+img.SHA256+`"`)
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, img.Filename, img.CreatedAt, f)
}

// listener accepts at most cap(sem) connections at once and, with tls
// set, wraps each in a record-capped TLS server connection.
type listener struct {
	net.Listener
	sem          chan struct{}
	closed       chan struct{} // closed by Close
	closeOnce    sync.Once
	tls          *tls.Config
	record       int
	writeTimeout time.Duration
}

// Accept waits for a free slot, then for a connection; a Close ends
// either wait (http.Server.Shutdown waits for Serve to return).
func (l *listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	lc := &limitedConn{Conn: c, release: func() { <-l.sem }, writeTimeout: l.writeTimeout}
	if l.tls == nil {
		return lc, nil
	}
	bc := &batchConn{limitedConn: lc}
	return &recordConn{Conn: tls.Server(bc, l.tls), raw: bc, record: l.record}, nil
}

// batchConn gathers the records of one recordConn.Write in a buffer and
// sends them with one write system call (Flush), instead of one call per
// record: small records cost little more than large ones then. Until
// batching is on (after the handshake) writes go straight through, and
// Close sends what is buffered first.
type batchConn struct {
	*limitedConn
	mu       sync.Mutex // crypto/tls may write from the reading goroutine (alerts)
	batching bool       // guarded by mu
	buf      []byte     // guarded by mu; nil between writes (from batchPool)
}

func (c *batchConn) startBatching() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return c.limitedConn.Write(p)
	}
	if c.buf == nil {
		c.buf = (*batchPool.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// batchPool holds the buffers of batchConns between writes, so an idle
// connection holds none.
var batchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, maxBatch+2*MaxRecordSize)
	return &b
}}

// buffered is how many bytes wait for Flush.
func (c *batchConn) buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// Flush sends the buffered records.
func (c *batchConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.limitedConn.Write(c.buf)
	if cap(c.buf) <= maxBatch+2*MaxRecordSize {
		b := c.buf[:0]
		batchPool.Put(&b)
	}
	c.buf = nil
	return err
}

func (c *batchConn) Close() error {
	_ = c.Flush()
	return c.limitedConn.Close()
}

// maxBatch bounds the buffer a connection keeps between writes.
const maxBatch = 64 << 10

func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its listener's slot back when closed, and gives every
// write writeTimeout to complete: a device that stops reading is dropped.
type limitedConn struct {
	net.Conn
	once         sync.Once
	release      func()
	writeTimeout time.Duration
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// recordConn is a TLS server connection whose every Write becomes
// records of at most record bytes: crypto/tls writes at least one record
// per Write call, so chunks of record-overhead bytes give records of at
// most record bytes. The handshake runs on the first Read (the request),
// before any Write of the server's.
type recordConn struct {
	*tls.Conn
	raw    *batchConn
	record int
	chunk  int // payload per Write, set on the first Write
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.chunk == 0 {
		if err := c.HandshakeContext(context.Background()); err != nil {
			return 0, err
		}
		c.chunk = chunkSize(c.record, c.ConnectionState().Version)
		c.raw.startBatching()
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), c.chunk, maxBatch)
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		if c.raw.buffered() >= maxBatch {
			if err := c.raw.Flush(); err != nil {
				return n, err
			}
		}
	}
	return n, c.raw.Flush()
}

// chunkSize is the plaintext per Write that keeps a whole record of TLS
// version v within record bytes; a negative record caps nothing.
func chunkSize(record int, v uint16) int {
	if record < 0 {
		return 1 << 30
	}
	if v == tls.VersionTLS13 {
		return record - overheadTLS13
	}
	return record - overheadTLS12
}

// HandshakeRecordEstimate is the size in bytes of the largest handshake
// record a chain of certificates (DER) makes: the Certificate message
// (each certificate with its 3-byte length, and in TLS 1.3 its 2-byte
// extensions, the 3-byte list length, the 1-byte context, the 4-byte
// message header) in one record with the TLS 1.3 overhead. Handshake
// records cannot be capped: a chain whose estimate exceeds the record cap
// reaches devices in records they may refuse.
func HandshakeRecordEstimate(chain [][]byte) int {
	n := 4 + 1 + 3 + overheadTLS13
	for _, der := range chain {
		n += 3 + 2 + len(der)
	}
	return n
}

// CheckChain returns a warning when cert's chain makes a handshake record
// larger than record bytes, "" when it does not.
func CheckChain(cert *tls.Certificate, record int) string {
	if cert == nil || record < 0 {
		return ""
	}
	if est := HandshakeRecordEstimate(cert.Certificate); est > record {
		return fmt.Sprintf("the firmware server's certificate chain (%d certificates) makes a handshake record of about %d bytes, over the %d-byte record cap: devices such as nRF91 modems may refuse it; use a short ECDSA P-256 chain", len(cert.Certificate), est, record)
	}
	return ""
}
