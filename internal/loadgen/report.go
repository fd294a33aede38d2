package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Phase is the outcome of one phase: every request of every device.
type Phase struct {
	Requests int            // requests made
	OK       int            // requests answered as expected
	Failures map[string]int // the others, by response code or "timeout", "reset"
	Elapsed  time.Duration  // from the start of the phase until its last answer
	Rate     float64        // OK per second of Elapsed
	// Latency of the successful requests, from first transmission to
	// answer.
	P50, P99, Max time.Duration
}

func newPhase(lat []time.Duration, fails map[string]int, elapsed time.Duration) Phase {
	p := Phase{OK: len(lat), Elapsed: elapsed, Failures: fails}
	p.Requests = p.OK
	for _, n := range fails {
		p.Requests += n
	}
	if elapsed > 0 {
		p.Rate = float64(p.OK) / elapsed.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		p.P50 = percentile(lat, 0.50)
		p.P99 = percentile(lat, 0.99)
		p.Max = lat[len(lat)-1]
	}
	return p
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// MarshalJSON writes durations as seconds (elapsed) and milliseconds
// (latencies).
func (p Phase) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(struct {
		Requests int            `json:"requests"`
		OK       int            `json:"ok"`
		Failures map[string]int `json:"failures"`
		Elapsed  float64        `json:"elapsed_s"`
		Rate     float64        `json:"rate_per_s"`
		P50      float64        `json:"p50_ms"`
		P99      float64        `json:"p99_ms"`
		Max      float64        `json:"max_ms"`
	}{p.Requests, p.OK, p.Failures, p.Elapsed.Seconds(), p.Rate, ms(p.P50), ms(p.P99), ms(p.Max)})
}

// String is one line: counts, duration, rate, latency and failures.
func (p Phase) String() string {
	return fmt.Sprintf("%d/%d ok in %.2f s (%.0f/s); latency p50 %s p99 %s max %s; failures: %s",
		p.OK, p.Requests, p.Elapsed.Seconds(), p.Rate, round(p.P50), round(p.P99), round(p.Max), counts(p.Failures))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteText writes the report as human-readable lines.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "server %s, %d devices\n", r.Server, r.Devices)
	fmt.Fprintf(&b, "register:   %s\n", r.Register)
	if r.Flood != nil {
		fmt.Fprintf(&b, "flood:      %d Registers sent at %d/s for %s from one socket; answers: %s\n",
			r.Flood.Sent, r.Flood.Rate, r.Flood.For, counts(r.Flood.Answers))
	}
	if r.Send != nil {
		fmt.Fprintf(&b, "send:       %s\n", r.Send)
	}
	if r.Deregister != nil {
		fmt.Fprintf(&b, "deregister: %s\n", r.Deregister)
	}
	s := r.ServerRequests
	fmt.Fprintf(&b, "server requests answered: %d observe, %d read, %d write-attributes, %d not found\n",
		s.Observe, s.Read, s.Attributes, s.NotFound)
	if s.Deferred > 0 {
		fmt.Fprintf(&b, "requests deferred by 5.03 and sent again after Max-Age: %d\n", s.Deferred)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
