// Package credential manages the DTLS credentials bound to endpoints: a
// pre-shared key (PSK identity and key) or an X.509 certificate binding
// (common name and/or SHA-256 fingerprint). It is the one place that sees
// PSK keys in clear: keys are sealed with AES-256-GCM under a key derived
// from the server's secret key (HKDF-SHA256) before they reach the store,
// and opened only for the DTLS handshake (LookupPSK). List never returns
// key material.
//
// The CLI, the REST API and the DTLS server share one Service. Adding and
// removing a credential appends an audit entry; so does a device the DTLS
// server refused for claiming an endpoint its credential is not bound to
// (AuditRefusal).
//
// PSK files (CSV: endpoint,psk-identity,psk-hex-key) carry many PSKs at
// once: ImportPSK adds a whole file in one transaction or nothing, and
// reports every bad line; the simulator reads the same files.
//
// The database records the Fingerprint of the secret key its PSK keys are
// sealed with (a short HMAC of a fixed label under a key derived from the
// secret; it does not reveal the key). CheckSecretKey, which the server
// and the commands that add credentials run at start, records the first
// key used and refuses another one (*KeyMismatchError, naming both
// fingerprints) while PSK keys are sealed with the recorded key; a
// database from before fingerprints is checked by opening its PSK keys.
// Add and ImportPSK also refuse to seal PSKs while the database records
// another key's fingerprint, so a server left running with an old key
// cannot mix keys. The ways out of a mismatch: configure the recorded
// key; Rotate, which re-seals every PSK key from the old key to the
// configured one in one transaction (all or nothing) and records the new
// fingerprint; or, when the old key is lost, ResetSecretKey, which drops
// the PSK credentials the configured key cannot open. ResealSessionFile
// moves the saved DTLS sessions to the new key as well.
package credential
