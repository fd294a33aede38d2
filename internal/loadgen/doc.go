// Package loadgen measures how fast a CoAP/UDP LwM2M server takes a fleet
// that arrives at once, and provides the bare server to compare it with.
//
// Run drives Config.Devices devices, each on its own UDP socket (one
// source port per device, as real fleets arrive), each with at most one
// confirmable request in flight, retransmitted as RFC 7252 says
// (ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 4) and with
// unique message IDs and tokens per device. Three phases follow each other:
//
//  1. every device registers at once (LwM2M 1.1, ep=urn:imei:…, a
//     link-format payload of twelve object instances including /3303/0
//     and /3304/0);
//  2. with Config.Send, every registered device sends confirmable
//     SenML-CBOR Sends to /dp back to back for that long;
//  3. with Config.Deregister, every registered device de-registers at
//     once.
//
// Each phase reports its duration, the rate of successful requests,
// latency percentiles (from the first transmission to the answer) and
// failures by response code or "timeout". With Config.FloodRate, one more
// socket sends that many non-confirmable Registers per second, each with
// a new endpoint name, for Config.FloodFor from the start of phase 1; it
// never waits for answers. The devices start registering when half of
// FloodFor has passed, so that they meet whatever backlog the flood built
// up, and the report keeps their registration figures apart from it.
//
// The devices answer what the server asks them like a minimal real
// device: an Observe (or read) of a sensor value (/3303/0/5700,
// /3304/0/5700) or of the firmware update state and result (/5/0/3,
// /5/0/5) gets 2.05 Content with the value in the format the server
// accepts (and the Observe option when it observes), a Write-Attributes
// of one of them (PUT with a query and no payload) 2.04 Changed, anything
// else 4.04 Not Found. They never notify afterwards, so the server's
// auto-observe costs what it costs and then stays quiet. Duplicate
// confirmable requests get the same answer again. A request of the
// devices' own answered 5.03 Service Unavailable is sent again after the
// answer's Max-Age, up to five times, as devices do when a server sheds
// load (ServerRequests.Deferred counts these).
//
// Echo is the baseline: a bare go-coap v3 server that answers Register
// (2.01 with a Location-Path), Update (2.04), De-register (2.02) and Send
// (2.04) at once and stores nothing. Running the same load against it in
// the same run gives the ceiling of the machine and of go-coap.
package loadgen
