// Package render turns LwM2M values into the shape operators and
// integrations read them in: a Value with its path, resource name, type
// and a JSON value (numbers, booleans and strings as themselves, opaque as
// base64, objlnk as "obj:inst", time as RFC 3339), and timestamps in UTC
// or absent. The REST API's responses, the event stream's values events,
// and the dashboard and webhooks to come render through it, so that a
// value reads the same wherever it is shown.
//
// It holds no state and does no I/O. It sits just above the protocol
// vocabulary: it imports lwm2m and lwm2m/objects (for resource names) and
// must not import store, events, api or any transport.
package render
