package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/version"
)

// ingestFailureWindow is how long a failed ingest commit keeps /healthz
// failing when no commit succeeds after it: a store that fails every batch
// under load stays reported, one that recovered is healthy again at the
// next successful commit, or this long after the failure when no device
// sends anything.
const ingestFailureWindow = 30 * time.Second

// storageHealth knows whether the database takes writes: from the node's
// heartbeat, a small write every interval, and from the ingest writer's
// failed commits. It is httpd.Config.Storage.
type storageHealth struct {
	st     *store.Store
	ingest *ingest.Writer
	log    *slog.Logger
	node   store.Node

	mu      sync.Mutex
	beatErr error // guarded by mu: the last heartbeat's error
}

func newStorageHealth(st *store.Store, w *ingest.Writer, log *slog.Logger) *storageHealth {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "flownexus"
	}
	now := time.Now()
	return &storageHealth{st: st, ingest: w, log: log,
		node: store.Node{Name: name, Version: version.Version, StartedAt: now, SeenAt: now}}
}

// check returns why the database does not take writes, or nil.
func (h *storageHealth) check() error {
	h.mu.Lock()
	beat := h.beatErr
	h.mu.Unlock()
	if beat != nil {
		return beat
	}
	if at, err := h.ingest.Failing(); err != nil && time.Since(at) < ingestFailureWindow {
		return fmt.Errorf("storing device data failed %s ago: %w", time.Since(at).Round(time.Second), err)
	}
	return nil
}

// beat writes the heartbeat once and records the outcome; a change is
// logged.
func (h *storageHealth) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h.node.SeenAt = time.Now()
	err := h.st.Heartbeat(ctx, h.node)
	if ctx.Err() != nil && err != nil && context.Cause(ctx) != context.DeadlineExceeded {
		return // stopping
	}
	h.mu.Lock()
	was := h.beatErr
	h.beatErr = err
	h.mu.Unlock()
	switch {
	case err != nil && was == nil:
		h.log.Error("the database takes no writes", "err", err)
	case err == nil && was != nil:
		h.log.Info("the database takes writes again")
	}
}

// run writes the heartbeat every interval until ctx ends.
func (h *storageHealth) run(ctx context.Context, interval time.Duration) {
	h.beat(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.beat(ctx)
		}
	}
}
