// Package plaintext encodes and decodes single resource values in the
// text/plain content format (content-format 0, LwM2M 1.1 Core §7.4.1).
//
// text/plain carries one value and no type: the caller names the type the
// resource has. Numbers are ASCII decimal, booleans "0" or "1", time is
// seconds since the Unix epoch, objlnk is "object:instance" and opaque is
// base64.
//
// The package is pure and safe for concurrent use.
package plaintext
