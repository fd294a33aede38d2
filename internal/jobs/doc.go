// Package jobs is the durable queue of device operations and the workers
// that deliver them: an operator's write or command waits in the database
// for its device, goes out while the device is awake, and is never lost.
//
// # Storage
//
// An operation is a row of endpoint_operation (store.Operation) with
// status QUEUED → SENDING → CONFIRMED | FAILED, or CANCELLED when an
// operator cancels it while QUEUED. Enqueue writes the row and a River job
// that delivers it in one transaction of the store: River
// (github.com/riverqueue/river) runs on the store's own write pool, with
// its SQLite driver by default and its database/sql driver on PostgreSQL
// (the store is built on database/sql, so both drivers take the store's
// *sql.Tx). River's tables are created and updated by Migrate, with River's
// own migrator, next to the store's migrations. The operation rows are the
// queue; a River job ("deliver_operations", one endpoint) is the durable
// reminder that an endpoint's queue needs a look, and carries no state of
// its own, so a job that runs twice, or finds nothing to do, does no harm.
//
// # Delivery rules
//
// An endpoint's QUEUED and SENDING operations form its queue, in the
// order they were queued. Only the head is ever claimed (store
// ClaimOperation), and never while another operation of the endpoint is
// SENDING, so operations reach a device one at a time and in order, even
// with several workers or nodes; devices never wait for each other (each
// delivery job serves one device, Config.Workers run at once).
//
//   - A device that is registered and not in queue mode is reachable: its
//     operations are sent at once (the job inserted with the operation).
//   - A queue-mode device is reachable for Config.ReceiveWindow after it
//     last talked to the server. When it talks (Register, Update, Send or a
//     notification: Wake, hooked to coapd's OnActivity), a delivery job is
//     queued for it if it has operations pending, and sends them, up to
//     Config.PerRound per job, while the window lasts.
//   - An offline device's operations wait for its next Register.
//
// # Attempts and failures
//
// Each send is an attempt, bounded by Config.AttemptTimeout. What its
// outcome does:
//
//	outcome                                   attempt  operation
//	success (2.xx)                            counts   CONFIRMED, the decoded answer kept
//	no answer (timeout), transport error      counts   QUEUED until the next wake; FAILED at the last attempt
//	4.08 Request Entity Incomplete            counts   retried like a timeout (a block-wise transfer was cut)
//	4.09 Conflict                             counts   retried (the resource's state may change)
//	4.29 Too Many Requests                    counts   retried (the device is busy)
//	5.00, 5.02, 5.03, 5.04 and other 5.xx     counts   retried (a fault on the device that may pass)
//	4.00 Bad Request, 4.02 Bad Option         counts   FAILED at once: the request does not suit the device
//	4.01 Unauthorized, 4.03 Forbidden         counts   FAILED at once: access control denies it
//	4.04 Not Found                            counts   FAILED at once: the device lacks the object or path
//	4.05 Method Not Allowed                   counts   FAILED at once: e.g. a write to a read-only resource
//	4.06, 4.15 (format not acceptable)        counts   FAILED at once: the device will not take this format
//	4.12, 4.13, 4.22 and other 4.xx           counts   FAILED at once: RFC 7252 says not to repeat a 4.xx unchanged
//	5.01 Not Implemented, 5.05                counts   FAILED at once: the device cannot do it at all
//	an answer that cannot be decoded          counts   FAILED at once: the same answer would come again
//	a request the device cannot take          no       FAILED at once, never sent (e.g. nothing observed to cancel)
//	an operation the device's LwM2M version   no       FAILED at once, never sent (e.g. Read-Composite to a
//	lacks (devmgmt.ErrVersion)                         device registered with LwM2M 1.0)
//	the device went offline meanwhile         no       stays QUEUED, nothing was sent
//	the server stopped during the attempt     counts   QUEUED (FAILED at the last attempt), reason "interrupted"
//
// A retried operation stays at the head of its device's queue: the
// operations behind it wait too, so order is kept. Its next attempt waits
// for the device's next wake (it is claimed only when the device talked
// after its last attempt). An operation has Config.MaxAttempts attempts
// (3 by default): the third failed attempt makes it FAILED. The result
// code (the device's CoAP code) and the error text of the last failed
// attempt are kept on the operation; a success clears them.
//
// An operation left SENDING by a process that died is taken as an
// interrupted attempt once it has been SENDING for longer than an attempt
// can last (Config.AttemptTimeout plus a minute), at the next delivery to
// its device.
//
// # Events
//
// Every status change is published on the events.Bus given in
// Config.Events (topic TopicOperation, data OperationEvent).
//
// # Shutdown
//
// Stop drains: no new delivery starts, running deliveries finish their
// round (they need the CoAP server, so stop the workers before it). Queued
// operations stay in the database and are delivered after the next start.
package jobs
