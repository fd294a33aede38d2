// Package events is the in-process publish/subscribe bus for things that
// happen in the server and that watchers (the dashboard's live view, the
// API's event stream) want to see as they happen: an operation changing
// status, a device registering, the values a device reported.
//
// It owns the server's topics and their payload types (topics.go: the
// Topic* constants, RegistrationEvent, ValuesEvent, OperationEvent, and
// Topics, which the event stream documents), so that producers and
// readers name them in one place. Values are rendered by package render,
// as the API renders them. The package imports nothing of the server's but
// render: producers (the job queue, the application's wiring of registry
// and CoAP server) import it, never the other way round.
//
// The bus drops events for readers that fall behind, so it is not where
// parts that must see every stored value listen: those hook into the
// ingest writer's commits (ingest.Writer.OnCommit).
//
// A Bus never blocks a publisher: each subscriber has a buffered channel,
// and an event that does not fit is dropped for that subscriber only and
// counted in its Dropped. The Bus numbers events (Event.Seq) in the order
// it delivers them, and each subscriber gets its events in that order.
// The bus is for live views; what must not be lost is in the database,
// and a subscriber that missed events reads the current state from there.
//
// A Feed serves many readers of one Bus, such as the API's event streams,
// at the cost of one subscriber: a single goroutine encodes each event
// once and hands the same bytes to every reader whose Filter selects it,
// waking readers at most once per FeedConfig.Interval so that each
// writes a burst at a time. Each reader holds a bounded number of bytes
// and messages; what does not fit is counted in its Dropped.
package events
