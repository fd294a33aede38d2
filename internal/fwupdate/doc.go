// Package fwupdate drives firmware updates of LwM2M devices through the
// Firmware Update object (5): one durable state machine per update, at
// most one active update per endpoint, stored in the firmware_update
// table (store.FirmwareUpdate) and advanced by jobs of kind KindStep on
// the job engine, with every request to the device going through the
// durable operation queue (jobs.Queue), so that an update survives server
// restarts and waits for sleeping (queue-mode) devices. Campaigns roll an
// image out to many endpoints as such updates (campaign.go).
//
// It owns the meaning of an update's State, Method, Protocol and Detail.
// It imports store, registry, devmgmt, ingest, events and jobs, and must
// not import api, app, cli, firmware or simulator: images are store rows
// (store.Firmware) and files <Config.FirmwareDir>/<Filename>, served by
// whoever serves them at the URL bases in Config.Bases.
//
// # States
//
//	pending      reading the device's Protocol Support (/5/0/8) and Delivery
//	             Method (/5/0/9) with a queued Read of /5/0, unless the
//	             options fix method and protocol
//	downloading  pull: Write /5/0/1 = <base><Filename> queued; push: the
//	             package written to /5/0/0; waiting for State (/5/0/3) = 2
//	updating     Execute /5/0/2 queued; waiting for the device to come back
//	succeeded    the device came back running the image's version
//	failed       Error says why; ResultCode keeps the Update Result
//	cancelled    by Cancel
//
// Observe of /5/0/3 and /5/0/5 is queued on entering downloading, unless
// the device has observations of them already (the default auto-observe
// policy makes them); the update cancels the observations it made when it
// ends.
//
// # Deciding
//
// A step (the KindStep job) gathers what is known — the update, the
// operations it queued (by role), the latest values of /5/0/x and /3/0/3
// (stored notifications, and the answers of its own reads), the device's
// registration — and hands it to decide, a pure function, which returns
// the update as it is to be stored and the operations to queue. A step is
// idempotent: it looks at what is known and advances; one that finds
// nothing new does nothing. Values count for a state only when received
// after the state began (StateAt).
//
//   - Any state but pending: an Update Result of 2..9 fails the update with
//     its meaning (ResultMeaning): not enough flash, out of RAM, connection
//     lost, integrity check failure, unsupported package type, invalid URI,
//     update failed, unsupported protocol.
//   - pending → downloading: the method is the option's, else push when the
//     device takes only push (/5/0/9 = 1), else pull. The protocol is the
//     option's, else the first the device supports (/5/0/8) that the server
//     offers (Bases), in the order coap, coaps, https, http for a device
//     registered over plain CoAP and coaps, https, coap, http over DTLS; a
//     device without /5/0/8 gets its registration's own (coap or coaps),
//     else https. A device that supports none gets push when it takes both,
//     else the update fails saying so.
//   - downloading → updating: State 2 (Downloaded) after the URI write was
//     confirmed (or the push done) queues Execute /5/0/2.
//   - updating → succeeded: the device is back — it registered again, or
//     reported Update Result 1, after the Execute — and its Firmware
//     Version (/3/0/3, from a notification or a Read queued once it is
//     back) equals the image's version compared leniently (SameVersion). A
//     version that differs, read after the device registered again, fails
//     the update. A device that reported Result 1 but has not registered
//     again is taken to be rebooting: its version is read once it
//     registers, or after Config.ReadInterval.
//   - An operation the machine needs that ends FAILED (the queue's own
//     retries used up, or refused by the device) fails the update, with the
//     operation's error: the write of the Package URI, and the Execute
//     unless the device came back updated anyway (a device may reboot
//     before it answers). A failed read of /5/0 leaves the device's options
//     unknown (the defaults apply), a failed read of /3/0/3 is made again,
//     and a failed observe is ignored: the reads cover it.
//   - Timeouts: pending and downloading must each end within
//     Config.DownloadTimeout (default 1 h) of their start, updating within
//     Config.UpdateTimeout (default 15 min); the wait for a sleeping
//     device's wake counts. Deadline holds the current state's.
//   - While downloading or updating with nothing heard of the device's
//     state for Config.ReadInterval, a Read of /5/0 is queued (the device's
//     notifications may be held back by pmin, or not observed at all).
//
// # Push
//
// The package is never stored in the operation queue: a step writes it to
// /5/0/0 itself, with devmgmt.Manager.Do (Block1 in the block size the
// CoAP connection negotiates), when the device is reachable as the queue
// sees it (jobs.Queue.Reachable: registered, and inside its receive window
// in queue mode), bounded by Config.PushTimeout. A push cut short (no
// answer, connection lost, 4.08, 5.xx) is tried again at the device's next
// wake, Config.MaxPushFailures times at most; a refusal (another 4.xx)
// fails the update. The file is checked against the image's size and
// SHA-256 before it is sent. Cancel cuts a push in progress on its node
// short.
//
// # What steps an update
//
// A step job is inserted with the update (Start, in one transaction), and
// again by every step of an active update, due after Config.PollInterval
// or at the state's deadline, whichever is first: a safety net. Steps run
// at once (a job keyed by the update's id, due now) when a value of
// /5/0/3, /5/0/5 or /3/0/3 of the endpoint is committed (OnCommit, the
// ingest writer's reliable feed; after missed commits every active update
// is stepped), when the device registers or updates its registration
// (OnRegistration), and when one of its queued operations ends (the
// operation events on the bus; lossy, so the step always reads the
// operations from the store). The active updates are known in memory by
// endpoint, loaded at Watch and every PollInterval, when every active
// update is stepped too (so that updates started by another process, such
// as the CLI, are seen, and one whose job was lost goes on; the first step
// job of an update started elsewhere runs at the engine's next poll,
// within jobs.DefaultPollInterval on SQLite, and at once on PostgreSQL).
//
// One step of an update runs at a time on a node; every write of the
// update is a compare-and-set on its revision (store.FirmwareUpdate.Rev),
// so a step that lost a race with a cancel or with a step on another node
// writes nothing and steps again.
//
// # Cancel
//
// Cancel cancels the update's operations still QUEUED, queues a Write of
// an empty Package URI when anything reached the device (resetting its
// update state machine), cancels the observations the update made, and
// marks it cancelled. A finished update (failed, succeeded) also has its
// queued operations cancelled and its observations cancelled.
//
// # Campaigns
//
// A campaign (store.FirmwareCampaign, table firmware_campaign) is an image
// and a set of endpoints fixed when it is made (CreateCampaign): a list,
// or every endpoint whose registration has object 5 and that does not run
// the image's version already, narrowed by CampaignFilter (the firmware
// version it last reported). Each endpoint is a campaign device (table
// firmware_campaign_device): waiting → running (its update, started with
// Start as any other) → succeeded, failed or cancelled. A job of kind
// KindCampaign, keyed by the campaign, ticks it: it records the outcome
// of the updates that ended (a failed one is waiting again after
// RetryDelay while MaxRetries allow), starts waiting devices while fewer
// than Concurrency run and the start rate allows (RatePerMinute: one start
// each minute/rate, a second's worth at most at once, kept in
// NextStartAt), finishes the campaign when no device waits or runs, and
// schedules the next tick (the next start, or Config.PollInterval). An
// update started by a campaign (store.FirmwareUpdate.CampaignID) ticks it
// when it ends, so a finished device's slot is filled at once. Everything
// is in the database: a restart resumes a campaign where it was. Pause
// stops the starts (running updates go on), Resume starts them again,
// Cancel cancels the waiting devices and the active updates the campaign
// started. A device that cannot be started (an active update of its own,
// object 5 gone) counts as a failed attempt.
//
// One tick of a campaign runs at a time on a node. Across nodes a device
// is claimed (waiting → running, a compare-and-set) before its update is
// started, so no two ticks start the same device, and the campaign's row
// is written only while it is running or paused, so a cancel is never
// undone; two nodes ticking at the same moment may exceed the cap by the
// starts of one tick.
//
// # Events and history
//
// Every state change is published on Config.Events (events.TopicFirmware,
// events.FirmwareEvent) and recorded in the device's history as an event
// of kind "firmware.<state>" (GET /api/v1/endpoints/{ep}/events).
package fwupdate
