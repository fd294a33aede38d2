package store

import (
	"context"
	"fmt"
	"time"
)

// Node is a server process that wrote its heartbeat.
type Node struct {
	Name      string
	Version   string
	StartedAt time.Time
	SeenAt    time.Time
}

// Heartbeat records that node n is alive at n.SeenAt, creating its row on
// first use. It is a real write: it fails when the database does not take
// writes (disk full, read-only), which is what /healthz needs to know.
func (s *Store) Heartbeat(ctx context.Context, n Node) error {
	_, err := s.wdb.ExecContext(ctx, `
		INSERT INTO node (name, version, started_at, seen_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version, started_at = excluded.started_at,
			seen_at = excluded.seen_at`,
		n.Name, n.Version, millis(n.StartedAt), millis(n.SeenAt))
	return wrap(fmt.Sprintf("heartbeat of node %q", n.Name), err)
}

// ListNodes returns the nodes seen since since, by name.
func (s *Store) ListNodes(ctx context.Context, since time.Time) ([]Node, error) {
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT name, version, started_at, seen_at FROM node WHERE seen_at >= $1 ORDER BY name", millis(since))
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	out, err := collect(rows, func(r rowScanner) (Node, error) {
		var n Node
		var started, seen int64
		err := r.Scan(&n.Name, &n.Version, &started, &seen)
		n.StartedAt, n.SeenAt = fromMillis(started), fromMillis(seen)
		return n, err
	})
	return out, wrap("list nodes", err)
}
