package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWebhooks(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		u, err := s.CreateUser(ctx, "olive", "x", false)
		if err != nil {
			t.Fatal(err)
		}
		site, err := s.CreateSite(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.CreateWebhook(ctx, Webhook{UserID: u.ID, URL: "https://example.com/hook", Topics: []string{"values"},
			SecretEnc: []byte{1, 2, 3}, SiteID: site.ID, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if w.ID == 0 || w.UserID != u.ID || w.SiteID != site.ID || !w.Enabled || w.Failures != 0 ||
			len(w.Topics) != 1 || w.CreatedAt != t0 || string(w.SecretEnc) != "\x01\x02\x03" {
			t.Fatalf("created %+v", w)
		}
		if _, err := s.CreateWebhook(ctx, Webhook{UserID: u.ID + 100, URL: "https://x", SecretEnc: []byte{1}}); !errors.Is(err, ErrConflict) {
			t.Fatalf("unknown user: %v", err)
		}
		other, err := s.CreateWebhook(ctx, Webhook{UserID: u.ID, URL: "https://example.org/", SecretEnc: []byte{9}})
		if err != nil {
			t.Fatal(err)
		}
		if other.Enabled || other.Topics == nil || len(other.Topics) != 0 {
			t.Fatalf("second webhook %+v", other)
		}
		list, err := s.ListWebhooks(ctx, WebhookFilter{EnabledOnly: true})
		if err != nil || len(list) != 1 || list[0].ID != w.ID {
			t.Fatalf("enabled webhooks: %+v, %v", list, err)
		}
		list, err = s.ListWebhooks(ctx, WebhookFilter{UserID: u.ID})
		if err != nil || len(list) != 2 {
			t.Fatalf("the user's webhooks: %+v, %v", list, err)
		}

		// Failures: two failed attempts, a success resets, three in a row
		// disable (with the audit entry in the same transaction).
		audit := func(w Webhook) AuditEntry {
			return AuditEntry{Action: "webhook.disable", Target: w.URL}
		}
		record := func(ok bool, count bool) WebhookOutcome {
			t.Helper()
			d := WebhookDelivery{WebhookID: w.ID, EventID: 7, Topic: "values", Attempt: 1, StatusCode: 500,
				Duration: 15 * time.Millisecond, Error: "HTTP 500"}
			if ok {
				d.StatusCode, d.Error = 204, ""
			}
			out, err := s.RecordWebhookDelivery(ctx, d, count, 3, audit)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if o := record(false, true); o.Failures != 1 || o.Disabled || o.Delivery.Duration != 15*time.Millisecond {
			t.Fatalf("first failure: %+v", o)
		}
		record(false, true)
		if o := record(true, true); o.Failures != 0 {
			t.Fatalf("success: %+v", o)
		}
		record(false, false) // a ping: not counted
		record(false, true)
		record(false, true)
		if o := record(false, true); !o.Disabled || o.Failures != 3 {
			t.Fatalf("third failure in a row: %+v", o)
		}
		if o := record(false, true); o.Disabled {
			t.Fatalf("disabled twice: %+v", o)
		}
		got, err := s.GetWebhook(ctx, w.ID)
		if err != nil || got.Enabled {
			t.Fatalf("after the failures: %+v, %v", got, err)
		}
		entries, err := s.ListAudit(ctx, AuditFilter{})
		if err != nil || len(entries) != 1 || entries[0].Action != "webhook.disable" {
			t.Fatalf("audit: %+v, %v", entries, err)
		}

		// Enabling again resets the count.
		got.Enabled, got.URL, got.Topics, got.SiteID, got.Endpoint = true, "https://example.com/v2", nil, 0, "ep"
		clockOf(s).Advance(time.Minute)
		up, err := s.UpdateWebhook(ctx, got)
		if err != nil || !up.Enabled || up.Failures != 0 || up.URL != "https://example.com/v2" || up.SiteID != 0 ||
			up.Endpoint != "ep" || !up.UpdatedAt.After(up.CreatedAt) {
			t.Fatalf("updated %+v, %v", up, err)
		}

		page, err := s.ListWebhookDeliveries(ctx, DeliveryFilter{WebhookID: w.ID, Limit: 3})
		if err != nil || len(page) != 3 || page[0].ID < page[1].ID {
			t.Fatalf("first page: %+v, %v", page, err)
		}
		rest, err := s.ListWebhookDeliveries(ctx, DeliveryFilter{WebhookID: w.ID, BeforeID: page[2].ID})
		if err != nil || len(rest) != 5 {
			t.Fatalf("second page: %d, %v", len(rest), err)
		}
		n, err := s.TrimWebhookDeliveries(ctx, 6)
		if err != nil || n != 2 {
			t.Fatalf("trimmed %d, %v", n, err)
		}
		if n, err := s.TrimWebhookDeliveries(ctx, 6); err != nil || n != 0 {
			t.Fatalf("trimmed again %d, %v", n, err)
		}
		kept, err := s.ListWebhookDeliveries(ctx, DeliveryFilter{WebhookID: w.ID})
		if err != nil || len(kept) != 6 || kept[0].ID != page[0].ID {
			t.Fatalf("kept %+v, %v", kept, err)
		}
		n, err = s.PruneWebhookDeliveries(ctx, t0.Add(time.Second))
		if err != nil || n != 6 {
			t.Fatalf("pruned %d, %v", n, err)
		}

		if err := s.DeleteWebhook(ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWebhook(ctx, w.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := s.RecordWebhookDelivery(ctx, WebhookDelivery{WebhookID: w.ID, Topic: "ping"}, true, 3, nil); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
			t.Fatalf("delivery to a deleted webhook: %v", err)
		}
	})
}
