// Package opaque encodes and decodes resource values in the
// application/octet-stream content format (content-format 42, LwM2M 1.1
// Core §7.4.2): the payload is the value of one opaque resource, byte for
// byte, as used for firmware packages and other binary resources.
//
// The package is pure and safe for concurrent use.
package opaque
