package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/simulator"
)

// opCase is one operation as each caller gives it: the REST API route
// that runs it now and its body, the body that queues it, and the
// devmgmt.Operation a Go caller passes to Do.
type opCase struct {
	route string
	now   map[string]any
	queue map[string]any
	op    devmgmt.Operation
}

func ops(ps ...string) []lwm2m.Path {
	out := make([]lwm2m.Path, len(ps))
	for i, p := range ps {
		out[i] = lwm2m.MustParsePath(p)
	}
	return out
}

// TestOneOperationPathForAllCallers runs one operation of each kind
// through the REST API now (a device online), the queue (a sleeping
// device, delivered when it wakes) and a direct Manager.Do, and then bad
// operations through all three: each is refused with the same error
// text, the one devmgmt.Operation.Check gives, and nothing is queued.
func TestOneOperationPathForAllCallers(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	online := startFleet(t, s, 1, func(c *simulator.Config) { c.BaseIMEI = "35000000000700" }).Device(0)
	sleepy := startSleepyFleet(t, s, 1, nil).Device(0)
	ctx := context.Background()
	pmin := int64(10)
	rec := func(p string, v lwm2m.Value) []lwm2m.Record {
		return []lwm2m.Record{{Path: lwm2m.MustParsePath(p), Value: v}}
	}
	good := []opCase{
		{"read", map[string]any{"path": "/3/0/0"}, map[string]any{"kind": "read", "path": "/3/0/0"},
			devmgmt.Operation{Kind: devmgmt.KindRead, Paths: ops("/3/0/0")}},
		{"read", map[string]any{"paths": []string{"/3/0/0", "/1/0/1"}}, map[string]any{"kind": "read-composite", "paths": []string{"/3/0/0", "/1/0/1"}},
			devmgmt.Operation{Kind: devmgmt.KindReadComposite, Paths: ops("/3/0/0", "/1/0/1")}},
		{"discover", map[string]any{"path": "/3/0"}, map[string]any{"kind": "discover", "path": "/3/0"},
			devmgmt.Operation{Kind: devmgmt.KindDiscover, Paths: ops("/3/0")}},
		{"write", map[string]any{"path": "/1/0/3", "value": 60}, map[string]any{"kind": "write", "path": "/1/0/3", "value": 60},
			devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: ops("/1/0/3"), Values: rec("/1/0/3", lwm2m.Int(60))}},
		{"write", map[string]any{"values": map[string]any{"/1/0/3": 61, "/3/0/14": "+01:00"}},
			map[string]any{"kind": "write-composite", "values": map[string]any{"/1/0/3": 61, "/3/0/14": "+01:00"}},
			devmgmt.Operation{Kind: devmgmt.KindWriteComposite, Values: append(rec("/1/0/3", lwm2m.Int(61)), rec("/3/0/14", lwm2m.String("+01:00"))...)}},
		{"execute", map[string]any{"path": "/3/0/12", "args": "0='x'"}, map[string]any{"kind": "execute", "path": "/3/0/12", "args": "0='x'"},
			devmgmt.Operation{Kind: devmgmt.KindExecute, Paths: ops("/3/0/12"), Args: "0='x'"}},
		{"write-attributes", map[string]any{"path": "/3303/0/5700", "attributes": map[string]any{"pmin": 10}},
			map[string]any{"kind": "write-attributes", "path": "/3303/0/5700", "attributes": map[string]any{"pmin": 10}},
			devmgmt.Operation{Kind: devmgmt.KindWriteAttributes, Paths: ops("/3303/0/5700"), Attributes: linkformat.Attributes{PMin: &pmin}}},
		{"create", map[string]any{"path": "/3303", "instance": 1, "values": map[string]any{"5700": 21.5}},
			map[string]any{"kind": "create", "path": "/3303", "instance": 1, "values": map[string]any{"5700": 21.5}},
			devmgmt.Operation{Kind: devmgmt.KindCreate, Paths: ops("/3303"), Values: rec("/3303/1/5700", lwm2m.Float(21.5))}},
		{"delete", map[string]any{"path": "/3303/1"}, map[string]any{"kind": "delete", "path": "/3303/1"},
			devmgmt.Operation{Kind: devmgmt.KindDelete, Paths: ops("/3303/1")}},
		{"observe", map[string]any{"path": "/3303/0/5700"}, map[string]any{"kind": "observe", "path": "/3303/0/5700"},
			devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: ops("/3303/0/5700")}},
		{"cancel-observe", map[string]any{"path": "/3303/0/5700"}, map[string]any{"kind": "cancel-observe", "path": "/3303/0/5700"},
			devmgmt.Operation{Kind: devmgmt.KindCancelObserve, Paths: ops("/3303/0/5700")}},
		{"observe", map[string]any{"paths": []string{"/3/0/9", "/3/0/10"}}, map[string]any{"kind": "observe-composite", "paths": []string{"/3/0/9", "/3/0/10"}},
			devmgmt.Operation{Kind: devmgmt.KindObserveComposite, Paths: ops("/3/0/9", "/3/0/10")}},
		{"cancel-observe", map[string]any{"paths": []string{"/3/0/9", "/3/0/10"}}, map[string]any{"kind": "cancel-observe-composite", "paths": []string{"/3/0/9", "/3/0/10"}},
			devmgmt.Operation{Kind: devmgmt.KindCancelObserveComposite, Paths: ops("/3/0/9", "/3/0/10")}},
	}
	covered := map[devmgmt.Kind]bool{}
	for _, c := range good {
		covered[c.op.Kind] = true
	}
	for _, k := range devmgmt.Kinds {
		if !covered[k] {
			t.Fatalf("kind %s not covered", k)
		}
	}

	// The API now, then Do, against the online device.
	for _, c := range good {
		var res opResult
		if code := s.call(t, "POST", "/api/v1/endpoints/"+online.Endpoint()+"/"+c.route, c.now, &res); code != http.StatusOK {
			t.Fatalf("API now %s %v: %d %+v", c.route, c.now, code, res)
		}
	}
	for _, c := range good {
		if _, err := s.Devices.Do(ctx, online.Endpoint(), c.op); err != nil {
			t.Fatalf("Do %s: %v", c.op.Kind, err)
		}
	}
	// The queue, to the sleeping device.
	ep := sleepy.Endpoint()
	var ids []int64
	for _, c := range good {
		op := s.enqueue(t, ep, c.queue)
		if op.Kind != string(c.op.Kind) {
			t.Fatalf("queued %v as %s, want %s", c.queue, op.Kind, c.op.Kind)
		}
		ids = append(ids, op.ID)
	}
	sleepy.TriggerUpdate()
	for _, id := range ids {
		s.waitConfirmed(t, sleepy, ep, id)
	}

	// Bad paths and values: the same text from all three.
	bad := []opCase{
		{"execute", map[string]any{"path": "/3/0"}, map[string]any{"kind": "execute", "path": "/3/0"},
			devmgmt.Operation{Kind: devmgmt.KindExecute, Paths: ops("/3/0")}},
		{"delete", map[string]any{"path": "/3303"}, map[string]any{"kind": "delete", "path": "/3303"},
			devmgmt.Operation{Kind: devmgmt.KindDelete, Paths: ops("/3303")}},
		{"discover", map[string]any{"path": "/3/0/7/0"}, map[string]any{"kind": "discover", "path": "/3/0/7/0"},
			devmgmt.Operation{Kind: devmgmt.KindDiscover, Paths: ops("/3/0/7/0")}},
		{"create", map[string]any{"path": "/3303/0", "values": map[string]any{"5700": 1}},
			map[string]any{"kind": "create", "path": "/3303/0", "values": map[string]any{"5700": 1}},
			devmgmt.Operation{Kind: devmgmt.KindCreate, Paths: ops("/3303/0")}},
		{"write", map[string]any{"path": "/1/0/1", "value": "soon"}, map[string]any{"kind": "write", "path": "/1/0/1", "value": "soon"},
			devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: ops("/1/0/1"), Values: rec("/1/0/1", lwm2m.String("soon"))}},
		{"write", map[string]any{"path": "/1/0/1", "value": 1.5}, map[string]any{"kind": "write", "path": "/1/0/1", "value": 1.5},
			devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: ops("/1/0/1"), Values: rec("/1/0/1", lwm2m.Float(1.5))}},
		{"write", map[string]any{"values": map[string]any{"/3/0/4": 1}}, map[string]any{"kind": "write", "values": map[string]any{"/3/0/4": 1}},
			devmgmt.Operation{Kind: devmgmt.KindWriteComposite, Values: rec("/3/0/4", lwm2m.Int(1))}},
		{"write-attributes", map[string]any{"path": "/3303/0/5700", "attributes": map[string]any{"pmin": 10, "pmax": 5}},
			map[string]any{"kind": "write-attributes", "path": "/3303/0/5700", "attributes": map[string]any{"pmin": 10, "pmax": 5}},
			devmgmt.Operation{Kind: devmgmt.KindWriteAttributes, Paths: ops("/3303/0/5700"), Attributes: attrsOf(t, "pmax=5", "pmin=10")}},
	}
	before, err := s.Store.CountOperations(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range bad {
		_, doErr := s.Devices.Do(ctx, online.Endpoint(), c.op)
		if doErr == nil {
			t.Fatalf("Do %+v: accepted", c.op)
		}
		var now, queued problemJSON
		if code := s.call(t, "POST", "/api/v1/endpoints/"+online.Endpoint()+"/"+c.route, c.now, &now); code != http.StatusBadRequest {
			t.Errorf("API now %v: %d %+v", c.now, code, now)
		}
		if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/operations", c.queue, &queued); code != http.StatusBadRequest {
			t.Errorf("API queued %v: %d %+v", c.queue, code, queued)
		}
		// The API shows Do's error as the one error mapper words it for a
		// client: the same text, without the package prefix.
		want, _ := problem.From(doErr, "")
		if !strings.HasSuffix(doErr.Error(), want.Detail) || now.Detail != want.Detail || queued.Detail != want.Detail {
			t.Errorf("%s: different errors:\n Do:     %s\n now:    %s\n queued: %s", c.op.Kind, doErr, now.Detail, queued.Detail)
		}
		if strings.Contains(now.Detail, "devmgmt:") || strings.Contains(queued.Detail, "devmgmt:") {
			t.Errorf("%s: an internal prefix reached the client: %q, %q", c.op.Kind, now.Detail, queued.Detail)
		}
	}
	after, err := s.Store.CountOperations(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("refused operations were stored: %v, before %v", after, before)
	}
}

func attrsOf(t *testing.T, q ...string) linkformat.Attributes {
	t.Helper()
	a, err := linkformat.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
