package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Webhook is a user's subscription to the events it may see (package
// webhook): events of Topics (all topics when empty) are POSTed to URL,
// signed with the secret that SecretEnc holds sealed by the caller (the
// store never sees it in clear). Endpoint and SiteID, when set, keep only
// the events of that endpoint or site; deleting the site deletes the
// webhook, so that a filter never widens. Failures counts the consecutive
// failed delivery attempts; Enabled is false once a webhook is disabled.
type Webhook struct {
	ID        int64
	UserID    int64
	URL       string
	Topics    []string
	SecretEnc []byte
	Endpoint  string
	SiteID    int64
	Enabled   bool
	Failures  int
	CreatedAt time.Time
	UpdatedAt time.Time
}

const webhookCols = "id, user_id, url, topics, secret_enc, endpoint, site_id, enabled, failures, created_at, updated_at"

func scanWebhook(r rowScanner) (Webhook, error) {
	var w Webhook
	var topics string
	var site sql.NullInt64
	var created, updated int64
	if err := r.Scan(&w.ID, &w.UserID, &w.URL, &topics, &w.SecretEnc, &w.Endpoint, &site, &w.Enabled, &w.Failures,
		&created, &updated); err != nil {
		return Webhook{}, err
	}
	if err := json.Unmarshal([]byte(topics), &w.Topics); err != nil {
		return Webhook{}, fmt.Errorf("topics of webhook %d: %w", w.ID, err)
	}
	w.SiteID, w.CreatedAt, w.UpdatedAt = site.Int64, fromMillis(created), fromMillis(updated)
	return w, nil
}

func topicsText(topics []string) string {
	if topics == nil {
		topics = []string{}
	}
	b, _ := json.Marshal(topics)
	return string(b)
}

// CreateWebhook stores w (ID, Failures and the times are set here) and
// returns it as stored. An unknown user or site is ErrConflict.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	op := fmt.Sprintf("create webhook of user %d", w.UserID)
	if w.URL == "" || len(w.SecretEnc) == 0 {
		return Webhook{}, fmt.Errorf("store: %s: a webhook needs a URL and a secret", op)
	}
	now := millis(s.now())
	out, err := scanWebhook(s.wdb.QueryRowContext(ctx, `
		INSERT INTO webhook (user_id, url, topics, secret_enc, endpoint, site_id, enabled, failures, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8) RETURNING `+webhookCols,
		w.UserID, w.URL, topicsText(w.Topics), w.SecretEnc, w.Endpoint, nullID(w.SiteID), w.Enabled, now))
	return out, wrap(op, err)
}

// GetWebhook returns one webhook; ErrNotFound when there is none.
func (s *Store) GetWebhook(ctx context.Context, id int64) (Webhook, error) {
	w, err := scanWebhook(s.rdb.QueryRowContext(ctx, "SELECT "+webhookCols+" FROM webhook WHERE id = $1", id))
	return w, wrap(fmt.Sprintf("get webhook %d", id), err)
}

// WebhookFilter selects webhooks for ListWebhooks; zero fields do not
// restrict.
type WebhookFilter struct {
	UserID      int64
	EnabledOnly bool
}

// ListWebhooks returns the webhooks matching f, by ID.
func (s *Store) ListWebhooks(ctx context.Context, f WebhookFilter) ([]Webhook, error) {
	var args []any
	arg := argList(&args)
	var conds []string
	if f.UserID != 0 {
		conds = append(conds, "user_id = "+arg(f.UserID))
	}
	if f.EnabledOnly {
		conds = append(conds, "enabled = "+arg(true))
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+webhookCols+" FROM webhook"+whereAll(conds...)+" ORDER BY id", args...)
	if err != nil {
		return nil, wrap("list webhooks", err)
	}
	out, err := collect(rows, scanWebhook)
	return out, wrap("list webhooks", err)
}

// UpdateWebhook stores the URL, topics, secret, filters and enabled flag
// of w (found by its ID) and returns it as stored. Enabling a webhook
// resets its failure count. ErrNotFound when it is gone.
func (s *Store) UpdateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	out, err := scanWebhook(s.wdb.QueryRowContext(ctx, `
		UPDATE webhook SET url = $2, topics = $3, secret_enc = $4, endpoint = $5, site_id = $6, enabled = $7,
			failures = CASE WHEN $7 AND NOT enabled THEN 0 ELSE failures END, updated_at = $8
		WHERE id = $1 RETURNING `+webhookCols,
		w.ID, w.URL, topicsText(w.Topics), w.SecretEnc, w.Endpoint, nullID(w.SiteID), w.Enabled, millis(s.now())))
	return out, wrap(fmt.Sprintf("update webhook %d", w.ID), err)
}

// DeleteWebhook deletes a webhook and its delivery log; ErrNotFound when
// it is gone.
func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete webhook %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM webhook WHERE id = $1", id)))
}

// WebhookDelivery is one attempt to deliver an event to a webhook: when,
// which event (0 for a ping), the attempt's number, the receiver's HTTP
// status (0 when none came), how long it took and why it failed ("" when
// the receiver answered 2xx).
type WebhookDelivery struct {
	ID         int64
	WebhookID  int64
	Time       time.Time
	EventID    int64
	Topic      string
	Attempt    int
	StatusCode int
	Duration   time.Duration
	Error      string
}

// OK reports whether the attempt succeeded.
func (d WebhookDelivery) OK() bool { return d.Error == "" }

const webhookDeliveryCols = "id, webhook_id, time, event_id, topic, attempt, status_code, duration_ms, error"

func scanWebhookDelivery(r rowScanner) (WebhookDelivery, error) {
	var d WebhookDelivery
	var t, ms int64
	if err := r.Scan(&d.ID, &d.WebhookID, &t, &d.EventID, &d.Topic, &d.Attempt, &d.StatusCode, &ms, &d.Error); err != nil {
		return WebhookDelivery{}, err
	}
	d.Time, d.Duration = fromMillis(t), time.Duration(ms)*time.Millisecond
	return d, nil
}

// WebhookOutcome is what RecordWebhookDelivery did to the webhook.
type WebhookOutcome struct {
	Delivery WebhookDelivery // as stored
	Failures int             // the consecutive failed attempts after this one
	// Disabled is true when this attempt disabled the webhook: it was the
	// disableAfter-th failed one in a row.
	Disabled bool
}

// RecordWebhookDelivery logs an attempt and, when counted, keeps the
// webhook's failure count: a success resets it, a failure adds one, and
// the failure that brings it to disableAfter (> 0) disables the webhook,
// with audit appended in the same transaction. A ping is logged without
// being counted (count false). ErrNotFound when the webhook is gone.
func (s *Store) RecordWebhookDelivery(ctx context.Context, d WebhookDelivery, count bool, disableAfter int,
	audit func(Webhook) AuditEntry) (WebhookOutcome, error) {
	op := fmt.Sprintf("record delivery to webhook %d", d.WebhookID)
	var out WebhookOutcome
	t := d.Time
	if t.IsZero() {
		t = s.now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out.Delivery, err = scanWebhookDelivery(tx.QueryRowContext(ctx, `
			INSERT INTO webhook_delivery (webhook_id, time, event_id, topic, attempt, status_code, duration_ms, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+webhookDeliveryCols,
			d.WebhookID, millis(t), d.EventID, d.Topic, d.Attempt, d.StatusCode, d.Duration.Milliseconds(), d.Error))
		if err != nil || !count {
			return err
		}
		failures := "0"
		if !d.OK() {
			failures = "failures + 1"
		}
		var enabled bool
		if err := tx.QueryRowContext(ctx, "UPDATE webhook SET failures = "+failures+" WHERE id = $1 RETURNING failures, enabled",
			d.WebhookID).Scan(&out.Failures, &enabled); err != nil {
			return err
		}
		if d.OK() || !enabled || disableAfter <= 0 || out.Failures < disableAfter {
			return nil
		}
		w, err := scanWebhook(tx.QueryRowContext(ctx,
			"UPDATE webhook SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING "+webhookCols,
			d.WebhookID, false, millis(s.now())))
		if err != nil {
			return err
		}
		out.Disabled = true
		if audit != nil {
			_, err = s.appendAudit(ctx, tx, audit(w))
		}
		return err
	})
	return out, wrap(op, err)
}

// DeliveryFilter pages a webhook's delivery log for ListWebhookDeliveries.
type DeliveryFilter struct {
	WebhookID int64 // required
	BeforeID  int64 // attempts older than this one: the next page
	Limit     int   // <= 0: 50
}

// ListWebhookDeliveries returns a webhook's logged attempts, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, f DeliveryFilter) ([]WebhookDelivery, error) {
	var args []any
	arg := argList(&args)
	conds := []string{"webhook_id = " + arg(f.WebhookID)}
	if f.BeforeID > 0 {
		conds = append(conds, "id < "+arg(f.BeforeID))
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+webhookDeliveryCols+" FROM webhook_delivery"+whereAll(conds...)+
		" ORDER BY id DESC LIMIT "+arg(limitOr(f.Limit, 50)), args...)
	if err != nil {
		return nil, wrap("list webhook deliveries", err)
	}
	out, err := collect(rows, scanWebhookDelivery)
	return out, wrap("list webhook deliveries", err)
}

// TrimWebhookDeliveries keeps the newest keep (> 0) logged attempts of
// each webhook, deleting older ones, and returns how many it deleted.
func (s *Store) TrimWebhookDeliveries(ctx context.Context, keep int) (int64, error) {
	const op = "trim webhook deliveries"
	rows, err := s.rdb.QueryContext(ctx, "SELECT id FROM webhook")
	if err != nil {
		return 0, wrap(op, err)
	}
	ids, err := collect(rows, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return 0, wrap(op, err)
	}
	var total int64
	for _, id := range ids {
		res, err := s.wdb.ExecContext(ctx, `DELETE FROM webhook_delivery WHERE webhook_id = $1 AND id <= (
			SELECT id FROM webhook_delivery WHERE webhook_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`, id, keep)
		if err != nil {
			return total, wrap(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap(op, err)
		}
		total += n
	}
	return total, nil
}

// PruneWebhookDeliveries deletes the logged attempts older than before and
// returns how many.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, "DELETE FROM webhook_delivery WHERE time < $1", millis(before))
	if err != nil {
		return 0, wrap("prune webhook deliveries", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("prune webhook deliveries", err)
}
