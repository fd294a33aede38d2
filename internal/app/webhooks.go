package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/webhook"
)

// WebhookTuning tunes the event log and webhook deliveries
// (webhook.Config); zero fields mean its defaults.
type WebhookTuning struct {
	MaxAttempts   int
	Backoff       func(attempt int) time.Duration
	DisableAfter  int
	Timeout       time.Duration
	PruneInterval time.Duration
}

// newWebhooks builds the event log recorder and webhook deliveries on a's
// store, engine and bus. Webhook URLs may be http:// in debug mode only.
func newWebhooks(a *App, cfg config.Config, t WebhookTuning) (*webhook.Service, error) {
	return webhook.New(webhook.Config{
		Store: a.Store, Engine: a.Engine, Bus: a.Events, Logged: a.Logged, SecretKey: cfg.SecretKey, Logger: a.log,
		AllowHTTP: cfg.Debug, AllowPrivate: cfg.WebhookAllowPrivate, Retention: cfg.EventRetention,
		MaxAttempts: t.MaxAttempts, Backoff: t.Backoff, DisableAfter: t.DisableAfter, Timeout: t.Timeout,
		PruneInterval: t.PruneInterval, Now: a.opts.Now,
	})
}

// webhookMetrics exports the event log's and the deliveries' counts.
func webhookMetrics(s *webhook.Service) []prometheus.Collector {
	counter := func(name, help string, v func(webhook.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "flownexus", Name: name, Help: help},
			func() float64 { return float64(v(s.Stats())) })
	}
	return []prometheus.Collector{
		counter("event_log_appended_total", "Events appended to the durable event log.",
			func(st webhook.Stats) uint64 { return st.Logged }),
		counter("event_log_dropped_total", "Events the bus dropped before the event log recorded them (the database fell behind).",
			func(st webhook.Stats) uint64 { return st.Dropped }),
		counter("webhook_deliveries_total", "Webhook delivery attempts answered 2xx.",
			func(st webhook.Stats) uint64 { return st.Delivered }),
		counter("webhook_delivery_failures_total", "Webhook delivery attempts that failed.",
			func(st webhook.Stats) uint64 { return st.Failed }),
	}
}
