package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/version"
)

// maxError bounds the error kept in the delivery log.
const maxError = 512

// maxAnswer bounds the bytes of a receiver's answer that are read.
const maxAnswer = 64 << 10

// Payload is the JSON body of a delivery.
type Payload struct {
	ID       int64           `json:"id" doc:"The event's id in the event log: grows with every event (0 for a ping)"`
	Topic    string          `json:"topic"`
	Time     time.Time       `json:"time"`
	Endpoint string          `json:"endpoint,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// TopicPing is the topic of the event a ping sends.
const TopicPing = "ping"

// ActionDisable is the audit action of a webhook disabled after failed
// deliveries; its target is the webhook's URL.
const ActionDisable = "webhook.disable"

// deliver is the KindDelivery job: one attempt to deliver one logged
// event to one webhook. It ends without delivering when the webhook is
// gone, disabled or no longer selects the event, when the event was
// pruned, or when the owner may no longer see its device (its rights as
// read at most scopeTTL ago).
func (s *Service) deliver(ctx context.Context, job store.Job) error {
	var a deliveryArgs
	if err := json.Unmarshal(job.Args, &a); err != nil {
		return fmt.Errorf("webhook: delivery job %d: %w", job.ID, err)
	}
	h, err := s.st.GetWebhook(ctx, a.Webhook)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !h.Enabled {
		return nil
	}
	ev, err := s.st.GetLoggedEvent(ctx, a.Event)
	if errors.Is(err, store.ErrNotFound) {
		s.log.Warn("webhook delivery dropped: the event was pruned", "webhook", h.ID, "event", a.Event)
		return nil
	}
	if err != nil {
		return err
	}
	scope, err := s.deliveryScope(ctx, h.UserID)
	if err != nil {
		return err
	}
	if !matches(h, scope, ev) {
		return nil
	}
	body, _ := json.Marshal(Payload{ID: ev.ID, Topic: ev.Topic, Time: ev.Time, Endpoint: ev.Endpoint, Data: ev.Data})
	d, err := s.post(ctx, h, ev.Topic, deliveryID(h.ID, ev.ID), body)
	if err != nil {
		return err
	}
	d.EventID, d.Attempt = ev.ID, job.Attempts
	out, err := s.st.RecordWebhookDelivery(ctx, d, true, s.cfg.DisableAfter, func(w store.Webhook) store.AuditEntry {
		detail, _ := json.Marshal(map[string]any{"webhook": w.ID, "failures": s.cfg.DisableAfter, "last_error": d.Error})
		return store.AuditEntry{UserID: 0, Actor: "system", Action: ActionDisable, Target: w.URL, Detail: detail}
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if out.Disabled {
		s.invalidate()
		s.log.Warn("webhook disabled after failed deliveries", "webhook", h.ID, "user", h.UserID,
			"failures", out.Failures, "err", d.Error)
		return nil
	}
	if !d.OK() {
		return errors.New(d.Error)
	}
	return nil
}

// deliveryID names the delivery of an event to a webhook, the same on
// every attempt.
func deliveryID(hook, event int64) string {
	return strconv.FormatInt(hook, 10) + "-" + strconv.FormatInt(event, 10)
}

// post makes one attempt: it signs body with h's secret and POSTs it. The
// attempt's outcome is in the returned delivery (Error "" for a 2xx
// answer); err is for a webhook whose secret cannot be opened.
func (s *Service) post(ctx context.Context, h store.Webhook, topic, id string, body []byte) (store.WebhookDelivery, error) {
	secret, err := s.seal.open(h.SecretEnc, h.UserID)
	if err != nil {
		return store.WebhookDelivery{}, fmt.Errorf("webhook %d: %w", h.ID, err)
	}
	d := store.WebhookDelivery{WebhookID: h.ID, Topic: topic, Time: s.cfg.Now()}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		d.Error = "bad URL: " + err.Error()
		s.failed.Add(1)
		return d, nil
	}
	ts := s.cfg.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "flownexus-webhook/"+version.Version)
	req.Header.Set(HeaderEvent, topic)
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	start := time.Now()
	resp, err := s.client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		d.StatusCode = resp.StatusCode
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			d.Error = "HTTP " + strconv.Itoa(resp.StatusCode)
		}
	} else {
		d.Error = err.Error()
	}
	d.Duration = time.Since(start)
	if len(d.Error) > maxError {
		d.Error = strings.ToValidUTF8(d.Error[:maxError], "")
	}
	if d.OK() {
		s.delivered.Add(1)
	} else {
		s.failed.Add(1)
	}
	return d, nil
}
