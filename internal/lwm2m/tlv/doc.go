// Package tlv encodes and decodes the OMA-TLV content format
// (application/vnd.oma.lwm2m+tlv, content-format 11542, LwM2M 1.1 Core
// §7.4.3).
//
// A TLV payload is a list of elements, each a type byte, an 8- or 16-bit
// identifier, an optional 8/16/24-bit length and the value. Four element
// kinds nest as the data tree does: Object Instance TLVs hold Resource and
// Multiple Resource TLVs, Multiple Resource TLVs hold Resource Instance TLVs,
// and Resource and Resource Instance TLVs hold a value.
//
// Values carry no type on the wire. Decode types them with a
// [lwm2m.TypeFunc]: integers and time are 1, 2, 4 or 8 bytes big-endian
// signed, unsigned integers 1, 2, 4 or 8 bytes unsigned, floats 4 or 8 bytes
// IEEE 754, booleans one byte 0 or 1, objlnk 4 bytes (object ID then
// instance ID), strings, corelnk and opaque the bytes themselves. Values of
// resources the TypeFunc does not know are kept as [lwm2m.Opaque].
//
// The package is pure: bytes in, records out, no I/O and no shared state;
// every function is safe for concurrent use.
package tlv
