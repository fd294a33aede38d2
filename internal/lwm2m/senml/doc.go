// Package senml encodes and decodes LwM2M data in the SenML formats of
// LwM2M 1.1: SenML-JSON (content format 110, RFC 8428 on encoding/json) and
// SenML-CBOR (content format 112, RFC 8428 §6 with integer labels, on
// github.com/fxamacker/cbor/v2). Both formats share one data model and one
// set of rules, described here once.
//
// # Names
//
// The name of a record is the current base name (bn, carried forward from
// the last record that set it) followed by the record's name (n). A base name
// must be an absolute LwM2M path ("/3/0/", "/3/0/7", "/"); when it does not
// end in "/", a non-empty n must start with "/" so that IDs never run into
// each other ("/3/0/1" + "2" is refused, not read as "/3/0/12"). A name that
// does not start with "/" (no bn, relative n) is taken relative to the base
// path passed to the decoder, and an empty name is the base path itself.
// Every resolved name must be a resource or resource-instance path (depth 3
// or 4) at or below the base path; pass lwm2m.Root as base for Send, Read-
// and Observe-Composite payloads, whose names are full paths.
//
// # Values
//
// Each record carries exactly one of v (number), vs (string), vb (boolean),
// vd (opaque data: base64url in JSON, accepted with or without padding and in
// the standard alphabet too; a byte string in CBOR) and vlo (objlnk "3:0",
// the LwM2M 1.1 label, a text key in CBOR). A base value (bv) is added to v.
// Sums (s, bs), units (u, bu), update time (ut) and unknown labels are
// ignored; an unknown label ending in "_" (RFC 8428 must-understand) is an
// error, as is a base version (bver) above 10.
//
// The decoder types values with the TypeFunc: numbers become integer,
// unsigned, float or time when exact in that type, vs becomes string or
// corelnk, and a field that does not fit the resource's type (vs for an
// integer, v for a boolean, 1.5 for an integer, -1 for an unsigned) is an
// error. For paths the TypeFunc does not know (or reports as TypeNone), a
// number that is an exact integer becomes integer (unsigned above
// math.MaxInt64), any other number a float, and vs a string.
//
// # Time
//
// A record's time is the base time (bt) plus its time (t); records with
// neither keep a zero Record.Time. Following RFC 8428, a resolved time below
// 2^28 is relative to now (DecodeOptions.Now), so "t":-5 means five seconds
// ago and "t":0 means now; larger values are seconds since the Unix epoch.
// Fractions of a second are kept to the microsecond. The encoder writes t as
// absolute seconds (a float only when the time has a sub-second part) and
// refuses times before 2^28 (1978), which a reader would take as relative.
//
// # Errors
//
// Decoders return a *lwm2m.DecodeError for every malformed input. For SenML
// its Offset is the index of the offending record in the pack (not a byte
// offset), or -1 when the document as a whole is malformed (bad JSON or CBOR
// syntax, not an array, over a limit); Field names the SenML label at fault
// ("bn", "n", "v", "t", ...).
//
// A label repeated within one JSON record follows encoding/json: the last
// occurrence counts. In CBOR a repeated map key is an error. The CBOR decoder
// accepts at most 65536 records of at most 32 labels, nested no deeper than
// a value inside a record, and no tags.
//
// Records in a time series (one path several times) and multiple-instance
// resources are returned in document order. All functions are safe for
// concurrent use.
//
// # Building blocks
//
// OMA-LwM2M-JSON (package omajson), the SenML dialect of LwM2M 1.0, follows
// the same rules for names, times and values under other labels. For it the
// decoders' parts are exported: Resolver (base fields, names, times, value
// types), Number and the JSON field readers (JSONString, JSONNumber,
// JSONBool); and the encoders' parts: CommonPrefix, RelativeName and
// AbsoluteTime.
package senml
