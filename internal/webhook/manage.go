package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/store"
)

// ErrInvalid is matched by a request's validation error (*InvalidError).
var ErrInvalid = errors.New("webhook: invalid request")

// FieldError says what is wrong with one field of a request.
type FieldError struct {
	Field   string // e.g. "url"
	Message string
	Value   any
}

// InvalidError lists the fields of a request that are wrong; it matches
// ErrInvalid.
type InvalidError struct{ Fields []FieldError }

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "webhook: invalid request: " + strings.Join(parts, "; ")
}

func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// The audit actions of webhook changes; their target is the webhook's
// URL.
const (
	ActionCreate = "webhook.create"
	ActionUpdate = "webhook.update"
	ActionDelete = "webhook.delete"
)

// Webhook is a webhook as its owner sees it: never with its secret.
type Webhook struct {
	store.Webhook
	Site string // the site filter's name, "" when none
}

// Request creates a webhook. Topics empty means every topic; Secret ""
// means a generated one; Endpoint and Site ("" for none) keep only the
// events of that endpoint or site (by name), which the owner must see.
type Request struct {
	URL      string
	Topics   []string
	Secret   string
	Endpoint string
	Site     string
}

// Change changes a webhook: nil fields are kept. RotateSecret with a nil
// Secret generates a new one.
type Change struct {
	URL          *string
	Topics       *[]string
	Enabled      *bool
	Endpoint     *string
	Site         *string
	Secret       *string
	RotateSecret bool
}

// Secret lengths accepted from users.
const (
	minSecretLen = 16
	maxSecretLen = 256
)

// validator collects field errors.
type validator struct{ fields []FieldError }

func (v *validator) add(field, msg string, value any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: msg, Value: value})
}

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &InvalidError{Fields: v.fields}
}

// topicNames are the topics a webhook may subscribe to.
func topicNames() []string {
	out := make([]string, len(events.Topics))
	for i, t := range events.Topics {
		out[i] = t.Name
	}
	return out
}

func (v *validator) topics(topics []string) []string {
	topics = trimTopics(topics)
	known := topicNames()
	for _, t := range topics {
		if !slices.Contains(known, t) {
			v.add("topics", fmt.Sprintf("unknown topic %q; known: %s", t, strings.Join(known, ", ")), t)
		}
	}
	return topics
}

func (v *validator) secret(s string) {
	if len(s) < minSecretLen || len(s) > maxSecretLen {
		v.add("secret", fmt.Sprintf("must be %d to %d characters", minSecretLen, maxSecretLen), nil)
	}
}

// filters resolves the endpoint and site filters for subj: an endpoint
// or site subj may not see is answered as unknown.
func (s *Service) filters(ctx context.Context, v *validator, subj auth.Subject, endpoint, site string) (int64, error) {
	scope := subj.Scope(auth.ViewData)
	if endpoint != "" {
		e, err := s.st.GetEndpoint(ctx, endpoint)
		switch {
		case errors.Is(err, store.ErrNotFound):
			v.add("endpoint", "no such endpoint", endpoint)
		case err != nil:
			return 0, err
		case !scope.Contains(e.SiteID):
			v.add("endpoint", "no such endpoint", endpoint)
		}
	}
	if site == "" {
		return 0, nil
	}
	st, err := s.st.GetSiteByName(ctx, site)
	switch {
	case errors.Is(err, store.ErrNotFound):
		v.add("site", "no such site", site)
		return 0, nil
	case err != nil:
		return 0, err
	case !scope.Contains(st.ID):
		v.add("site", "no such site", site)
		return 0, nil
	}
	return st.ID, nil
}

// Create stores a webhook of subj and returns it with its secret in clear
// (the one given or a generated one): the only time it is shown.
func (s *Service) Create(ctx context.Context, subj auth.Subject, actor store.Actor, r Request) (Webhook, string, error) {
	var v validator
	if msg := s.policy.check(ctx, r.URL); msg != "" {
		v.add("url", msg, r.URL)
	}
	topics := v.topics(r.Topics)
	secret := r.Secret
	if secret == "" {
		secret = newSecret()
	} else {
		v.secret(secret)
	}
	siteID, err := s.filters(ctx, &v, subj, r.Endpoint, r.Site)
	if err != nil {
		return Webhook{}, "", err
	}
	if err := v.err(); err != nil {
		return Webhook{}, "", err
	}
	h, err := s.st.CreateWebhook(ctx, store.Webhook{UserID: subj.UserID, URL: r.URL, Topics: topics,
		SecretEnc: s.seal.seal([]byte(secret), subj.UserID), Endpoint: r.Endpoint, SiteID: siteID, Enabled: true})
	if err != nil {
		return Webhook{}, "", err
	}
	s.invalidate()
	s.audit(ctx, actor, ActionCreate, h)
	return Webhook{Webhook: h, Site: r.Site}, secret, nil
}

// audit records a change of h; a failure is logged, not returned (the
// change is made).
func (s *Service) audit(ctx context.Context, actor store.Actor, action string, h store.Webhook) {
	detail, _ := json.Marshal(map[string]any{"webhook": h.ID, "owner": h.UserID, "topics": h.Topics, "enabled": h.Enabled})
	if _, err := s.st.AppendAudit(ctx, actor.Entry(action, h.URL, detail)); err != nil {
		s.log.Error("audit of a webhook change failed", "action", action, "webhook", h.ID, "err", err)
	}
}

// visible returns webhook id when subj may see it (its owner or a global
// administrator); store.ErrNotFound otherwise.
func (s *Service) visible(ctx context.Context, subj auth.Subject, id int64) (store.Webhook, error) {
	h, err := s.st.GetWebhook(ctx, id)
	if err != nil {
		return store.Webhook{}, err
	}
	if h.UserID != subj.UserID && !subj.Admin {
		return store.Webhook{}, fmt.Errorf("webhook: webhook %d: %w", id, store.ErrNotFound)
	}
	return h, nil
}

func (s *Service) named(ctx context.Context, h store.Webhook) (Webhook, error) {
	out := Webhook{Webhook: h}
	if h.SiteID != 0 {
		st, err := s.st.GetSite(ctx, h.SiteID)
		if err != nil {
			return Webhook{}, err
		}
		out.Site = st.Name
	}
	return out, nil
}

// Get returns a webhook subj may see.
func (s *Service) Get(ctx context.Context, subj auth.Subject, id int64) (Webhook, error) {
	h, err := s.visible(ctx, subj, id)
	if err != nil {
		return Webhook{}, err
	}
	return s.named(ctx, h)
}

// List returns subj's webhooks; every webhook for a global administrator.
func (s *Service) List(ctx context.Context, subj auth.Subject) ([]Webhook, error) {
	f := store.WebhookFilter{UserID: subj.UserID}
	if subj.Admin {
		f.UserID = 0
	}
	list, err := s.st.ListWebhooks(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Webhook, 0, len(list))
	for _, h := range list {
		w, err := s.named(ctx, h)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Update changes a webhook subj may see and returns it, with the new
// secret in clear when it was rotated ("" otherwise). The filters are
// checked against the owner's view (subj's, when subj owns it). Enabling
// a webhook resets its failure count.
func (s *Service) Update(ctx context.Context, subj auth.Subject, actor store.Actor, id int64, c Change) (Webhook, string, error) {
	h, err := s.visible(ctx, subj, id)
	if err != nil {
		return Webhook{}, "", err
	}
	owner := subj
	if h.UserID != subj.UserID {
		if owner, err = s.subjectOf(ctx, h.UserID); err != nil {
			return Webhook{}, "", err
		}
	}
	cur, err := s.named(ctx, h)
	if err != nil {
		return Webhook{}, "", err
	}
	var v validator
	if c.URL != nil {
		if msg := s.policy.check(ctx, *c.URL); msg != "" {
			v.add("url", msg, *c.URL)
		}
		h.URL = *c.URL
	}
	if c.Topics != nil {
		h.Topics = v.topics(*c.Topics)
	}
	if c.Enabled != nil {
		h.Enabled = *c.Enabled
	}
	endpoint, site := h.Endpoint, cur.Site
	if c.Endpoint != nil {
		endpoint = *c.Endpoint
	}
	if c.Site != nil {
		site = *c.Site
	}
	if c.Endpoint != nil || c.Site != nil {
		if h.SiteID, err = s.filters(ctx, &v, owner, endpoint, site); err != nil {
			return Webhook{}, "", err
		}
		h.Endpoint = endpoint
	}
	var secret string
	switch {
	case c.Secret != nil:
		v.secret(*c.Secret)
		secret = *c.Secret
	case c.RotateSecret:
		secret = newSecret()
	}
	if err := v.err(); err != nil {
		return Webhook{}, "", err
	}
	if secret != "" {
		h.SecretEnc = s.seal.seal([]byte(secret), h.UserID)
	}
	h, err = s.st.UpdateWebhook(ctx, h)
	if err != nil {
		return Webhook{}, "", err
	}
	s.invalidate()
	s.audit(ctx, actor, ActionUpdate, h)
	out, err := s.named(ctx, h)
	if c.Secret != nil {
		secret = "" // the caller knows it
	}
	return out, secret, err
}

func (s *Service) subjectOf(ctx context.Context, userID int64) (auth.Subject, error) {
	u, err := s.st.GetUser(ctx, userID)
	if err != nil {
		return auth.Subject{}, err
	}
	return s.st.Subject(ctx, u)
}

// Delete deletes a webhook subj may see, with its delivery log; its
// deliveries still waiting end without sending.
func (s *Service) Delete(ctx context.Context, subj auth.Subject, actor store.Actor, id int64) error {
	h, err := s.visible(ctx, subj, id)
	if err != nil {
		return err
	}
	if err := s.st.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	s.invalidate()
	s.audit(ctx, actor, ActionDelete, h)
	return nil
}

// Deliveries returns a page of the delivery log of a webhook subj may
// see, newest first: the attempts older than beforeID (0: the newest).
func (s *Service) Deliveries(ctx context.Context, subj auth.Subject, id, beforeID int64, limit int) ([]store.WebhookDelivery, error) {
	if _, err := s.visible(ctx, subj, id); err != nil {
		return nil, err
	}
	return s.st.ListWebhookDeliveries(ctx, store.DeliveryFilter{WebhookID: id, BeforeID: beforeID, Limit: limit})
}

// Ping sends a TopicPing event to a webhook subj may see, now, whether it
// is enabled or not, and returns the attempt as logged. A ping does not
// count towards the failures that disable a webhook.
func (s *Service) Ping(ctx context.Context, subj auth.Subject, id int64) (store.WebhookDelivery, error) {
	h, err := s.visible(ctx, subj, id)
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	now := s.cfg.Now().UTC()
	data, _ := json.Marshal(map[string]any{"webhook": h.ID})
	body, _ := json.Marshal(Payload{Topic: TopicPing, Time: now, Data: data})
	d, err := s.post(ctx, h, TopicPing, fmt.Sprintf("%d-ping-%d", h.ID, now.UnixNano()), body)
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	d.Attempt = 1
	out, err := s.st.RecordWebhookDelivery(ctx, d, false, 0, nil)
	return out.Delivery, err
}
