package lwm2m

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckEndpointName(t *testing.T) {
	for _, ok := range []string{"urn:imei:351234567890123", "urn:uuid:1a2b", "sensor-01", "Gerät 1", strings.Repeat("a", MaxEndpointNameLen)} {
		if err := CheckEndpointName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a\x00b", "\xff\xfe", "tab\there", "new\nline", "del\x7f", "c1\u0085", strings.Repeat("a", MaxEndpointNameLen+1)} {
		if err := CheckEndpointName(bad); !errors.Is(err, ErrEndpointName) {
			t.Errorf("%q: %v, want ErrEndpointName", bad, err)
		}
	}
}
