package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
)

// Simulated firmware packages (FirmwareImage) start with a text header:
//
//	FNXSIM1 version=V size=N sha256=HEX\n
//
// padded with NUL bytes to the next multiple of imageHeaderAlign bytes,
// followed by the payload. N is the size of the whole package in bytes and
// HEX the lowercase SHA-256 of the payload (the bytes after the padding).
const (
	imageMagic       = "FNXSIM1 "
	imageHeaderAlign = 64
	// MinFirmwareImage is the smallest size FirmwareImage accepts (a
	// version of up to 21 characters fits a header of this size).
	MinFirmwareImage = 128
	// maxImageHeader bounds where the header line's newline may be.
	maxImageHeader = 256
)

// versionPattern is the firmware version syntax of the image store.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// FirmwareImage returns a deterministic simulated firmware package of
// exactly size bytes that declares version and carries the SHA-256 of its
// payload, as a simulated device verifies on receipt (and installs as
// version after Execute /5/0/2). The payload is pseudo-random bytes drawn
// from version and size. It panics when version does not match
// ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ or size is smaller than the header
// (MinFirmwareImage bytes; up to 192 for versions longer than 21
// characters): both are programming errors of the caller.
func FirmwareImage(version string, size int) []byte {
	if !versionPattern.MatchString(version) {
		panic(fmt.Sprintf("simulator: FirmwareImage: invalid version %q", version))
	}
	// The header's length does not depend on the digits of the hash, only
	// on the length of the line, so it can be computed first.
	line := fmt.Sprintf("%sversion=%s size=%d sha256=%064x\n", imageMagic, version, size, 0)
	hdr := imageHeaderLen(len(line))
	if size < MinFirmwareImage || size < hdr {
		panic(fmt.Sprintf("simulator: FirmwareImage: size %d below the header's %d bytes", size, max(hdr, MinFirmwareImage)))
	}
	pkg := make([]byte, size)
	var seed [32]byte
	copy(seed[:], []byte(fmt.Sprintf("%s/%d", version, size)))
	seed = sha256.Sum256(seed[:])
	_, _ = rand.NewChaCha8(seed).Read(pkg[hdr:])
	sum := sha256.Sum256(pkg[hdr:])
	line = fmt.Sprintf("%sversion=%s size=%d sha256=%s\n", imageMagic, version, size, hex.EncodeToString(sum[:]))
	copy(pkg, line)
	return pkg
}

// imageHeaderLen is the padded header length for a header line (with its
// newline) of n bytes.
func imageHeaderLen(n int) int {
	return (n + imageHeaderAlign - 1) / imageHeaderAlign * imageHeaderAlign
}

// imageHeader is a parsed FirmwareImage header.
type imageHeader struct {
	version string
	size    int
	sha256  string // lowercase hex
	length  int    // header bytes including the padding
}

var errNoImageHeader = errors.New("no FNXSIM1 header")

var imageLine = regexp.MustCompile(`^FNXSIM1 version=([A-Za-z0-9][A-Za-z0-9._+-]{0,63}) size=([0-9]{1,10}) sha256=([0-9a-f]{64})\n$`)

// parseImageHeader parses the header of a package. It returns
// errNoImageHeader when pkg does not start with the magic (a package of
// some other kind), and another error when the header is malformed.
func parseImageHeader(pkg []byte) (imageHeader, error) {
	if !bytes.HasPrefix(pkg, []byte(imageMagic)) {
		return imageHeader{}, errNoImageHeader
	}
	nl := bytes.IndexByte(pkg[:min(len(pkg), maxImageHeader)], '\n')
	if nl < 0 {
		return imageHeader{}, errors.New("firmware header: no end of line in the first 256 bytes")
	}
	m := imageLine.FindSubmatch(pkg[:nl+1])
	if m == nil {
		return imageHeader{}, fmt.Errorf("firmware header: malformed line %q", pkg[:nl])
	}
	size, err := strconv.Atoi(string(m[2]))
	if err != nil {
		return imageHeader{}, fmt.Errorf("firmware header: size: %w", err)
	}
	h := imageHeader{version: string(m[1]), size: size, sha256: string(m[3]), length: imageHeaderLen(nl + 1)}
	if h.size < h.length {
		return imageHeader{}, fmt.Errorf("firmware header: size %d smaller than the header", h.size)
	}
	return h, nil
}

// verifyImage checks a received package: a FirmwareImage package must have
// the size and payload hash its header declares; it returns the version to
// install. A package without the header is accepted, its version taken
// from a "version=X" line or cur with its last number raised.
func verifyImage(pkg []byte, cur string) (string, error) {
	h, err := parseImageHeader(pkg)
	if errors.Is(err, errNoImageHeader) {
		return packageVersion(pkg, cur), nil
	}
	if err != nil {
		return "", err
	}
	if len(pkg) != h.size {
		return "", fmt.Errorf("firmware package of %d bytes, header says %d", len(pkg), h.size)
	}
	nl := bytes.IndexByte(pkg, '\n')
	for _, b := range pkg[nl+1 : h.length] {
		if b != 0 {
			return "", errors.New("firmware header: padding is not NUL bytes")
		}
	}
	sum := sha256.Sum256(pkg[h.length:])
	if got := hex.EncodeToString(sum[:]); got != h.sha256 {
		return "", fmt.Errorf("firmware payload SHA-256 %s, header says %s", got, h.sha256)
	}
	return h.version, nil
}
