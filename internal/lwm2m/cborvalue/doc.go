// Package cborvalue encodes and decodes single resource values in the
// application/cbor content format (content-format 60, LwM2M 1.1 Core
// §7.4.6): the payload is one CBOR data item holding the value of one
// resource or resource instance.
//
// Integers are CBOR integers, floats CBOR floats, booleans CBOR true and
// false, strings and corelnks text strings, opaque values byte strings,
// objlnk the text "object:instance" and time epoch seconds, tagged with tag
// 1 on output. CBOR coding is done by github.com/fxamacker/cbor/v2 with
// limits fit for device input: no indefinite lengths, little nesting, short
// arrays and maps.
//
// The package is pure and safe for concurrent use.
package cborvalue
