package firmware_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/flownexus/flownexus/internal/firmware"
)

// BenchmarkDownload downloads a 1 MiB image over HTTPS (keep-alive, one
// client) from the server with 1370-byte records and from the same
// server uncapped, TLS 1.2 and 1.3.
func BenchmarkDownload(b *testing.B) {
	data := pattern(1 << 20)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, c := range []struct {
			name   string
			record int
		}{{"capped1370", firmware.DefaultRecordSize}, {"uncapped", -1}} {
			b.Run(fmt.Sprintf("%s/%s", strings.ReplaceAll(tls.VersionName(v), " ", ""), c.name), func(b *testing.B) {
				s := startServer(b, true, c.record)
				s.put(b, "1.0", data)
				cl := client(s.ca, v, &recorder{})
				// The client reads the socket through a 64 KiB buffer: its
				// own cost per record (a read call each) is not the
				// server's.
				cl.Transport.(*http.Transport).DialContext = bufferedDial
				url := "https://" + s.addr + "/binaries/1.0.bin"
				b.SetBytes(int64(len(data)))
				b.ResetTimer()
				for b.Loop() {
					resp, err := cl.Get(url)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if n != int64(len(data)) {
						b.Fatalf("%d bytes", n)
					}
				}
			})
		}
	}
}

// BenchmarkDownloadAlternating is BenchmarkDownload with the capped and
// the uncapped server measured alternately within each iteration, so
// that both see the same load on a shared machine; it reports both
// rates and the capped one as a percentage of the uncapped.
func BenchmarkDownloadAlternating(b *testing.B) {
	data := pattern(1 << 20)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		b.Run(strings.ReplaceAll(tls.VersionName(v), " ", ""), func(b *testing.B) {
			var urls [2]string
			var clients [2]*http.Client
			for i, record := range []int{firmware.DefaultRecordSize, -1} {
				s := startServer(b, true, record)
				s.put(b, "1.0", data)
				urls[i] = "https://" + s.addr + "/binaries/1.0.bin"
				clients[i] = client(s.ca, v, &recorder{})
				clients[i].Transport.(*http.Transport).DialContext = bufferedDial
			}
			var took [2]time.Duration
			b.ResetTimer()
			for b.Loop() {
				for i := range 2 {
					start := time.Now()
					resp, err := clients[i].Get(urls[i])
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					took[i] += time.Since(start)
					if n != int64(len(data)) {
						b.Fatalf("%d bytes", n)
					}
				}
			}
			mbs := func(d time.Duration) float64 { return float64(b.N) * float64(len(data)) / d.Seconds() / 1e6 }
			b.ReportMetric(mbs(took[0]), "capped-MB/s")
			b.ReportMetric(mbs(took[1]), "uncapped-MB/s")
			b.ReportMetric(100*took[1].Seconds()/took[0].Seconds(), "capped-%")
		})
	}
}

// bufferedDial dials a connection read through a 64 KiB buffer.
func bufferedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// BenchmarkConcurrentRanged: 1,000 devices download at once, each on a
// connection of its own (TLS 1.2 handshake included, as a modem does)
// one 2 KiB range of a 1 MiB image; one op is all 1,000. It reports the
// server process's peak heap in use and peak RSS (client side included:
// both run in this process).
func BenchmarkConcurrentRanged(b *testing.B) {
	const devices = 1000
	s := startServer(b, true, firmware.DefaultRecordSize)
	s.put(b, "1.0", pattern(1<<20))
	url := "https://" + s.addr + "/binaries/1.0.bin"
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	tlsCfg := &tls.Config{RootCAs: s.ca, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		var failed atomic.Value
		for i := range devices {
			wg.Go(func() {
				tr := &http.Transport{TLSClientConfig: tlsCfg, DisableCompression: true, DisableKeepAlives: true,
					DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext}
				defer tr.CloseIdleConnections()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				from := (i * 2048) % (1 << 20)
				req.Header.Set("Range", "bytes="+strconv.Itoa(from)+"-"+strconv.Itoa(from+2047))
				resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 206 || n != 2048 {
					failed.Store(fmt.Errorf("%s, %d bytes", resp.Status, n))
				}
			})
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	sampler.Wait()
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes, 0
// where /proc is missing.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkCoAPBlock2 downloads a 1 MiB image block-wise (1024-byte
// blocks, one client) from the server's CoAP route and from a bare
// go-coap server answering the same bytes from memory.
func BenchmarkCoAPBlock2(b *testing.B) {
	data := pattern(1 << 20)
	fetch := func(b *testing.B, addr string) {
		cc := dialCoAP(b, addr)
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			resp, err := cc.Get(ctx, "/fw/1.0.bin")
			if err != nil {
				b.Fatal(err)
			}
			body, err := resp.ReadBody()
			cancel()
			if err != nil || len(body) != len(data) {
				b.Fatalf("%d bytes, %v", len(body), err)
			}
		}
	}
	b.Run("flownexus", func(b *testing.B) {
		s := startCoAP(b)
		upload(b, s.im, "1.0", data)
		fetch(b, s.udp)
	})
	b.Run("bare-go-coap", func(b *testing.B) {
		r := mux.NewRouter()
		r.Handle("/fw/1.0.bin", mux.HandlerFunc(func(w mux.ResponseWriter, _ *mux.Message) {
			_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(data))
		}))
		l, err := coapnet.NewListenUDP("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
		go srv.Serve(l)
		defer srv.Stop()
		fetch(b, l.LocalAddr().String())
	})
}
