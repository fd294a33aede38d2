// Package linkformat reads and writes the CoRE Link Format (RFC 6690,
// content format 40) as LwM2M uses it: the object list a device sends with
// Register and Update, the response to Discover, and the notification
// attributes of Write-Attributes.
//
// Three layers, each usable alone:
//
//   - Parse and Format handle generic link-format: "<target>" followed by
//     ";name", ";name=token" or ";name=\"quoted\"" parameters, links
//     separated by commas, whitespace and newlines tolerated between
//     elements. Values are kept as strings.
//   - ParseRegistration and FormatRegistration interpret a Register or Update
//     payload: the optional root link (rt="oma.lwm2m", with the alternate
//     root path and the announced content formats) and the object and object
//     instance links with their versions.
//   - ParseDiscover and FormatDiscover interpret a Discover response, and
//     Attributes (ParseQuery, Query, Validate) carries the LwM2M notification
//     attributes pmin, pmax, gt, lt, st, epmin, epmax, edge, con and hqmax.
//
// Every parser returns *lwm2m.DecodeError (Format lwm2m.FormatLinkFormat) for
// malformed input, with the byte offset of the offending element and a Field
// naming it ("<", ">", "path", "ver", "ct", an attribute name, ...). Parsers
// never allocate more than a small multiple of the input and refuse inputs
// with more than MaxLinks links. The package performs no I/O and is safe for
// concurrent use.
package linkformat
