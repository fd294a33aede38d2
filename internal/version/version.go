// Package version holds the build's version and commit, set at link time:
//
//	go build -ldflags "-X github.com/flownexus/flownexus/internal/version.Version=v1.2.3 -X github.com/flownexus/flownexus/internal/version.Commit=abc123"
//
// When not set by the linker, Commit falls back to the VCS revision Go
// records in the binary.
package version

import "runtime/debug"

// Version and Commit describe the build; see the package comment.
var (
	Version = "dev"
	Commit  = ""
)

// Revision returns Commit, or the VCS revision from the build info
// (suffixed "-dirty" for a modified tree), or "unknown".
func Revision() string {
	if Commit != "" {
		return Commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
