// Package events is the in-process publish/subscribe bus for things that
// happen in the server and that watchers (the dashboard's live view, the
// API's event stream) want to see as they happen: an operation changing
// status, a device registering.
//
// A Bus never blocks a publisher: each subscriber has a buffered channel,
// and an event that does not fit is dropped for that subscriber only and
// counted in its Dropped. Events published one after the other reach each
// subscriber in that order. The bus is for live views; what must not be
// lost is in the database, and a subscriber that missed events reads the
// current state from there.
package events
