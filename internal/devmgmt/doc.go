// Package devmgmt performs LwM2M device-management and information-reporting
// operations on registered devices: Read, Discover, Write (replace and
// partial update), Write-Attributes, Execute, Create, Delete,
// Read-Composite, Write-Composite, Observe and Cancel (single and
// composite).
//
// # One operation type, one entry point
//
// An Operation is one such operation as a value: its Kind, paths, values,
// write mode, content format, attributes and execute arguments.
// Operation.Check is its one validation (shape, and values converted to
// their resources' types); Manager.Do checks and performs it. Every caller
// above the CoAP server goes through them: the REST API, run now or queued
// (the job queue checks an operation when it is queued and performs it
// with Do when the device wakes), and firmware updates and the dashboard
// to come, so that an operation is parsed into this type once, by its
// caller, and refused with the same error text wherever it comes from.
//
// # Addressing and transport
//
// Devices are named by endpoint name. Do looks the live registration up in
// the registry once (ErrOffline when there is none), opens a CoAP exchange
// to the registration's address through the Dial function the CoAP server
// provides (a connection from the server's own socket, so the device sees
// the server's port; see package coapd) under the caller's ctx, so that
// its deadline also bounds resuming a parked DTLS session, and sends one
// confirmable request. Retransmission follows RFC 7252 (go-coap retransmits
// confirmable messages with exponential back-off) and large payloads move
// block-wise (Block1 for writes, Block2 for reads) transparently. Requests
// to the client's alternate root path ("/lwm2m/3/0") are made when the
// client registered one.
//
// Operations are sent when called, whatever the registration's queue mode:
// waiting for a sleeping device to wake is the business of the durable job
// queue, which calls the Manager when the device next talks (see
// coapd.Server.Subscribe).
//
// # Timeouts and errors
//
// Every operation runs under ctx; when ctx has no deadline, Config.Timeout
// applies. An operation Check refuses gives an error matching ErrInvalid,
// before anything is sent. A device that does not answer in time gives an error matching
// ErrTimeout (and context.DeadlineExceeded). A device that answers with a
// CoAP error code gives a *CoAPError keeping the code and the diagnostic
// payload: an error answer is never a success. A response in a content
// format the server cannot decode, or that fails to decode, gives an error
// matching ErrBadResponse.
//
// # Content formats
//
// Requests ask for, and write in, the format lwm2m.ReadFormat,
// lwm2m.WriteFormat and lwm2m.CompositeFormat choose from the client's
// LwM2M version and announced formats, or the one Operation.Format names. Responses are decoded by their own
// Content-Format with Decode, typed by Config.Types.
//
// # Observations
//
// An observe chooses the token, records the observation in the registry's
// token table and then sends the request; notifications are routed by
// token by the CoAP server, which decodes and stores them, not by a
// per-connection observation of the CoAP library. An observation therefore
// outlives the idle connection it was made on. The value in the Observe
// response is stored like a notification. A cancel-observe sends the
// Observe deregistration (Observe: 1) with the same token and forgets the token
// whatever the device answers. Each observation records its origin (the
// auto-observe policy, or the API caller or queued operation WithOrigin
// names) and the attributes written before it, for the API to show.
//
// # Auto-observe policy
//
// AutoObserve applies a Policy to a device after each Register: a list
// of paths (or composite groups of paths) to observe, and notification
// attributes (pmin, pmax, ...) written with Write-Attributes before each
// Observe. The default observes the temperature and humidity values and
// the firmware update state and result with pmin 60 s, so that a device in
// queue mode whose values change all the time wakes to notify at most once
// a minute. Only paths whose object and instance the device registered
// are observed. Requests go one at a time and the first must be answered
// before the next is sent, so a Register from a forged source address
// draws at most one confirmable request to that address.
//
// # LwM2M versions
//
// Operations LwM2M 1.0 lacks (composite operations, resource-instance
// paths) are refused with ErrVersion, before anything is sent, to a
// device that registered with 1.0.
package devmgmt
