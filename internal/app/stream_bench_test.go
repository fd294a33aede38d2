package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/simulator"
)

// The benchmark's size: small by default so that `.ci/run` (every
// benchmark once) stays quick; the figures for BENCHMARKS.md come from
//
//	go test -run '^$' -bench BenchmarkEventStream -benchtime 1x ./internal/app \
//	    -sse.devices 200 -sse.streams 1000 -sse.interval 1s -sse.phase 20s
var (
	sseDevices  = flag.Int("sse.devices", 20, "BenchmarkEventStream: simulated devices, each Sending (confirmable, one in flight)")
	sseStreams  = flag.Int("sse.streams", 20, "BenchmarkEventStream: event streams open during the loaded phase")
	sseInterval = flag.Duration("sse.interval", 100*time.Millisecond, "BenchmarkEventStream: each device's Send interval (0: back to back)")
	ssePhase    = flag.Duration("sse.phase", 2*time.Second, "BenchmarkEventStream: length of each measured phase")
	sseQuery    = flag.String("sse.query", "", "BenchmarkEventStream: query string of every stream (e.g. topic=values); {ep} is replaced by the endpoint of device i for stream i (modulo -sse.devices)")
)

// BenchmarkEventStream measures what open event streams cost the device
// path. The server is the real App in a process of its own (the test
// binary run again, see TestMain), on a fresh SQLite file, so that its CPU
// time and memory are its own; devices (internal/simulator, one UDP socket
// each, confirmable Sends, one in flight) and the stream clients (HTTP
// over TCP, reading and counting every message) run in the benchmark's
// process. Three phases of -sse.phase each, with the devices Sending
// throughout: no stream, -sse.streams streams, no stream again. It
// reports the Sends/s committed (acknowledged, which the server does after
// the values are stored) in each phase, the server's CPU use and resident
// memory, and what the streams received. One iteration is one such run:
// use -benchtime 1x.
func BenchmarkEventStream(b *testing.B) {
	for range b.N {
		runEventStream(b, *sseDevices, *sseStreams, *sseInterval, *ssePhase, *sseQuery)
	}
}

// procStat is a sample of a process's CPU time and memory.
type procStat struct {
	at      time.Time
	cpu     time.Duration // user + system
	rss     int64         // bytes
	peakRSS int64         // bytes
}

func sampleProc(b *testing.B, pid int) procStat {
	b.Helper()
	s := procStat{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14, stime 15 (clock ticks, 100 per second on Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(utime+stime) * 10 * time.Millisecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.peakRSS = kb << 10
		}
	}
	return s
}

// benchStream is one stream client: it reads every message and counts.
type benchStream struct {
	messages atomic.Uint64 // messages other than dropped notices
	dropped  atomic.Uint64 // the last dropped notice's total
	body     io.ReadCloser
	done     chan struct{}
	err      error // why the stream ended; valid once done is closed
}

func openBenchStream(client *http.Client, srv *serverProcess, query string) (*benchStream, error) {
	req, _ := http.NewRequest("GET", srv.http+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+srv.token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: %s", resp.Status)
	}
	st := &benchStream{body: resp.Body, done: make(chan struct{})}
	go st.read()
	return st, nil
}

// read counts the messages of the stream. It reads large blocks and
// scans them with bytes.Count, not line by line, so that the clients,
// which share the machine with the server and the devices, cost little:
// every message has one "\ndata: ", and a dropped notice's data line is
// parsed for its total.
func (st *benchStream) read() {
	defer close(st.done)
	buf := make([]byte, 0, 64<<10)
	for {
		if len(buf) == cap(buf) {
			st.err = errors.New("a message longer than the read buffer")
			return
		}
		n, err := st.body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		// Complete messages only (each ends with a blank line, and has
		// its "\ndata: " inside); the rest waits for the next read.
		end := 0
		if i := bytes.LastIndex(buf, []byte("\n\n")); i >= 0 {
			end = i + 2
		}
		lines := buf[:end]
		msgs := uint64(bytes.Count(lines, []byte("\ndata: ")))
		for {
			i := bytes.Index(lines, []byte("\nevent: dropped\ndata: "))
			if i < 0 {
				break
			}
			msgs--
			lines = lines[i+len("\nevent: dropped\ndata: "):]
			line := lines[:bytes.IndexByte(lines, '\n')]
			var ev struct {
				Data struct{ Total uint64 } `json:"data"`
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				st.err = err
				return
			}
			st.dropped.Store(ev.Data.Total)
		}
		st.messages.Add(msgs)
		buf = buf[:copy(buf, buf[end:])]
		if err != nil {
			st.err = err
			return
		}
	}
}

func runEventStream(b *testing.B, devices, streams int, interval, phase time.Duration, query string) {
	b.StopTimer()
	srv := startServerProcess(b, b.TempDir())
	pid := srv.cmd.Process.Pid

	send := interval
	if send <= 0 {
		send = time.Nanosecond // due again at once: back to back
	}
	fleet, err := simulator.NewFleet(simulator.Config{
		Server: srv.coap, Devices: devices, Lifetime: time.Hour, ValueInterval: time.Hour,
		SendInterval: send, Seed: 1, RequestTimeout: 30 * time.Second, StartConcurrency: 64,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := fleet.Start(sctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		fleet.Stop(sctx)
	}()
	time.Sleep(phase / 2) // warm up: registrations, auto-observe, caches

	type result struct {
		sends, cpu float64 // per second
		rss        int64
	}
	measure := func() result {
		s0, a0 := sampleProc(b, pid), fleet.Stats().SendsAcked
		time.Sleep(phase)
		s1, a1 := sampleProc(b, pid), fleet.Stats().SendsAcked
		wall := s1.at.Sub(s0.at).Seconds()
		return result{sends: float64(a1-a0) / wall, cpu: (s1.cpu - s0.cpu).Seconds() / wall, rss: s1.rss}
	}

	b.StartTimer()
	before := measure()

	// The streams, opened a few at a time; each is subscribed when its
	// response headers arrive.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: -1, ReadBufferSize: 32 << 10}}
	defer client.CloseIdleConnections()
	idle := sampleProc(b, pid)
	open := make([]*benchStream, streams)
	var wg sync.WaitGroup
	var openErr atomic.Pointer[error]
	sem := make(chan struct{}, 32)
	devs := fleet.Devices()
	for i := range open {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			q := strings.ReplaceAll(query, "{ep}", url.QueryEscape(devs[i%len(devs)].Endpoint()))
			st, err := openBenchStream(client, srv, q)
			if err != nil {
				openErr.Store(&err)
				return
			}
			open[i] = st
		})
	}
	wg.Wait()
	defer func() {
		for _, st := range open {
			if st != nil {
				st.body.Close()
			}
		}
	}()
	if err := openErr.Load(); err != nil {
		b.Fatalf("opening %d streams: %v", streams, *err)
	}
	opened := sampleProc(b, pid)
	var m0, d0 uint64
	for _, st := range open {
		m0 += st.messages.Load()
		d0 += st.dropped.Load()
	}
	withStreams := measure()
	var m1, d1 uint64
	for _, st := range open {
		m1 += st.messages.Load()
		d1 += st.dropped.Load()
		select {
		case <-st.done:
			b.Fatalf("a stream ended during the run: %v", st.err)
		default:
		}
	}
	for _, st := range open {
		st.body.Close()
	}
	time.Sleep(phase / 4)
	after := measure()
	b.StopTimer()

	none := (before.sends + after.sends) / 2
	b.ReportMetric(before.sends, "sends/s-before")
	b.ReportMetric(withStreams.sends, "sends/s-streams")
	b.ReportMetric(after.sends, "sends/s-after")
	b.ReportMetric(100*withStreams.sends/none, "%-of-none")
	b.ReportMetric(100*(before.cpu+after.cpu)/2, "cpu%-none")
	b.ReportMetric(100*withStreams.cpu, "cpu%-streams")
	b.ReportMetric(float64(opened.rss-idle.rss)/float64(streams)/1024, "KB-rss/stream-idle")
	b.ReportMetric(float64(withStreams.rss-idle.rss)/float64(streams)/1024, "KB-rss/stream-loaded")
	b.ReportMetric(float64(m1-m0)/phase.Seconds(), "msgs/s-delivered")
	b.ReportMetric(float64(d1-d0)/phase.Seconds(), "msgs/s-dropped")
	peak := sampleProc(b, pid).peakRSS
	b.Logf("%d devices (Send every %v), %d streams %q: Sends/s %.0f before, %.0f with streams (%.1f%% of none), %.0f after; "+
		"server CPU %.0f%% of a core without streams, %.0f%% with; RSS %.1f MB before the streams, %.1f MB open and idle, %.1f MB loaded, peak %.1f MB; "+
		"streams received %.0f msgs/s and were told of %.0f dropped/s",
		devices, interval, streams, query, before.sends, withStreams.sends, 100*withStreams.sends/none, after.sends,
		100*(before.cpu+after.cpu)/2, 100*withStreams.cpu, float64(idle.rss)/(1<<20), float64(opened.rss)/(1<<20),
		float64(withStreams.rss)/(1<<20), float64(peak)/(1<<20), float64(m1-m0)/phase.Seconds(), float64(d1-d0)/phase.Seconds())
}
