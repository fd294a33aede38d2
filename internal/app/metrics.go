package app

import (
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flownexus/flownexus/internal/dtlsmux"
)

// deviceMetrics are the device-facing figures on /metrics: registrations,
// DTLS sessions by state, completed handshakes by kind, failed ones by
// reason.
type deviceMetrics struct {
	a          *App
	handshakes *prometheus.CounterVec
	failures   *prometheus.CounterVec
	regs       *prometheus.Desc
	sessions   *prometheus.Desc
	state      *prometheus.Desc
	inflight   *prometheus.Desc
	refused    *prometheus.Desc
}

func newDeviceMetrics(a *App) *deviceMetrics {
	return &deviceMetrics{
		a: a,
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flownexus_dtls_handshakes_total",
			Help: "Completed DTLS handshakes by authentication kind (psk, x509) and mode: full, or resumed (abbreviated, from the session cache). Parked sessions resumed without a handshake are not counted.",
		}, []string{"kind", "mode"}),
		failures: newFailureCounter(),
		regs: prometheus.NewDesc("flownexus_registrations",
			"Live LwM2M registrations held in memory.", nil, nil),
		sessions: prometheus.NewDesc("flownexus_dtls_sessions",
			"DTLS sessions bound to endpoints: live ones hold goroutines and buffers, parked ones only their exported state.",
			[]string{"state"}, nil),
		state: prometheus.NewDesc("flownexus_dtls_parked_state_bytes",
			"Bytes of exported state held by parked DTLS sessions.", nil, nil),
		inflight: prometheus.NewDesc("flownexus_coap_inflight",
			"Device messages (CoAP and CoAP/DTLS) queued or being handled.", nil, nil),
		refused: prometheus.NewDesc("flownexus_coap_refused_total",
			"Device messages refused by admission (a request gets 5.03 with Max-Age, a notification no answer), by reason: conn (too many from one address and port), source (from one host), server (in all), rate (Registers of one host), draining (stopping).",
			[]string{"reason"}, nil),
	}
}

// handshake is coapd.DTLSConfig.OnHandshake.
func (m *deviceMetrics) handshake(_ netip.AddrPort, identity string, resumed bool) {
	kind, _, _ := strings.Cut(identity, ":")
	mode := "full"
	if resumed {
		mode = "resumed"
	}
	m.handshakes.WithLabelValues(kind, mode).Inc()
}

// newFailureCounter counts failed handshakes by reason, every reason
// present from the start.
func newFailureCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flownexus_dtls_handshake_failures_total",
		Help: "Failed DTLS handshakes by reason: unknown_identity, bad_psk (known identity, wrong key), bad_certificate, timeout, no_cookie (the HelloVerifyRequest cookie never came back; the source may be spoofed), protocol.",
	}, []string{"reason"})
	for _, r := range dtlsmux.HandshakeFailureReasons {
		c.WithLabelValues(r)
	}
	return c
}

// handshakeFailed is coapd.DTLSConfig.OnHandshakeFailure.
func (m *deviceMetrics) handshakeFailed(_ netip.AddrPort, _, reason string) {
	m.failures.WithLabelValues(reason).Inc()
}

func (m *deviceMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.handshakes.Describe(ch)
	m.failures.Describe(ch)
	ch <- m.regs
	ch <- m.sessions
	ch <- m.state
	ch <- m.inflight
	ch <- m.refused
}

func (m *deviceMetrics) Collect(ch chan<- prometheus.Metric) {
	m.handshakes.Collect(ch)
	m.failures.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.regs, prometheus.GaugeValue, float64(m.a.Registry.Len()))
	st := m.a.CoAP.DTLSStats()
	ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Live), "live")
	ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Parked), "parked")
	ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, float64(st.ParkedStateBytes))
	adm := m.a.CoAP.AdmissionStats()
	ch <- prometheus.MustNewConstMetric(m.inflight, prometheus.GaugeValue, float64(adm.InFlight))
	for _, reason := range []string{"conn", "source", "server", "rate", "draining"} {
		ch <- prometheus.MustNewConstMetric(m.refused, prometheus.CounterValue, float64(adm.Refused[reason]), reason)
	}
}
