package app

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
)

// TestCompositeToLwM2M10Device: composite operations to a device
// registered with LwM2M 1.0 are refused by the API with 409 naming both
// versions, and a queued one fails at once without an attempt; the device
// receives no composite request (FETCH, iPATCH) at all.
func TestCompositeToLwM2M10Device(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	var composite atomic.Int64
	f := startFleet(t, s, 1, func(c *simulator.Config) {
		c.Version = lwm2m.V1_0
		c.OnEvent = func(e simulator.Event) {
			if (e.Kind == simulator.EventRequest || e.Kind == simulator.EventDropped) && strings.Contains(e.Op, "composite") {
				composite.Add(1)
			}
		}
	})
	ep := f.Device(0).Endpoint()

	for _, c := range []struct {
		route string
		body  map[string]any
		op    string
	}{
		{"read", map[string]any{"paths": []string{"/3/0/0", "/3/0/9"}}, "read-composite"},
		{"observe", map[string]any{"paths": []string{"/3/0/0", "/3/0/9"}}, "observe-composite"},
		{"write", map[string]any{"values": map[string]any{"/1/0/1": 600}}, "write-composite"},
		{"cancel-observe", map[string]any{"paths": []string{"/3/0/0", "/3/0/9"}}, "cancel-composite"},
	} {
		var p problemJSON
		code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/"+c.route, c.body, &p)
		if code != http.StatusConflict || p.Code != "lwm2m_version" ||
			!strings.Contains(p.Detail, c.op+" needs LwM2M 1.1 or later") || !strings.Contains(p.Detail, "registered with LwM2M 1.0") {
			t.Errorf("%s: %d %+v; want 409 lwm2m_version naming %s and both versions", c.route, code, p, c.op)
		}
	}

	// Queued, it fails at once: no attempt counted, the reason kept.
	op := s.enqueue(t, ep, map[string]any{"kind": "read", "paths": []string{"/3/0/0", "/3/0/9"}})
	done := s.waitQueued(t, ep, op.ID, "FAILED")
	if done.Attempts != 0 || !strings.Contains(done.ResultError, "read-composite needs LwM2M 1.1 or later") {
		t.Errorf("queued read-composite: %+v", done)
	}

	// The device answers what LwM2M 1.0 has.
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/3/0/9"}, &res); code != 200 {
		t.Errorf("single read: %d", code)
	}
	if n := composite.Load(); n != 0 {
		t.Errorf("the LwM2M 1.0 device received %d composite requests", n)
	}
}
