package firmware_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/firmware"
)

// FuzzVersionOf: a download's file name (from a URL path or a CoAP
// Uri-Path, device input) names an image only when it is a plain file
// name in the firmware directory.
func FuzzVersionOf(f *testing.F) {
	for _, s := range []string{"1.0.bin", "../1.0.bin", "..bin", "a/b.bin", `a\b.bin`, ".bin", "v1.2.3+x_y-z.bin", "\x00.bin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		v, ok := firmware.VersionOf(name)
		if !ok {
			return
		}
		if firmware.Filename(v) != name || strings.ContainsAny(name, "/\\\x00") || filepath.Base(name) != name ||
			name == ".." || strings.HasPrefix(name, ".") || firmware.CheckVersion(v) != nil {
			t.Fatalf("VersionOf(%q) = %q, a name that is not a plain image file name", name, v)
		}
	})
}
