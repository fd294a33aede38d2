package fwupdate

import (
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

var t0 = time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)

var offeredAll = map[string]string{
	ProtocolCoAP: "coap://srv:5683/fw/", ProtocolCoAPS: "coaps://srv:5684/fw/", ProtocolHTTPS: "https://fw:8443/binaries/",
}

// base is the facts of an update in state at t0, now a second later.
func base(state string) facts {
	return facts{
		Update: store.FirmwareUpdate{ID: 1, EndpointID: 7, Version: "1.2.3", State: state, Active: true, StateAt: t0,
			Method: MethodPull, Protocol: ProtocolCoAP},
		Now: t0.Add(time.Second), Ops: map[string]store.Operation{}, Values: map[lwm2m.Path]value{},
		Observing: map[lwm2m.Path]bool{}, Offered: offeredAll, Filename: "1.2.3.bin", Online: true, Reachable: true,
		RegisteredAt: t0.Add(-time.Hour), DownloadTimeout: time.Hour, UpdateTimeout: 15 * time.Minute,
		ReadInterval: time.Minute, MaxPushFailures: 3,
	}
}

func (f facts) with(p lwm2m.Path, v lwm2m.Value, at time.Time) facts {
	f.Values[p] = value{Value: v, At: at}
	return f
}

func (f facts) op(role string, status store.OperationStatus, at time.Time) facts {
	f.Ops[role] = store.Operation{ID: int64(len(f.Ops) + 1), Status: status, CreatedAt: at, UpdatedAt: at, ResultError: "boom"}
	return f
}

func kinds(q []queued) string {
	var out []string
	for _, x := range q {
		out = append(out, x.Role)
	}
	return strings.Join(out, ",")
}

// Every Update Result 2..9 reported while downloading or updating ends the
// update FAILED with its meaning and code.
func TestDecideResultCodes(t *testing.T) {
	meanings := map[int]string{2: "not enough flash", 3: "out of RAM", 4: "connection lost", 5: "integrity check failure",
		6: "unsupported package type", 7: "invalid URI", 8: "firmware update failed", 9: "unsupported protocol"}
	for _, state := range []string{StateDownloading, StateUpdating} {
		for code, want := range meanings {
			f := base(state).with(pathResult, lwm2m.Int(int64(code)), t0.Add(500*time.Millisecond))
			d := decide(f)
			if d.Update.State != StateFailed || d.Update.Active || d.Update.ResultCode != code ||
				!strings.Contains(d.Update.Result, want) || !strings.Contains(d.Update.Error, want) || !d.Changed {
				t.Errorf("%s, result %d: %+v", state, code, d.Update)
			}
			if len(d.Queue) != 0 {
				t.Errorf("%s, result %d: queues %s", state, code, kinds(d.Queue))
			}
		}
		// A result reported before the state began is an old one.
		f := base(state).with(pathResult, lwm2m.Int(8), t0.Add(-time.Second))
		if d := decide(f); d.Update.State != state {
			t.Errorf("%s: an old result 8 changed the state to %s", state, d.Update.State)
		}
	}
}

func TestSameVersion(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1.2.3", "1.2.3", true}, {"v1.2.3", "1.2.3", true}, {"V1.2.3", "v1.2.3", true}, {"1.2.3_rc1", "1.2.3-RC1", true},
		{" 1.2.3 ", "1.2.3", true}, {"1.2.3", "1.2.4", false}, {"1.2.3", "1.2.3.0", false}, {"v", "", false}, {"vv1", "v1", false},
	} {
		if got := SameVersion(c.a, c.b); got != c.want {
			t.Errorf("SameVersion(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestDecidePending(t *testing.T) {
	pending := func(method, protocol string) facts {
		f := base(StatePending)
		f.Update.Method, f.Update.Protocol = "", ""
		f.Detail.OptionMethod, f.Detail.OptionProtocol = method, protocol
		return f
	}
	// Auto: the device's options are read first, once.
	f := pending(MethodAuto, ProtocolAuto)
	if d := decide(f); kinds(d.Queue) != roleReadInfo || d.Changed {
		t.Fatalf("auto, nothing known: %s %+v", kinds(d.Queue), d.Update)
	}
	if d := decide(f.op(roleReadInfo, store.OperationSending, t0)); len(d.Queue) != 0 || d.Changed {
		t.Fatalf("read on its way: %s", kinds(d.Queue))
	}
	read := func(f facts, protocols []int64, delivery int64) facts {
		f = f.op(roleReadInfo, store.OperationConfirmed, t0)
		for i, p := range protocols {
			f = f.with(pathProtocols.Child(uint16(i)), lwm2m.Int(p), t0)
		}
		if delivery >= 0 {
			f = f.with(pathDelivery, lwm2m.Int(delivery), t0)
		}
		return f
	}
	for name, c := range map[string]struct {
		f         facts
		dtls      bool
		wantState string
		method    string
		uri       string
		queue     string
		push      bool
	}{
		"coap device":            {f: read(pending("", ""), []int64{0, 2, 3}, 2), method: MethodPull, uri: "coap://srv:5683/fw/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"dtls device":            {f: read(pending("", ""), []int64{0, 1, 3}, 0), dtls: true, method: MethodPull, uri: "coaps://srv:5684/fw/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"https only":             {f: read(pending("", ""), []int64{3}, 0), method: MethodPull, uri: "https://fw:8443/binaries/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"no 5/0/8, plain":        {f: read(pending("", ""), nil, -1), method: MethodPull, uri: "coap://srv:5683/fw/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"no 5/0/8, dtls":         {f: read(pending("", ""), nil, -1), dtls: true, method: MethodPull, uri: "coaps://srv:5684/fw/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"read failed":            {f: pending("", "").op(roleReadInfo, store.OperationFailed, t0), method: MethodPull, uri: "coap://srv:5683/fw/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"push only device":       {f: read(pending("", ""), []int64{0}, 1), method: MethodPush, queue: "observe_state,observe_result", push: true},
		"nothing fits, both":     {f: read(pending("", ""), []int64{4, 5}, 2), method: MethodPush, queue: "observe_state,observe_result", push: true},
		"nothing fits, pull":     {f: read(pending("", ""), []int64{4, 5}, 0), wantState: StateFailed},
		"option push":            {f: pending(MethodPush, ""), method: MethodPush, queue: "observe_state,observe_result", push: true},
		"option https, no read":  {f: pending(MethodPull, ProtocolHTTPS), method: MethodPull, uri: "https://fw:8443/binaries/1.2.3.bin", queue: "observe_state,observe_result,write_uri"},
		"option http, no base":   {f: pending(MethodPull, ProtocolHTTP), wantState: StateFailed},
		"state observed already": {f: read(pending("", ""), []int64{0}, 0), method: MethodPull, uri: "coap://srv:5683/fw/1.2.3.bin", queue: "observe_result,write_uri"},
	} {
		if name == "state observed already" {
			c.f.Observing[pathState] = true
		}
		c.f.DTLS = c.dtls
		d := decide(c.f)
		want := cmpOr(c.wantState, StateDownloading)
		if d.Update.State != want || !d.Changed {
			t.Errorf("%s: state %s (%s), want %s", name, d.Update.State, d.Update.Error, want)
			continue
		}
		if want == StateFailed {
			if d.Update.Active || d.Update.Error == "" {
				t.Errorf("%s: failed without reason or still active: %+v", name, d.Update)
			}
			continue
		}
		if d.Update.Method != c.method || d.Update.PackageURI != c.uri || kinds(d.Queue) != c.queue || d.Push != c.push {
			t.Errorf("%s: method %s uri %q queue %s push %v", name, d.Update.Method, d.Update.PackageURI, kinds(d.Queue), d.Push)
		}
		if !d.Update.Deadline.Equal(c.f.Now.Add(time.Hour)) {
			t.Errorf("%s: deadline %v", name, d.Update.Deadline)
		}
		if c.uri != "" {
			w := d.Queue[len(d.Queue)-1].Op
			if w.Kind != devmgmt.KindWrite || w.Paths[0] != pathURI || w.Values[0].Value.StringValue() != c.uri {
				t.Errorf("%s: write %+v", name, w)
			}
		}
	}
	// The pending state times out too.
	f = pending("", "")
	f.Update.Deadline = t0.Add(time.Second)
	if d := decide(f.op(roleReadInfo, store.OperationQueued, t0)); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "timed out") {
		t.Errorf("pending past its deadline: %+v", d.Update)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestDecideDownloading(t *testing.T) {
	dl := func() facts {
		f := base(StateDownloading)
		f.Update.Deadline = t0.Add(time.Hour)
		return f
	}
	// Waiting for the write: nothing to do.
	if d := decide(dl().op(roleWriteURI, store.OperationQueued, t0)); d.Changed || len(d.Queue) != 0 {
		t.Errorf("write queued: %+v %s", d.Update, kinds(d.Queue))
	}
	// Downloaded after the write: Execute.
	f := dl().op(roleWriteURI, store.OperationConfirmed, t0).with(pathState, lwm2m.Int(2), t0.Add(time.Millisecond))
	d := decide(f)
	if d.Update.State != StateUpdating || kinds(d.Queue) != roleExecute || !d.Update.Deadline.Equal(f.Now.Add(15*time.Minute)) {
		t.Errorf("downloaded: %+v %s", d.Update, kinds(d.Queue))
	}
	// State 2 from before the write is old news.
	f = dl().op(roleWriteURI, store.OperationConfirmed, t0).with(pathState, lwm2m.Int(2), t0.Add(-time.Second))
	if d := decide(f); d.Changed {
		t.Errorf("old state 2: %+v", d.Update)
	}
	// The write failed for good.
	f = dl().op(roleWriteURI, store.OperationFailed, t0)
	if d := decide(f); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "Package URI") || !strings.Contains(d.Update.Error, "boom") {
		t.Errorf("write failed: %+v", d.Update)
	}
	// Timeout.
	f = dl().op(roleWriteURI, store.OperationConfirmed, t0)
	f.Now = t0.Add(time.Hour)
	if d := decide(f); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "timed out downloading") {
		t.Errorf("timeout: %+v", d.Update)
	}
	// Nothing heard for ReadInterval after the write: read the state, once.
	f = dl().op(roleWriteURI, store.OperationConfirmed, t0)
	f.Now = t0.Add(2 * time.Minute)
	if d := decide(f); kinds(d.Queue) != roleReadState || d.Changed {
		t.Errorf("quiet device: %s", kinds(d.Queue))
	}
	if d := decide(f.op(roleReadState, store.OperationQueued, t0.Add(time.Minute))); len(d.Queue) != 0 {
		t.Errorf("quiet device, read queued: %s", kinds(d.Queue))
	}
	f2 := dl().op(roleWriteURI, store.OperationConfirmed, t0).with(pathState, lwm2m.Int(1), t0.Add(90*time.Second))
	f2.Now = t0.Add(2 * time.Minute)
	if d := decide(f2); len(d.Queue) != 0 {
		t.Errorf("state heard lately: %s", kinds(d.Queue))
	}
	// Push: pushed when reachable, failures counted, then failed.
	p := dl()
	p.Update.Method = MethodPush
	if d := decide(p); !d.Push {
		t.Error("push not tried on a reachable device")
	}
	p.Reachable = false
	if d := decide(p); d.Push || d.Changed {
		t.Error("push to an unreachable device")
	}
	p.Detail.PushFailures = 3
	if d := decide(p); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "3 times") {
		t.Errorf("push failures: %+v", d.Update)
	}
	p = dl()
	p.Update.Method, p.Detail.Pushed = MethodPush, true
	p = p.with(pathState, lwm2m.Int(2), t0.Add(time.Second))
	if d := decide(p); d.Update.State != StateUpdating || d.Push {
		t.Errorf("pushed and downloaded: %+v", d.Update)
	}
}

func TestDecideUpdating(t *testing.T) {
	up := func() facts {
		f := base(StateUpdating)
		f.Update.Deadline = t0.Add(15 * time.Minute)
		return f.op(roleExecute, store.OperationConfirmed, t0)
	}
	back := t0.Add(10 * time.Second)
	// Not back yet.
	if d := decide(up()); d.Changed || len(d.Queue) != 0 {
		t.Errorf("not back: %+v %s", d.Update, kinds(d.Queue))
	}
	// Registered again: read the version.
	f := up()
	f.RegisteredAt, f.Now = back, back.Add(time.Second)
	if d := decide(f); kinds(d.Queue) != roleReadVersion || d.Changed {
		t.Errorf("back: %s", kinds(d.Queue))
	}
	// ... once.
	if d := decide(f.op(roleReadVersion, store.OperationQueued, back)); len(d.Queue) != 0 {
		t.Errorf("back, read queued: %s", kinds(d.Queue))
	}
	// The version, leniently equal: succeeded.
	for _, v := range []string{"1.2.3", "v1.2.3", "V1.2.3"} {
		g := up().with(pathVersion, lwm2m.String(v), back.Add(time.Second))
		g.RegisteredAt, g.Now = back, back.Add(2*time.Second)
		if d := decide(g); d.Update.State != StateSucceeded || d.Update.Active || d.Update.ResultCode != 1 || d.Update.FinishedAt.IsZero() {
			t.Errorf("version %q: %+v", v, d.Update)
		}
	}
	// A different version after the Register: failed.
	g := up().with(pathVersion, lwm2m.String("1.2.2"), back.Add(time.Second))
	g.RegisteredAt, g.Now = back, back.Add(2*time.Second)
	if d := decide(g); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, `"1.2.2"`) {
		t.Errorf("other version: %+v", d.Update)
	}
	// A version read before the device came back does not count.
	g = up().with(pathVersion, lwm2m.String("1.2.2"), t0.Add(time.Second))
	g.RegisteredAt, g.Now = back, back.Add(2*time.Second)
	if d := decide(g); d.Changed || kinds(d.Queue) != roleReadVersion {
		t.Errorf("old version: %+v %s", d.Update, kinds(d.Queue))
	}
	// Result 1 without a new Register: the Register is waited for
	// ReadInterval, then the version read.
	g = up().with(pathResult, lwm2m.Int(1), back)
	g.Now = back.Add(time.Second)
	if d := decide(g); d.Changed || len(d.Queue) != 0 {
		t.Errorf("result 1, rebooting: %+v %s", d.Update, kinds(d.Queue))
	}
	g.Now = back.Add(time.Minute)
	if d := decide(g); d.Changed || kinds(d.Queue) != roleReadVersion {
		t.Errorf("result 1, no Register: %+v %s", d.Update, kinds(d.Queue))
	}
	// Result 1 without a new Register: back too; the version decides.
	g = up().with(pathResult, lwm2m.Int(1), back).with(pathVersion, lwm2m.String("1.2.3"), back.Add(time.Second))
	g.Now = back.Add(2 * time.Second)
	if d := decide(g); d.Update.State != StateSucceeded {
		t.Errorf("result 1 and the version: %+v", d.Update)
	}
	// Execute failed and the device did not come back.
	g = base(StateUpdating).op(roleExecute, store.OperationFailed, t0)
	if d := decide(g); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "Execute") {
		t.Errorf("execute failed: %+v", d.Update)
	}
	// Execute failed (the device rebooted before answering) but it came
	// back updated: succeeded.
	g = base(StateUpdating).op(roleExecute, store.OperationFailed, t0).with(pathVersion, lwm2m.String("1.2.3"), back.Add(time.Second))
	g.RegisteredAt, g.Now = back, back.Add(2*time.Second)
	if d := decide(g); d.Update.State != StateSucceeded {
		t.Errorf("execute failed, device updated: %+v", d.Update)
	}
	// Timeout.
	g = up()
	g.Now = t0.Add(15 * time.Minute)
	if d := decide(g); d.Update.State != StateFailed || !strings.Contains(d.Update.Error, "timed out") {
		t.Errorf("timeout: %+v", d.Update)
	}
}

// A finished update is left alone.
func TestDecideFinished(t *testing.T) {
	for _, s := range []string{StateSucceeded, StateFailed, StateCancelled} {
		f := base(s).with(pathResult, lwm2m.Int(8), t0.Add(time.Second))
		f.Update.Active = false
		if d := decide(f); d.Changed || len(d.Queue) != 0 || d.Update.State != s {
			t.Errorf("%s: %+v %s", s, d.Update, kinds(d.Queue))
		}
	}
}

func TestResultMeaning(t *testing.T) {
	for code := 0; code <= 9; code++ {
		if m := ResultMeaning(code); m == "" || strings.HasPrefix(m, "unknown") {
			t.Errorf("ResultMeaning(%d) = %q", code, m)
		}
	}
	if m := ResultMeaning(42); !strings.Contains(m, "42") {
		t.Errorf("ResultMeaning(42) = %q", m)
	}
}
