// Package registry keeps the live LwM2M registrations of the server: who is
// registered under which registration ID, from which address, for how long,
// in which binding and queue mode, with which objects, and which
// observations (CoAP tokens) the server holds on each.
//
// # State and memory
//
// The registry is the only long-lived per-device state of the device-facing
// server. Each registration is one compact Registration value (strings, the
// parsed object list and a few timestamps; a few hundred bytes for a typical
// client) plus one small entry per observation in a token table keyed by the
// token the server chose. Nothing is keyed by IP address and port: a device
// is found by registration ID (Update, De-register), by endpoint name, or by
// observation token (notifications), so a device whose NAT mapping changed
// keeps its registration and observations. CoAP connection objects of the
// transport are not kept here; the transport may drop them when idle and
// open new ones to Registration.Addr when it has something to send.
//
// # Persistence
//
// Every Register, Update and De-register is written through to the store
// before the registry changes and before the device gets its answer, in
// one write each (through the batching ingest writer when Options.Ingest
// is set, so that a fleet registering at once costs a few transactions,
// not several each): the endpoint row (online, last seen, address,
// transport, lifetime, binding, version, queue mode, SMS number, object
// links), the deletion of the observations the change ends, and one value
// in the endpoint's history, object 10240 instance 0 with type time:
// resource 0 when it registered, 1 when it de-registered or its lifetime
// expired, 2 when it updated its registration. A request over plain CoAP
// can ask for the check that the endpoint has no credentials
// (RegisterRequest.CheckCredentials, UpdateRequest.CheckCredentials,
// DeregisterChecked), made in the same write. A registration is therefore never lost by a
// server restart: Lookup finds a registration ID that is not in memory in
// the store (online endpoint with that registration_id) and brings it back,
// with the address and transport its device last used, so a device's next
// Update after a restart is accepted without re-registering, and requests
// to a device that talks DTLS are never sent in clear.
//
// Observations are persisted too, through the same writer: AddObservation
// writes the observation (token, registration, paths, composite or not,
// format) to the store before it returns, RemoveObservation deletes it, and the end of a
// registration (De-register, expiry, or a new Register of the same
// endpoint, which replaces it) deletes all of its observations. A
// registration brought back from the store comes with the observations
// held on it. A notification is routed with LookupObservation: a token
// not in memory is looked up in the store, and one of an observation
// made before a restart brings back its registration (and the
// registration's other observations), so a device's notifications keep
// being accepted after a restart, planned or not. The price is one query
// of the store by primary key for every token not in memory, including
// each of a flood of made-up tokens (plus one delete the first time a
// token of an ended registration is seen, which removes its left-over
// row). Observation stays a lookup in memory only, without allocation.
//
// # Expiry
//
// A registration expires when its lifetime plus Options.Grace has passed
// since its last Register or Update. Sweep (and Run, which calls it
// periodically) removes expired registrations, marks the endpoint offline
// in the store, deletes its observations and records /10240/0/1 with the
// expiry time, exactly as a De-register does. Time comes from the injected Clock, so tests move it
// forward instead of sleeping.
//
// # Concurrency
//
// A Registry is safe for concurrent use. Store writes for one registration
// are serialized with its in-memory change; writes for different devices
// run concurrently (the store serializes them on SQLite). Listeners added
// with Subscribe are called synchronously after the change is committed and
// must not block.
package registry
