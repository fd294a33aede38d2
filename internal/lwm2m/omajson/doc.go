// Package omajson encodes and decodes OMA-LwM2M-JSON (content format 11543),
// the JSON format of LwM2M 1.0 (§6.4.4), which LwM2M 1.1 keeps for old
// clients:
//
//	{"bn":"/3/0/","bt":1700000000,
//	 "e":[{"n":"0","sv":"Open Mobile Alliance"},{"n":"6/0","v":1,"t":-5}]}
//
// The name of an entry is bn followed by its n. Without bn, names are
// relative to the base path given to the decoder (the path that was read),
// as LwM2M 1.0 specifies; a name starting with "/" is absolute. A base name
// must be an absolute path, and when it does not end in "/" a non-empty n
// must start with "/". Every name must resolve to a resource or resource
// instance (depth 3 or 4) at or below the base path.
//
// Each entry carries exactly one of v (number: integer, unsigned, float or
// time), sv (string, corelnk, or base64 opaque data), bv (boolean) and ov
// (objlnk "3:0"). Values are typed with the TypeFunc: a number must be exact
// in the resource's type, sv of an opaque resource must be base64 (standard
// or URL alphabet, padding optional), and a field that does not fit the type
// is an error. For unknown resources a number that is an exact integer
// becomes integer (unsigned above math.MaxInt64), other numbers float, and sv
// a string.
//
// An entry's time is bt plus its t; entries with neither have a zero time.
// As in SenML, a sum below 2^28 is relative to now (DecodeOptions.Now): "t":-5
// is five seconds ago; larger sums are seconds since the Unix epoch, with
// fractions kept to the microsecond. The encoder writes absolute t.
//
// The format is the SenML dialect of LwM2M 1.0: names, times and value
// types are resolved by senml.Resolver, and numbers and strings read by
// senml's JSON field readers, so that both JSON formats follow one set of
// rules.
//
// Decoders return a *lwm2m.DecodeError for every malformed input; its Offset
// is the index of the entry in "e", or -1 for the document and its top-level
// fields, and Field names the label ("bn", "e", "n", "v", "sv", ...). A label
// repeated within one object counts by its last occurrence (encoding/json);
// unknown labels are ignored. All functions are safe for concurrent use.
package omajson
