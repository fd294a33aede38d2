// Package ingest commits device data to the store in batches: values from
// notifications and Sends of every device, and what registrations change
// (Register, Update, De-register, the observations the server makes), are
// collected by a single writer goroutine and written in one transaction per
// batch (store.IngestBatch), so that thousands of small reports per second
// cost tens of transactions, not thousands. An item received over plain
// CoAP can carry the check that its endpoint has no credentials
// (Item.NoCredential), made in the batch's transaction instead of by a
// query of its own.
//
// A caller hands its values to Writer.Write and is blocked until the batch
// holding them is committed (or failed). This is what lets the CoAP server
// acknowledge a confirmable notification or Send only after its data is
// durable: the device's retransmission covers anything lost before that.
//
// A batch is closed when it holds Config.MaxValues values or when
// Config.MaxDelay has passed since its first item arrived, whichever comes
// first; while a batch commits, the next one fills. If a batch fails, its
// items are committed one by one so that one bad item (say, a value of an
// endpoint deleted meanwhile) fails only its own caller.
//
// Writer is safe for concurrent use. Start it once; Close stops accepting
// items, commits what was accepted and returns.
//
// # Every committed value, once
//
// Writer.OnCommit registers a hook that gets each commit (a Commit: the
// items stored, every value with its endpoint) after the transaction, once
// and in commit order, on a goroutine of its own, before the callers of
// Write are answered. A hook's queue is bounded and the writer waits for
// room, so a slow hook slows ingest down, but never by more than
// Config.HookWait at a time: a hook that is still full then falls behind
// and is told how many commits it missed when it has room again. This is
// the reliable feed of what was stored, where the firmware update state
// and webhooks listen; the events bus (package events) serves live views
// and drops for readers that fall behind. Hooks see what goes through the
// Writer; in the server, every value a device reports and every change of
// a registration does.
//
// The package sits just above store, which is all of the server it
// imports; the parts that write through it (coapd, registry, devmgmt) and
// that listen to it are above it.
package ingest
