// Package coapd is the device-facing CoAP server over UDP and DTLS: the
// LwM2M registration interface (Register POST /rd, Update POST /rd/<id>,
// De-register DELETE /rd/<id>), the Send operation (POST /dp) and the
// notifications of observations, on plgd-dev/go-coap v3 and pion/dtls v3.
// Its requests are served through a route table that other packages add
// routes to (Server.Handle). The sockets and DTLS sessions under it are
// package dtlsmux's; coapd binds sessions to endpoints and decides what
// they may do. It imports the registry, the ingest writer, the credential
// service and the LwM2M codecs, and never the store, the device manager
// or anything above them.
//
// # Two transports, one handler
//
// The plain CoAP server (Listen, Serve, Start) and the CoAP/DTLS server
// (ListenDTLS, ServeDTLS, StartDTLS) are go-coap's UDP and DTLS servers;
// both hand every message to the same handler on the same connection type,
// so the routes, the error mapping and the acknowledgement rules below are
// one implementation. A registration records the transport it came over
// (registry.Transport) and Dial goes back over it. Plain CoAP is off when
// the server is never started on it (`--coap-listen ""`): then devices can
// only talk DTLS.
//
// # DTLS and credentials
//
// DTLS 1.2 with pre-shared keys: the cipher suites nRF91 modems and Zephyr
// offer (TLS_PSK_WITH_AES_128_CCM_8, _CCM, _GCM_SHA256, _CBC_SHA256); with
// DTLSConfig.Certificate also X.509 (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
// _GCM_SHA256), client certificates verified against DTLSConfig.ClientCAs
// and bound to the endpoint named by their CN or a SAN that has an x509
// credential (matching its CN and fingerprint where set). Raw public keys
// (LwM2M's RPK mode) are not offered: pion/dtls does not implement them. The
// PSK identity a client presents is looked up in package credential; an
// unknown identity (answered unknown_psk_identity) or a wrong key fails
// the handshake. A failed handshake is reported with its reason
// (dtlsmux.HandshakeFailureReasons: unknown_identity, bad_psk,
// bad_certificate, timeout, no_cookie, protocol) to
// DTLSConfig.OnHandshakeFailure (the metric), logged and, when the client
// presented an identity, written to the audit log (device.refused), each
// at most once a minute per identity (or source), the log line counting
// the failures it stands for. A client that never returned its cookie may
// be spoofed: it is only counted.
// Each session is bound to the endpoint its identity is bound to: over it
// a device may register, update, de-register and send only as that
// endpoint, and notifications are taken only for its observations. An
// endpoint with credentials is refused over plain CoAP, and a registration
// made over DTLS is never touched over plain CoAP. Every refusal is 4.03
// and is written to the audit log (device.refused, at most once a minute
// per endpoint, identity and reason).
//
// The server gives every client that supports it an 8-byte Connection ID
// (RFC 9146): a device whose NAT mapping changed keeps its session, and
// the first message from its new address moves its registration there
// (registry.SetAddr). Sessions are therefore found by endpoint, never by
// address. A session bound to a live registration is kept while the
// registration lives, so a sleeping device needs no handshake per wake-up;
// other sessions close after IdleTimeout. A new session of an endpoint
// (the device rebooted and handshook again) closes its previous one.
//
// The server hands out session IDs and keeps the sessions for resumption
// (DTLSConfig.SessionCacheSize, SessionCacheTTL): a device that lost its
// session but kept its session cache (nRF91 modems, mbed TLS) comes back
// with an abbreviated handshake. A resumed session is bound like a new
// one: its PSK identity or certificate is looked up again, so a removed
// credential ends resumption too.
//
// # Parked sessions
//
// A session bound to a live registration that was idle for IdleTimeout is
// parked (dtlsmux.Conn.Park): muted, kept as its exported state, its
// association, goroutines and buffers released, the device not told. Its
// next datagram resumes the session with no handshake, and so does Dial
// when the server has a request for it. Parked sessions whose
// registration ended are dropped by a sweep every IdleTimeout (at least
// 1 s); their devices handshake again. A parked session costs about 1.5
// KB, registration included, against about 49 KB live
// (BenchmarkDTLSSessionMemory). The price is the CoAP deduplication
// window, as for plain CoAP below.
//
// The DTLS socket is read by dtlsmux's demultiplexer in front of pion: a
// ClientHello from the address of an established session (a rebooted
// device) starts a new session at once, and the old one keeps the address
// until the new handshake completes; the server closes the old session
// when the new one is bound to the endpoint.
//
// With DTLSConfig.SessionFile, Stop saves the sessions bound to endpoints,
// live and parked (pion's exported state, sealed under a key derived from
// the secret key), and ListenDTLS parks them again, so devices go on after
// a planned restart without a handshake. pion/dtls v3 restores
// state safely only if the original session sends nothing after the
// snapshot and the state is used once: writes are stopped before the
// snapshot (not even close_notify leaves) and the file is removed before
// it is used. A restored registration is found again by the device's next
// Update, Send (by its endpoint) or by its registration ID.
//
// HelloVerifyRequest cookies are always on, and handshakes are admitted
// within the caps of DTLSConfig (MaxUnverified, CookieTimeout,
// MaxHandshakes, MaxHandshakesPerSource; see package dtlsmux), so their
// memory and goroutines stay bounded under any flood
// (TestDTLSHandshakeFlood, BenchmarkDTLSHandshakeUnderFlood).
//
// # Routing and errors
//
// One go-coap handler serves every message. Requests are routed by method
// and path through the route table: New adds the LwM2M routes (POST rd,
// POST and DELETE rd/{id}, POST dp) with Server.Handle, and other
// packages add theirs the same way (firmware: a Block2 download by GET);
// a path no route has is answered 4.04, a path whose routes take other
// methods 4.05. A message carrying a response code is a notification and
// is routed by its token through the registry's token table. Route
// handlers return a Response or an error, and one function (codeFor) maps
// the error to the CoAP answer: 4.00 for a missing or invalid endpoint
// name or parameter and for a payload that fails to decode (with a short
// diagnostic payload), 4.03 for a Send from an address with no
// registration, 4.04 for an unknown registration ID, 4.12 for an LwM2M
// version the server does not serve (clients registering as 1.2 with a
// server that refused it step down), 4.15 for a content format the
// operation does not take, 5.00 for a failure of the server.
// Each refused request is logged once, with the attributes endpoint,
// remote_addr, path and code. go-coap's own error sink goes to slog.
//
// # Admission
//
// Every device message is admitted before any work is done on it
// (admission, AdmissionConfig): go-coap reads the socket on one goroutine
// and hands each connection's messages to a small queue, waiting when it
// is full, so one sender whose requests wait on the store would stop the
// server from reading anyone's datagrams. The server's hook takes each
// message on go-coap's reader without I/O and either queues it for the
// connection's own worker goroutine, within bounds per address and port,
// per host and in all, and within a Register budget per host, or refuses
// it at once: a request with 5.03 and a Max-Age, a notification with no
// answer, so that the device retransmits it. A retransmission of a message
// that is queued or being handled is dropped; one that arrives after the
// answer gets go-coap's cached answer.
//
// # Acknowledgement after commit
//
// A Send and a notification are decoded and handed to the ingest writer,
// and the handler waits until they are committed before it returns, so the
// ACK of a confirmable message (piggybacked for Send, empty for a
// notification) leaves only once the values are stored. A confirmable
// notification whose token belongs to no observation gets a Reset (RFC
// 7641 §3.6), which makes the device drop the observation; so does a
// non-confirmable one.
//
// A notification too large for one message arrives block-wise (Block2
// NUM=0 with more to come), which go-coap's block-wise layer refuses
// because no request of the server's is waiting for it. The server takes
// it first: it acknowledges the block, reads the observed resources in
// full (Server.SetReread, block-wise) and stores that as the notification,
// once per token and message ID (a retransmitted first block is
// acknowledged again, not read again). This one is acknowledged before
// its values are stored: if the read fails, the notification is lost and
// logged.
//
// # Shutdown
//
// Server.Shutdown (and Stop, with a 10 s grace) first stops taking
// messages: one arriving from then on is dropped unanswered, and the DTLS
// socket starts no handshake and resumes no parked session, so their
// devices retransmit to the restarted server. The messages already being
// handled finish: their values are committed and their ACKs written.
// Only then are the DTLS sessions saved (DTLSConfig.SessionFile) and every
// session, handshake and association closed, followed by the sockets. A
// value is therefore stored once when its device was told so; only one
// whose handler outlived the grace may be stored and not acknowledged,
// and then stored again when the device retransmits it. The handlers wait
// for the ingest writer whatever happens to their connection, so the log
// says "notification not stored" only for values that were not. The
// server tracks every DTLS session itself: go-coap keys its own by
// address and loses a session that replaced another from the same
// address (a rebooted device), which then kept Stop waiting for ever.
//
// # Connections and memory
//
// go-coap keeps one connection object per remote address with its own
// goroutine, deduplication cache and block-wise state: about 11-12 KB each
// (BenchmarkMemoryPerDevice, runtime.ReadMemStats before and after
// registering 10,000 devices, on a bare go-coap server and on this one
// alike). Holding one per registered device would cost more than the
// registration itself, so the server does not: connections are closed by
// go-coap's inactivity monitor after Config.IdleTimeout without traffic
// (kept while a confirmable exchange of the server is pending or a message
// of the device is being handled), and the per-device state that must last
// (address, lifetime, objects, observation tokens) lives in the registry,
// keyed by registration ID, endpoint name and token, never by address
// alone: about 1.7 KB per registered device once its connection is reaped.
// Dial returns a connection to a device's address from the server's own
// socket, creating one when the old one was reaped, for the operations of
// package devmgmt; notifications are routed by token whether or not the
// connection they arrive on made the observation.
//
// The price of reaping is the deduplication window: a retransmission
// arriving after its connection was reaped (later than IdleTimeout after
// the original) is handled again, so a notification may be stored twice
// and a Register replaced by an identical one. The default IdleTimeout
// (30 s) covers the first four retransmissions of RFC 7252's default
// transmission parameters. Devices that talk more often than IdleTimeout
// keep their connection, so the memory of a fleet that reports every few
// seconds is that of its live connections.
//
// The socket asks the kernel for 4 MiB buffers: a fleet registering at
// once after an outage would otherwise overflow the default ~200 KiB and
// pay a retransmission timeout per dropped datagram.
//
// Only the Send operation over plain CoAP is attributed to a device by its
// source address (it names no registration; nothing better exists there):
// the registration last made or updated from that address, in memory or,
// after a restart, in the store (registry.LookupAddr). Over DTLS it is
// attributed by the session's identity.
package coapd
