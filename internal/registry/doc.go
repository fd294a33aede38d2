// Package registry keeps the LwM2M registrations of the server: who is
// registered under which registration ID, from which address, for how long,
// in which binding and queue mode, with which objects, and which
// observations (CoAP tokens) the server holds on each.
//
// # The record and a node's live state
//
// A registration's durable record is in the store, shared by every server
// node on the database: the endpoint row (online, registration ID, address,
// transport, lifetime, binding, version, queue mode, SMS number, object
// links, and last_seen, the time of the last Register or Update), the
// observations made on the registration, the time the device was last
// heard from (store.SetHeard) and the registration history (object 10240).
// The record is the authority: whether a registration is live, when it
// expires, where its device talks from. A Registry is one node's view of
// it: a copy of the records of the devices this node talks to, one compact
// Registration value each (strings, the parsed object list and a few
// timestamps; a few hundred bytes for a typical client), plus what only
// this node has: the observation tokens it routes notifications by (one
// small entry each) and when it last heard from each device (Seen). The
// connection state a node holds for a device (go-coap connections, DTLS
// sessions) is the transport's, kept by endpoint, not here.
//
// Nothing is keyed by IP address and port: a device is found by
// registration ID (Update, De-register), by endpoint name, or by
// observation token (notifications), so a device whose NAT mapping
// changed keeps its registration and observations. Only a Send over plain
// CoAP, which names no registration, is attributed by the address its
// device last registered or updated from (LookupAddr).
//
// # Writes go to the record first
//
// Every Register, Update, De-register, address move (SetAddr) and
// observation is written to the record before this node's copy changes
// and before the device gets its answer, in one write each (through the
// batching ingest writer when Config.Ingest is set, so that a fleet
// registering at once costs a few transactions, not several each): the
// endpoint row, the deletion of the observations the change ends, and one
// value in the endpoint's history, object 10240 instance 0 with type
// time: resource 0 when it registered, 1 when it de-registered or its
// lifetime expired, 2 when it updated its registration. A request over
// plain CoAP can ask for the check that the endpoint has no credentials
// (RegisterRequest.CheckCredentials, UpdateRequest.CheckCredentials,
// DeregisterChecked), made in the same write.
//
// An Update, a De-register and an address move apply only while the
// registration they name is still the endpoint's live one in the store
// (store.ErrRegistrationGone otherwise), and an Update writes only what
// the request names: a node whose copy is stale (another node took the
// device's new Register, its De-register, or an Update that changed what
// this node's copy says) never overwrites or ends a newer registration.
// It drops its copy and reports ErrNotFound, which the device gets as
// 4.04 and answers with a new Register. After an Update the copy is the
// record as the Update left it.
//
// # Reads: the copy, checked against the record where it matters
//
// The device-facing path reads this node's copy first: Lookup (by
// registration ID), LookupEndpoint, LookupAddr and LookupObservation (by
// token). A registration this node does not hold (made before a restart,
// or on another node) is brought back from its record with the address
// and transport its device last used and the observations held on it;
// one whose lifetime has passed is not. A registration this node holds an
// older copy of (the device registered anew on another node) replaces the
// copy when the device names it. A registration is therefore never lost by
// a restart: a device's next Update is accepted without re-registering,
// its notifications keep being routed, and requests to a device that
// talks DTLS are never sent in clear. The price is one query of the store
// by key for every registration ID or token not in memory, including each
// of a flood of made-up tokens (plus one delete the first time a token of
// an ended registration is seen, which removes its left-over row).
// Observation stays a lookup in memory only, without allocation.
//
// Requests the server starts (reads, writes, queued operations) go by
// Current, which reads the record (one query by endpoint name) and makes
// it this node's copy: they go to the address the device last registered,
// updated or moved its session from, on whichever node that happened.
//
// # Expiry
//
// A registration expires when its lifetime plus Config.Grace has passed
// since its last Register or Update, by its record: traffic from the
// device (Seen) does not extend it. Sweep (and Run, which calls it
// periodically) ends expired registrations in the store
// (store.ExpireRegistrations): in one transaction per sweep the endpoints
// go offline, their observations are deleted and /10240/0/1 is recorded
// with the expiry time, exactly as a De-register does. The decision is
// made on the stored rows, so each registration is expired, logged and
// reported to the listeners (Expired) exactly once, by whichever node's
// sweep comes first, whether the device last talked to that node, to
// another, or to a server before a restart; a node whose copy is older
// than the record (another node took the device's Update) never expires
// it. A node's copies that its own reading of the lifetime says have
// ended are then checked against their records: refreshed if renewed
// elsewhere, dropped if ended elsewhere. Time comes from the injected
// Clock, so tests move it forward instead of sleeping.
//
// # Liveness
//
// Seen records that a device talked (a Send, a notification) in this
// node's copy at once, and in the record with the next WriteSeen, which
// Run calls every Config.SeenInterval (one second by default) with one
// write (store.SetHeard) for all the devices heard since the last one:
// at most one write an interval whatever the fleet sends. Another node
// sees it from then on (Current and restored copies take the later of the
// record's last Register or Update and its heard time as LastSeen), which
// is what a queue-mode device's receive window is counted from.
//
// # Several nodes
//
// With several nodes on one database, what holds already: a registration
// is expired once, by the record; a stale copy neither overwrites nor
// ends a newer record; requests the server starts go to where the record
// says the device is; liveness reaches the record within SeenInterval.
// What is bounded, not immediate: a copy of a registration that ended or
// was replaced on another node stays on this node until the device or
// the server uses it (the conditional writes, Current) or its lifetime
// passes by this node's reading (Sweep). Until then this node routes
// notifications by that copy's tokens and attributes plain-CoAP Sends
// from its address to it. The multi-node work builds on this: every node
// publishes "registration of endpoint E changed" after each committed
// change of a record (Register, Update, De-register, expiry, address
// move, removed observation) through Redis, and every node drops its copy
// of E on receipt, which shortens that window to the message's delay;
// server-initiated requests are routed to the node that holds the
// device's DTLS session or NAT mapping.
//
// # Concurrency
//
// A Registry is safe for concurrent use. Store writes for one endpoint
// are serialized with the change of this node's copy under a lock of the
// endpoint's (one of 4,096 stripes, held while the write waits for its
// batch); writes for different devices run concurrently (the store
// serializes them on SQLite). Listeners added with Subscribe are called
// synchronously after the change is committed and must not block.
package registry
