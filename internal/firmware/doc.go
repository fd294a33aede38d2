// Package firmware owns firmware images and their delivery to devices:
// the image store (Images: rows of table firmware and their files in the
// firmware directory, written atomically, with size and SHA-256), the
// IoT-safe download server over HTTPS or plain HTTP (Server), the CoAP
// Block2 download route (Images.CoAPHandler, for coapd.Server.Handle on
// CoAPPattern) and the download server's development certificate
// (DevCertificate).
//
// # Images
//
// An image has a version (VersionPattern), the file name "<version>.bin"
// and lives at <firmware dir>/<version>.bin. Upload writes a temporary
// file in the directory, syncs it and links it into place, then inserts
// the row; any failure (empty or oversize image, duplicate version, a
// cut-off upload) leaves no file and no row. An image that an update
// refers to cannot be removed (ErrInUse). Downloads name an image by its
// file name, which is looked up in the store (Images.Open), never joined
// into a path as given.
//
// # The download server
//
// Nordic nRF91 modems do TLS in the modem and refuse any record larger
// than 2 KB, and Go's crypto/tls writes records of up to 16 KiB. The
// server therefore caps every record it writes after the handshake at
// ServerConfig.RecordSize bytes, header and AEAD overhead included
// (DefaultRecordSize 1370, nginx's ssl_buffer_size the old deployment
// used): crypto/tls writes at least one record per Write, so every
// Write to a connection is split into chunks of RecordSize-22 bytes
// (TLS 1.3) or RecordSize-29 (TLS 1.2, whose suites are restricted to
// ECDHE with AEAD: CipherSuites). Handshake records cannot be capped that
// way: keep the certificate chain short (an ECDSA P-256 leaf; CheckChain
// warns of a chain that makes larger records). The server speaks
// HTTP/1.1 only (no HTTP/2, no compression), serves GET and HEAD of
// /binaries/<file> with Content-Length, ETag (the quoted SHA-256),
// If-None-Match, If-Range and one byte Range (206; 416 past the end or
// a malformed byte range; several ranges, or another unit, are ignored and
// the whole image sent), as
// net/http's ServeContent does; anything else is 404.
//
// It imports store and coapd (for the Handler type), and never api, app,
// cli or jobs.
package firmware
