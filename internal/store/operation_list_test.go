package store

import (
	"context"
	"testing"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestPageOperations(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b, c, north, _ := scopedFleet(t, s)
		u, err := s.CreateUser(ctx, "queuer", "x", false)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for i, ep := range []int64{a.ID, b.ID, c.ID, a.ID, b.ID, a.ID} {
			o, err := s.CreateOperation(ctx, Operation{EndpointID: ep, Kind: "read", Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 0)},
				QueuedBy: map[bool]int64{true: u.ID}[i == 0]})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, o.ID)
		}
		if _, err := s.CancelOperation(ctx, ids[3]); err != nil {
			t.Fatal(err)
		}
		page := func(p OperationPage) ([]int64, bool) {
			t.Helper()
			ops, more, err := s.PageOperations(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, o := range ops {
				out = append(out, o.ID)
			}
			return out, more
		}
		eq := func(got []int64, want ...int64) bool {
			if len(got) != len(want) {
				return false
			}
			for i := range got {
				if got[i] != want[i] {
					return false
				}
			}
			return true
		}
		if got, more := page(OperationPage{Scope: auth.Everything, Limit: 4}); more != true || !eq(got, ids[5], ids[4], ids[3], ids[2]) {
			t.Errorf("first page = %v %v", got, more)
		}
		if got, more := page(OperationPage{Scope: auth.Everything, Limit: 4, Before: ids[2]}); more || !eq(got, ids[1], ids[0]) {
			t.Errorf("second page = %v %v", got, more)
		}
		if got, _ := page(OperationPage{Scope: auth.Scope{Sites: []int64{north}}}); !eq(got, ids[5], ids[3], ids[0]) {
			t.Errorf("north = %v", got)
		}
		if got, _ := page(OperationPage{Scope: auth.Scope{Sites: []int64{north}}, Status: OperationQueued}); !eq(got, ids[5], ids[0]) {
			t.Errorf("north queued = %v", got)
		}
		if got, _ := page(OperationPage{Scope: auth.Everything, Prefix: "urn:b"}); !eq(got, ids[4], ids[1]) {
			t.Errorf("prefix urn:b = %v", got)
		}
		if got, _ := page(OperationPage{Scope: auth.Scope{}}); len(got) != 0 {
			t.Errorf("zero scope = %v", got)
		}
		ops, _, err := s.PageOperations(ctx, OperationPage{Scope: auth.Everything, Before: ids[1]})
		if err != nil || len(ops) != 1 || ops[0].Endpoint != "urn:a" || ops[0].QueuedByName != "queuer" ||
			ops[0].Kind != "read" || ops[0].Status != OperationQueued || len(ops[0].Paths) != 1 {
			t.Errorf("listed operation = %+v, %v", ops, err)
		}
		if ops, _, _ := s.PageOperations(ctx, OperationPage{Scope: auth.Everything, Before: ids[2]}); ops[0].QueuedByName != "" {
			t.Errorf("a system operation names %q", ops[0].QueuedByName)
		}
	})
}
