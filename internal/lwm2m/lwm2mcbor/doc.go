// Package lwm2mcbor reads and writes LwM2M-CBOR, content format 11544
// (application/vnd.oma.lwm2m+cbor), the nested-map data format LwM2M 1.2
// introduced.
//
// A document is a CBOR map whose keys are path fragments: an unsigned
// integer (one ID) or an array of unsigned integers (several IDs at once).
// A value is either a nested map, whose keys continue the path, or the
// value of the resource or resource instance the accumulated path names.
// Paths are absolute: {3: {0: {1: "model"}}}, {[3, 0]: {1: "model"}} and
// {[3, 0, 1]: "model"} all carry /3/0/1. The same path prefix may appear in
// several keys; the same full path may not.
//
// Values map to lwm2m.Value as follows: integers to integer or unsigned,
// floats (half, single, double, and decimal fractions, tag 4) to float,
// true/false to boolean, text strings to string, corelnk or objlnk ("3:0")
// and byte strings to opaque, tag 1 (epoch seconds) and tag 0 (RFC 3339) to
// time, null to a value of TypeNone. When the TypeFunc knows the
// resource's type, a decoded value is converted to it with the rules of
// lwm2m.Value.Convert (an integer sent for a float resource becomes a float,
// a text "3:0" for an objlnk resource becomes an objlnk).
//
// The format carries no timestamps: Decode returns records with a zero Time
// and Encode ignores Record.Time, so a time series cannot be encoded (Encode
// refuses a path given twice).
//
// The document is walked item by item so that every error carries the byte
// offset of the offending key or value. Item heads (map and array headers,
// and the integers that make up keys and integer values) are read here;
// text and byte strings, floats, simple values and tags are decoded by
// github.com/fxamacker/cbor/v2 with small nesting and length limits. No
// length or count from the input is trusted for an allocation: a count
// larger than the input fails when the input runs out. The package performs
// no I/O and is safe for concurrent use.
package lwm2mcbor
