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
// Changing the secret key makes every stored PSK key unreadable
// (ErrSealed): re-add the credentials after rotating the secret.
package credential
