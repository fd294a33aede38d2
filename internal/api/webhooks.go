package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/webhook"
)

// Webhook is a webhook as the API shows it: never with its secret, except
// once in the answer that created or rotated it.
type Webhook struct {
	ID        int64     `json:"id"`
	Owner     int64     `json:"owner" doc:"The id of the user whose webhook it is: it gets the events of the devices that user may see"`
	URL       string    `json:"url"`
	Topics    []string  `json:"topics" doc:"The topics delivered; empty: every topic"`
	Endpoint  string    `json:"endpoint,omitempty" doc:"Only the events of this endpoint"`
	Site      string    `json:"site,omitempty" doc:"Only the events of this site's devices"`
	Enabled   bool      `json:"enabled"`
	Failures  int       `json:"failures" doc:"Failed delivery attempts in a row; the webhook is disabled after the server's limit"`
	Secret    string    `json:"secret,omitempty" doc:"The signing secret: in the answer that created or rotated it only"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toWebhook(w webhook.Webhook, secret string) Webhook {
	topics := w.Topics
	if topics == nil {
		topics = []string{}
	}
	return Webhook{ID: w.ID, Owner: w.UserID, URL: w.URL, Topics: topics, Endpoint: w.Endpoint, Site: w.Site,
		Enabled: w.Enabled, Failures: w.Failures, Secret: secret, CreatedAt: w.CreatedAt.UTC(), UpdatedAt: w.UpdatedAt.UTC()}
}

// WebhookDelivery is one attempt to deliver an event to a webhook.
type WebhookDelivery struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	EventID    int64     `json:"event_id" doc:"The event's id (0 for a ping)"`
	Topic      string    `json:"topic"`
	Attempt    int       `json:"attempt"`
	OK         bool      `json:"ok" doc:"The receiver answered 2xx"`
	StatusCode int       `json:"status_code,omitempty" doc:"The receiver's HTTP status; absent when it did not answer"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
}

func toDelivery(d store.WebhookDelivery) WebhookDelivery {
	return WebhookDelivery{ID: d.ID, Time: d.Time.UTC(), EventID: d.EventID, Topic: d.Topic, Attempt: d.Attempt, OK: d.OK(),
		StatusCode: d.StatusCode, DurationMS: d.Duration.Milliseconds(), Error: d.Error}
}

type webhookOutput struct {
	Body Webhook
}

type listWebhooksOutput struct {
	Body struct {
		Items []Webhook `json:"items"`
	}
}

type createWebhookInput struct {
	Body struct {
		URL      string   `json:"url" doc:"Where events are POSTed: https:// (http:// in debug mode only)"`
		Topics   []string `json:"topics,omitempty" doc:"Topics to deliver (see the event stream's topics); empty or absent: every topic"`
		Secret   string   `json:"secret,omitempty" doc:"The signing secret, 16 to 256 characters; absent: one is generated and returned once"`
		Endpoint string   `json:"endpoint,omitempty" doc:"Only the events of this endpoint"`
		Site     string   `json:"site,omitempty" doc:"Only the events of this site's devices (site name)"`
	}
}

type webhookIDInput struct {
	ID int64 `path:"id" doc:"The webhook's id"`
}

type updateWebhookInput struct {
	ID   int64 `path:"id" doc:"The webhook's id"`
	Body struct {
		URL          *string   `json:"url,omitempty"`
		Topics       *[]string `json:"topics,omitempty" doc:"Empty: every topic"`
		Enabled      *bool     `json:"enabled,omitempty" doc:"Enabling resets the failure count"`
		Endpoint     *string   `json:"endpoint,omitempty" doc:"Empty: no endpoint filter"`
		Site         *string   `json:"site,omitempty" doc:"Empty: no site filter"`
		Secret       *string   `json:"secret,omitempty" doc:"A new signing secret"`
		RotateSecret bool      `json:"rotate_secret,omitempty" doc:"Generate a new signing secret, returned once"`
	}
}

type listDeliveriesInput struct {
	ID     int64 `path:"id" doc:"The webhook's id"`
	Before int64 `query:"before" minimum:"0" doc:"Attempts older than this one (next_before of the previous page)"`
	Limit  int   `query:"limit" minimum:"0" maximum:"500" doc:"At most this many; 0 means 50"`
}

type listDeliveriesOutput struct {
	Body struct {
		Items      []WebhookDelivery `json:"items" doc:"Newest first"`
		NextBefore int64             `json:"next_before,omitempty" doc:"Pass as before for the next page; absent on the last"`
	}
}

type deliveryOutput struct {
	Body WebhookDelivery
}

func (a *API) webhookRoutes(h huma.API) {
	tags := []string{"webhooks"}
	register(h, auth.ViewData, huma.Operation{
		OperationID: "create-webhook", Method: http.MethodPost, Path: Prefix + "/webhooks",
		Summary: "Subscribe a URL to events", Tags: tags, DefaultStatus: http.StatusCreated,
		Description: "Events of the devices the caller may see are POSTed as JSON {id, topic, time, endpoint, data}, " +
			"signed: X-Flownexus-Signature is sha256=<hex HMAC-SHA256(secret, X-Flownexus-Timestamp + \".\" + body)>.",
	}, a.createWebhook)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "list-webhooks", Method: http.MethodGet, Path: Prefix + "/webhooks",
		Summary: "List the caller's webhooks (every webhook for a global administrator)", Tags: tags,
	}, a.listWebhooks)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "get-webhook", Method: http.MethodGet, Path: Prefix + "/webhooks/{id}",
		Summary: "Get a webhook", Tags: tags,
	}, a.getWebhook)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "update-webhook", Method: http.MethodPatch, Path: Prefix + "/webhooks/{id}",
		Summary: "Change a webhook's URL, topics, filters, enabled flag or secret", Tags: tags,
	}, a.updateWebhook)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "delete-webhook", Method: http.MethodDelete, Path: Prefix + "/webhooks/{id}",
		Summary: "Delete a webhook", Tags: tags, DefaultStatus: http.StatusNoContent,
	}, a.deleteWebhook)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "list-webhook-deliveries", Method: http.MethodGet, Path: Prefix + "/webhooks/{id}/deliveries",
		Summary: "List a webhook's delivery attempts, newest first", Tags: tags,
	}, a.listWebhookDeliveries)
	register(h, auth.ViewData, huma.Operation{
		OperationID: "ping-webhook", Method: http.MethodPost, Path: Prefix + "/webhooks/{id}/ping",
		Summary: "Send a ping event to a webhook now and return the attempt", Tags: tags,
	}, a.pingWebhook)
}

// webhookSubject is the caller as webhook.Service decides for it.
func (a *API) webhookSubject(ctx context.Context) (auth.Subject, error) {
	return a.opts.Store.Subject(ctx, userFrom(ctx).User)
}

// webhookFail maps the errors of webhook.Service: a request's field
// errors to 400 with the fields listed, an unknown or foreign webhook to
// 404.
func (a *API) webhookFail(ctx context.Context, id int64, err error) error {
	var inv *webhook.InvalidError
	switch {
	case errors.As(err, &inv):
		p := badRequest(inv.Error()[len("webhook: "):])
		for _, f := range inv.Fields {
			p.Errors = append(p.Errors, &problem.FieldError{Message: f.Message, Location: "body." + f.Field, Value: f.Value})
		}
		return p
	case errors.Is(err, store.ErrNotFound):
		return problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no such webhook: %d", id))
	}
	return a.fail(ctx, err)
}

func (a *API) createWebhook(ctx context.Context, in *createWebhookInput) (*webhookOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	b := in.Body
	w, secret, err := a.opts.Webhooks.Create(ctx, subj, actorOf(ctx), webhook.Request{URL: b.URL, Topics: b.Topics,
		Secret: b.Secret, Endpoint: b.Endpoint, Site: b.Site})
	if err != nil {
		return nil, a.webhookFail(ctx, 0, err)
	}
	if b.Secret != "" {
		secret = "" // the caller knows it
	}
	return &webhookOutput{Body: toWebhook(w, secret)}, nil
}

func (a *API) listWebhooks(ctx context.Context, _ *struct{}) (*listWebhooksOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	list, err := a.opts.Webhooks.List(ctx, subj)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listWebhooksOutput{}
	out.Body.Items = make([]Webhook, 0, len(list))
	for _, w := range list {
		out.Body.Items = append(out.Body.Items, toWebhook(w, ""))
	}
	return out, nil
}

func (a *API) getWebhook(ctx context.Context, in *webhookIDInput) (*webhookOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	w, err := a.opts.Webhooks.Get(ctx, subj, in.ID)
	if err != nil {
		return nil, a.webhookFail(ctx, in.ID, err)
	}
	return &webhookOutput{Body: toWebhook(w, "")}, nil
}

func (a *API) updateWebhook(ctx context.Context, in *updateWebhookInput) (*webhookOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	b := in.Body
	w, secret, err := a.opts.Webhooks.Update(ctx, subj, actorOf(ctx), in.ID, webhook.Change{URL: b.URL, Topics: b.Topics,
		Enabled: b.Enabled, Endpoint: b.Endpoint, Site: b.Site, Secret: b.Secret, RotateSecret: b.RotateSecret})
	if err != nil {
		return nil, a.webhookFail(ctx, in.ID, err)
	}
	return &webhookOutput{Body: toWebhook(w, secret)}, nil
}

func (a *API) deleteWebhook(ctx context.Context, in *webhookIDInput) (*struct{}, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	if err := a.opts.Webhooks.Delete(ctx, subj, actorOf(ctx), in.ID); err != nil {
		return nil, a.webhookFail(ctx, in.ID, err)
	}
	return nil, nil
}

func (a *API) listWebhookDeliveries(ctx context.Context, in *listDeliveriesInput) (*listDeliveriesOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 50
	}
	list, err := a.opts.Webhooks.Deliveries(ctx, subj, in.ID, in.Before, limit)
	if err != nil {
		return nil, a.webhookFail(ctx, in.ID, err)
	}
	out := &listDeliveriesOutput{}
	out.Body.Items = make([]WebhookDelivery, 0, len(list))
	for _, d := range list {
		out.Body.Items = append(out.Body.Items, toDelivery(d))
	}
	if len(list) == limit {
		out.Body.NextBefore = list[len(list)-1].ID
	}
	return out, nil
}

func (a *API) pingWebhook(ctx context.Context, in *webhookIDInput) (*deliveryOutput, error) {
	subj, err := a.webhookSubject(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	d, err := a.opts.Webhooks.Ping(ctx, subj, in.ID)
	if err != nil {
		return nil, a.webhookFail(ctx, in.ID, err)
	}
	return &deliveryOutput{Body: toDelivery(d)}, nil
}
