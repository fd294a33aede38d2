// Package lwm2m is the protocol vocabulary shared by every other package:
// object paths, the LwM2M data types and typed values, records and the node
// tree built from them, content-format numbers and the decode error type.
//
// It performs no I/O and imports nothing from this module. Codecs for the
// individual content formats live in sub-packages (tlv, senml, linkformat,
// lwm2mcbor, ...) and exchange data as []Record.
package lwm2m
