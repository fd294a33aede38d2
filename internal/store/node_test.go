package store

import (
	"context"
	"testing"
	"time"
)

func TestHeartbeat(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		start := t0
		for i := range 3 {
			if err := s.Heartbeat(ctx, Node{Name: "a", Version: "v1", StartedAt: start, SeenAt: start.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Heartbeat(ctx, Node{Name: "b", StartedAt: start, SeenAt: start}); err != nil {
			t.Fatal(err)
		}
		nodes, err := s.ListNodes(ctx, start.Add(time.Second))
		if err != nil || len(nodes) != 1 || nodes[0].Name != "a" || !nodes[0].SeenAt.Equal(start.Add(2*time.Second)) {
			t.Fatalf("nodes seen in the last second: %+v, %v", nodes, err)
		}
	})
}
