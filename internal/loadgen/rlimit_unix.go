//go:build unix

package loadgen

import (
	"fmt"
	"syscall"
)

// ensureFiles raises the soft limit of open files to at least n, up to
// the hard limit, and fails with a clear error when the hard limit is
// lower.
func ensureFiles(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("loadgen: open file limit: %w", err)
	}
	if l.Cur >= n {
		return nil
	}
	if l.Max < n {
		return fmt.Errorf("loadgen: %d sockets need an open file limit of at least %d, the hard limit is %d (raise it with ulimit -Hn)", n-64, n, l.Max)
	}
	l.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("loadgen: raising the open file limit to %d: %w", n, err)
	}
	return nil
}
