// Package webhook keeps the durable event log and delivers its events to
// users' webhooks.
//
// The event log: a Service subscribes to the server's event bus (package
// events) with a large buffer and appends what it receives to the log
// table (store.AppendEvents) in batches, one transaction per batch, with
// each event's endpoint's site at that time. The bus never blocks its
// publishers; an event that does not fit in the buffer (the database fell
// behind by more than Config.Buffer events) is counted in Stats.Dropped,
// which the server exports as a metric, so a loss is never silent. Logged
// events older than Config.Retention are pruned by a periodic job
// (KindPrune).
//
// Webhooks: a user subscribes a URL to topics, optionally to one endpoint
// or one site; the secret that signs its deliveries is sealed with the
// server's secret key at rest. In the transaction that logs a batch, one
// job (KindDelivery, package jobs) is inserted per (event, webhook) that
// matches: an enabled webhook whose topics and filters select the event
// and whose owner may see the event's device (auth.ViewData scope). The
// job checks all of this again when it runs (a user who lost a site gets
// none of its events), then POSTs the event as JSON,
// {"id","topic","time","endpoint","data"}, signed (Sign) with the headers
// HeaderEvent, HeaderDelivery, HeaderTimestamp and HeaderSignature. A 2xx
// answer ends the job; any other answer, or none within Config.Timeout,
// retries it with Config.Backoff up to Config.MaxAttempts attempts. Each
// attempt is logged per webhook (store.WebhookDelivery; pruned after
// Config.DeliveryRetention). Config.DisableAfter consecutive failed
// attempts disable the webhook, with an audit entry ("webhook.disable").
//
// Guarantees: every logged event matching a webhook is delivered at least
// once while the webhook is enabled and its attempts last (a receiver
// deduplicates by HeaderDelivery or the event id). Deliveries to one
// webhook start in the order of the events' ids, but run concurrently
// and a retried one arrives after later events: receivers that care
// order by "id", which grows with every logged event.
//
// Server-side request forgery: webhook URLs must be https:// (http:// too
// in debug mode); unless Config.AllowPrivate, a URL whose host is, or
// resolves to, a loopback, private, link-local, unspecified or multicast
// address is refused when it is stored, and every connection is checked
// again on the address dialled (a net.Dialer Control hook), which DNS
// rebinding cannot get around. Redirects are not followed, and at most
// 64 KiB of an answer is read.
package webhook
