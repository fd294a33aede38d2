// Package dtlsmux is the socket and DTLS plumbing under the device-facing
// CoAP server: UDP sockets sized for fleets and the lifecycle of a server
// loop on them (ListenUDP, Socket), and a DTLS 1.2 listener of our own in
// front of pion/dtls v3 (Listener) that go-coap's DTLS server accepts its
// sessions from. It knows datagrams, associations and sessions; what a
// session may do is its user's business.
//
// # What it owns
//
//   - The demultiplexer: one goroutine reads the DTLS socket and routes
//     each datagram to an association (one DTLS session with one peer, in
//     handshake or established) by Connection ID (RFC 9146; the listener
//     gives every client that supports it an 8-byte CID) or by source
//     address. A ClientHello (epoch 0) from the address of an established
//     session starts a new session at once, as RFC 6347 §4.2.8 allows,
//     instead of feeding the stale one until it times out (pion's own
//     listener does that: a rebooted device was locked out for the whole
//     idle timeout); the old session keeps the address until the new
//     handshake completes, so a spoofed ClientHello takes nothing away. A
//     ClientHello's record-layer version is taken as any {254, x}, as RFC
//     5246 Appendix E.1 asks of servers (mbed TLS 2.28 sends {254, 0}).
//   - Handshake admission. HelloVerifyRequest cookies are always on, but
//     pion's cookie is random per handshake, so each ClientHello costs an
//     association and a pion session (about 30 KiB, four goroutines)
//     before the client has shown it receives at its address. The
//     demultiplexer opens associations only for ClientHellos, keeps at
//     most Config.MaxUnverified waiting for their cookie (displacing the
//     oldest, so a spoofed flood must send MaxUnverified ClientHellos
//     within a device's round trip to keep it out) and ends each after
//     Config.CookieTimeout. A returned cookie takes a slot of the
//     handshake gate, MaxHandshakes in total and MaxHandshakesPerSource
//     per source (SourceKey: an IPv4 address or an IPv6 /64), or is
//     dropped until one frees (the device retransmits it). Handshakes that
//     have not ended, displaced ones included, are capped at MaxHandshakes
//     plus twice MaxUnverified, so their memory and goroutines stay bounded
//     under any flood.
//   - Credentials at the handshake, through Config.PSK only: PSK suites
//     (CCM_8, CCM, GCM, CBC) and, with Config.Certificate, ECDHE-ECDSA with
//     verified client certificates. pion answers an unknown PSK identity
//     with internal_error; the listener turns that plaintext alert into
//     unknown_psk_identity (RFC 4279 §2) for the association whose
//     identity Config.PSK did not know (ErrUnknownIdentity).
//   - Failed handshakes, classified (HandshakeFailureReasons) from what the
//     demultiplexer saw of them and pion's error, and reported to
//     Config.OnFailure. A wrong key for a known identity shows only as a
//     Finished the server cannot decrypt, which pion drops: it is reported
//     as bad_psk when the handshake times out.
//   - Session resumption (RFC 5246 abbreviated handshake) from a cache of
//     the sessions it handed out, bounded in size and age.
//   - Parked sessions. Conn.Park mutes an idle session (it sends nothing
//     more, not even close_notify), exports its state (pion's State: keys,
//     record counters, the replay cut-off, the Connection IDs; about 600
//     bytes) and releases its association, goroutines and buffers; the
//     peer is not told. Its next datagram, by Connection ID or from its
//     address, or Listener.Unpark, resumes it on a new association with
//     no handshake; a ClientHello from its address is a new handshake, as
//     for a live session, and the parked one keeps the address until that
//     handshake completes. Each state is resumed at most once: unparking
//     removes it first. Listener.AddParked and Parked, with Quiesce (no
//     write leaves any session from then on, nothing is parked or
//     resumed), are what saving sessions across a restart is built on:
//     pion/dtls v3 restores a state safely only if the original session
//     sends nothing after the snapshot and the state is used once.
//   - Shutdown steps: Drain (no new association, no resumption: those
//     datagrams are dropped and their devices retransmit them to the
//     restarted server), then CloseAll (every association, whatever its
//     state, so no session is left reading a socket) and Close.
//
// Sessions are named by a string their user gives when parking them (the
// CoAP server uses the endpoint name the session is bound to); a
// Connection ID moves a session across addresses, so users key sessions
// by that name, never by address.
//
// # What it must not import
//
// It sits below the LwM2M server and knows nothing of LwM2M, endpoints'
// registrations, credentials' storage, the database or metrics: it must
// not import coapd, registry, credential, store, ingest, devmgmt or any
// lwm2m package, nor anything above them. Its dependencies are pion/dtls
// and, for the listener interface go-coap's DTLS server accepts from,
// go-coap's net package. Credentials come in through Config.PSK and
// failures go out through Config.OnFailure; logging, auditing and
// counting them is the caller's.
package dtlsmux
