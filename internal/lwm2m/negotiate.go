package lwm2m

import (
	"fmt"
	"slices"
)

// Version is an LwM2M enabler version as sent in the Register "lwm2m="
// parameter.
type Version string

// The versions the server serves.
const (
	V1_0 Version = "1.0"
	V1_1 Version = "1.1"
	V1_2 Version = "1.2"
)

// ParseVersion accepts "1.0", "1.1" and "1.2". An absent parameter means 1.0
// (LwM2M 1.0 clients were not required to send it).
func ParseVersion(s string) (Version, error) {
	switch Version(s) {
	case "":
		return V1_0, nil
	case V1_0, V1_1, V1_2:
		return Version(s), nil
	}
	return "", fmt.Errorf("lwm2m: unsupported LwM2M version %q", s)
}

// AtLeast reports whether v is the same as or newer than w.
func (v Version) AtLeast(w Version) bool { return v >= w }

// readPreference is the order in which the server picks a format for
// multi-value payloads among those a client can handle.
var readPreference = []MediaType{FormatSenMLCBOR, FormatSenMLJSON, FormatLwM2MCBOR, FormatTLV, FormatJSON}

// ReadFormat returns the content format to ask for (Accept) when reading or
// observing p on a client of version v that announced the formats in
// announced (the ct= of its registration root link, possibly empty). A
// client that announced formats gets the most compact of those; otherwise
// LwM2M 1.0 clients get TLV and later ones SenML-CBOR.
func ReadFormat(v Version, announced []MediaType, p Path) MediaType {
	for _, f := range readPreference {
		if slices.Contains(announced, f) {
			return f
		}
	}
	if v.AtLeast(V1_1) {
		return FormatSenMLCBOR
	}
	return FormatTLV
}

// CompositeFormat returns the format for Read-Composite, Observe-Composite
// and Write-Composite (LwM2M 1.1+): these need SenML, CBOR preferred.
func CompositeFormat(announced []MediaType) MediaType {
	if slices.Contains(announced, FormatSenMLJSON) && !slices.Contains(announced, FormatSenMLCBOR) {
		return FormatSenMLJSON
	}
	return FormatSenMLCBOR
}

// WriteFormat returns the content format for writing the given records to
// target: a single resource value goes as text/plain (opaque as
// application/octet-stream), which every client version accepts; anything
// else in ReadFormat's choice.
func WriteFormat(v Version, announced []MediaType, target Path, rs []Record) MediaType {
	if target.IsResource() && len(rs) == 1 && rs[0].Path == target {
		if rs[0].Value.Type() == TypeOpaque {
			return FormatOpaque
		}
		return FormatText
	}
	return ReadFormat(v, announced, target)
}
