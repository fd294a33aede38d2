package lwm2m

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxEndpointNameLen is the longest endpoint client name accepted, in
// bytes: a URN such as urn:imei:… or urn:uuid:… is far shorter.
const MaxEndpointNameLen = 255

// ErrEndpointName is matched (errors.Is) by the error of CheckEndpointName.
var ErrEndpointName = errors.New("invalid endpoint name")

// CheckEndpointName reports whether name can name an endpoint: not empty,
// at most MaxEndpointNameLen bytes, valid UTF-8 and free of control
// characters (NUL included). Every engine of the store holds such a name
// the same way, and logs, URLs and the dashboard show it as it is.
func CheckEndpointName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrEndpointName)
	case len(name) > MaxEndpointNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrEndpointName, MaxEndpointNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not valid UTF-8", ErrEndpointName)
	}
	for i, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %U at byte %d", ErrEndpointName, r, i)
		}
	}
	return nil
}
