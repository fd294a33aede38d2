// Package jobs runs durable background work: a small job engine (Engine)
// with kinds registered by the packages that own them, and on it the
// durable queue of device operations (Queue): an operator's write or
// command waits in the database for its device, goes out while the device
// is awake, and is never lost.
//
// # The engine, and why it is our own
//
// A job is a row of the store's job table (store.Job): a kind, arguments
// (JSON), a due time, attempts and a lock. A package registers its kinds
// with Engine.Register (a Handler, attempts, a timeout, a backoff) before
// Start; Insert (or InsertTx in the caller's transaction, so that a job
// commits with the rows it is about) adds jobs, due now or at a time of
// their own, and a key makes a job unique among the waiting jobs of its
// kind ("one delivery reminder per endpoint"). Each node's engine claims
// due jobs of its kinds for its workers (EngineConfig.Workers at once):
// on PostgreSQL with UPDATE … FOR UPDATE SKIP LOCKED, so that any number
// of nodes claim safely; on SQLite through the store's single write
// connection. A failed attempt is retried after the kind's backoff until
// its last attempt; a job that ends, well or for good, is deleted (a kind
// that needs a record of failures keeps it in its own tables, as
// operations do). A job that runs longer than its kind's timeout plus a
// minute was abandoned by a node that died, and any node runs it again.
//
// Jobs start when they are inserted, not at the next poll: the inserting
// node's workers are told at once (Kick), and on PostgreSQL every
// transaction that inserts jobs notifies a channel (store.JobChannel) that
// every engine LISTENs on, so that a job committed on one node is claimed
// within milliseconds on any node (TestEngineTwoNodes, BENCHMARKS.md). The
// claim loop sleeps until the next job is due, polling only as a safety
// net (EngineConfig.PollInterval) for a listener that lost its connection.
//
// The engine replaces River (github.com/riverqueue/river), which ran here
// beside the operation rows as a reminder. We chose a claim loop of our
// own over River with its pgx driver because: River's pgx driver needs a
// pgx pool and pgx transactions, while the store is database/sql over
// pgx's stdlib, so a job could not commit in the store's transaction
// without a second pool and a second transaction API; River brought its
// own migrator and schema version beside the store's, where now the job
// table is one more numbered migration and `flownexus migrate` and `serve`
// report one schema version; its database/sql driver linked lib/pq beside
// pgx and ran poll-only on PostgreSQL (a queued operation for an awake
// device waited ~1 s); on SQLite its driver is marked early-testing and
// its leader election and maintenance queries share the single write
// connection with device data. What River did that we need (kinds,
// retries with backoff, scheduled and unique jobs, safe claims on several
// nodes, notifications) is about 700 lines of code here (engine.go and
// the store's job.go), tested on both database engines.
// Migration 00011 drops River's tables from databases of earlier versions;
// 00010 carried their pending reminders over.
//
// # Operations: storage
//
// An operation is a row of endpoint_operation (store.Operation) with
// status QUEUED → SENDING → CONFIRMED | FAILED, or CANCELLED when an
// operator cancels it while QUEUED; its arguments are a devmgmt.Operation,
// checked by devmgmt.Manager.Check when it is queued (the same check, and
// error text, as when it runs now) and stored typed (DecodeOperation).
// Enqueue writes the row and a job of kind KindDeliver for its endpoint in
// one transaction. The operation rows are the queue; a delivery job is the
// durable reminder that an endpoint's queue needs a look, and carries no
// state of its own, so a job that runs twice, or finds nothing to do, does
// no harm.
//
// # Delivery rules
//
// An endpoint's QUEUED and SENDING operations form its queue, in the
// order they were queued. Only the head is ever claimed (store
// ClaimOperation), and never while another operation of the endpoint is
// SENDING, so operations reach a device one at a time and in order, even
// with several workers or nodes; devices never wait for each other (each
// delivery job serves one device, EngineConfig.Workers run at once).
//
//   - A device that is registered and not in queue mode is reachable: its
//     operations are sent at once (the job inserted with the operation).
//     An operation is sent with devmgmt.Manager.Do, like one run now.
//   - A queue-mode device is reachable for Config.ReceiveWindow after it
//     last talked to the server. When it talks (Register, Update, Send or a
//     notification: Wake, subscribed to coapd's Activity), a delivery job is
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
// Config.Events (topic events.TopicOperation, data events.OperationEvent).
//
// # Shutdown
//
// Queue.Stop ends the handling of wake-ups; Engine.Stop drains: no new job
// starts, running deliveries finish their round (they need the CoAP
// server, so stop the engine before it). Queued operations stay in the
// database and are delivered after the next start.
package jobs
