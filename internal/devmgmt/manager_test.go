package devmgmt_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

var (
	pManufacturer = lwm2m.NewPath(3, 0, 0)
	pModel        = lwm2m.NewPath(3, 0, 1)
	pPower        = lwm2m.NewPath(3, 0, 7)
	pBattery      = lwm2m.NewPath(3, 0, 9)
	pTemp         = lwm2m.NewPath(3303, 0, 5700)
	pUnits        = lwm2m.NewPath(3303, 0, 5701)
)

func value(t *testing.T, rs []lwm2m.Record, p lwm2m.Path) lwm2m.Value {
	t.Helper()
	for _, r := range rs {
		if r.Path == p {
			return r.Value
		}
	}
	t.Fatalf("no value for %s in %v", p, rs)
	return lwm2m.Value{}
}

func TestOperationsAcrossVersions(t *testing.T) {
	for _, tc := range []struct {
		version, formats string
		wantAccept       lwm2m.MediaType
	}{
		{"1.0", "", lwm2m.FormatTLV},
		{"1.1", "", lwm2m.FormatSenMLCBOR},
		{"1.1", "110", lwm2m.FormatSenMLJSON},
		{"1.2", "11544", lwm2m.FormatLwM2MCBOR},
	} {
		t.Run(tc.version+"/"+tc.formats, func(t *testing.T) {
			s := newStack(t, &devmgmt.Policy{})
			p := newPeer(t, s, "dev-"+tc.version, tc.version)
			p.formats = tc.formats
			p.register()
			ctx := context.Background()

			// Read an instance: the requested format follows the
			// client's version and announced formats.
			rs, err := values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.NewPath(3, 0)}}))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.lastRequest(), "accept="+strconv.Itoa(int(tc.wantAccept))) {
				t.Errorf("request %q, want accept %d", p.lastRequest(), tc.wantAccept)
			}
			if v := value(t, rs, pManufacturer); v.StringValue() != "flownexus" {
				t.Errorf("manufacturer %#v", v)
			}
			if v := value(t, rs, lwm2m.NewPath(3, 0, 7, 1)); v.IntValue() != 5000 || v.Type() != lwm2m.TypeInteger {
				t.Errorf("multi-instance value %#v", v)
			}
			// Read a single resource and a resource instance.
			rs, err = values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pTemp}}))
			if err != nil || len(rs) != 1 || rs[0].Value.FloatValue() != 21.5 {
				t.Fatalf("read temp: %v %v", rs, err)
			}
			if tc.version != "1.0" {
				rs, err = values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 7, 0)}}))
				if err != nil || len(rs) != 1 || rs[0].Value.IntValue() != 3800 {
					t.Fatalf("read resource instance: %v %v", rs, err)
				}
			}

			// Write a single resource (text/plain), replace a
			// multi-instance resource, partially update an instance.
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pModel}, Values: []lwm2m.Record{{Path: pModel, Value: lwm2m.String("model-x")}}})); err != nil {
				t.Fatal(err)
			}
			if v, _ := p.get(pModel); v.StringValue() != "model-x" {
				t.Fatalf("model after write: %#v", v)
			}
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pPower}, Values: []lwm2m.Record{
				{Path: pPower.Child(0), Value: lwm2m.Int(1)}, {Path: pPower.Child(5), Value: lwm2m.Int(2)},
			}})); err != nil {
				t.Fatal(err)
			}
			if _, ok := p.get(pPower.Child(1)); ok {
				t.Fatal("replace kept instance 1")
			}
			if v, _ := p.get(pPower.Child(5)); v.IntValue() != 2 {
				t.Fatalf("instance 5: %#v", v)
			}
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0)}, Mode: devmgmt.Update, Values: []lwm2m.Record{
				{Path: pUnits, Value: lwm2m.String("K")},
			}})); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(p.lastRequest(), "POST") {
				t.Errorf("partial update sent as %q", p.lastRequest())
			}
			if v, _ := p.get(pTemp); v.FloatValue() != 21.5 {
				t.Fatal("partial update removed another resource")
			}

			// Execute with arguments.
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindExecute, Paths: []lwm2m.Path{lwm2m.NewPath(3, 0, 4)}, Args: "0='now'"})); err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			exec := strings.Join(p.exec, ";")
			p.mu.Unlock()
			if exec != "/3/0/4 0='now'" {
				t.Fatalf("executed %q", exec)
			}

			// Create and delete an object instance.
			inst, err := location(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindCreate, Paths: []lwm2m.Path{lwm2m.NewPath(3303)}, Values: []lwm2m.Record{
				{Path: lwm2m.NewPath(3303, 1, 5700), Value: lwm2m.Float(-4)},
			}}))
			if err != nil || inst != lwm2m.NewPath(3303, 1) {
				t.Fatalf("create: %v %v", inst, err)
			}
			if v, _ := p.get(lwm2m.NewPath(3303, 1, 5700)); v.FloatValue() != -4 {
				t.Fatal("created instance missing")
			}
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindDelete, Paths: []lwm2m.Path{inst}})); err != nil {
				t.Fatal(err)
			}
			if _, ok := p.get(lwm2m.NewPath(3303, 1, 5700)); ok {
				t.Fatal("deleted instance still there")
			}

			// Discover and Write-Attributes.
			links, err := links(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindDiscover, Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0)}}))
			if err != nil || len(links) != 2 || links[0].Path != pTemp {
				t.Fatalf("discover: %+v %v", links, err)
			}
			pmin, pmax := int64(10), int64(60)
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWriteAttributes, Paths: []lwm2m.Path{pTemp}, Attributes: linkformat.Attributes{PMin: &pmin, PMax: &pmax}})); err != nil {
				t.Fatal(err)
			}
			p.mu.Lock()
			attrs := strings.Join(p.attrs["/3303/0/5700"], "&")
			p.mu.Unlock()
			if attrs != "pmin=10&pmax=60" {
				t.Fatalf("attributes %q", attrs)
			}

			if tc.version == "1.0" {
				return
			}
			// Composite read and write (1.1+).
			rs, err = values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindReadComposite, Paths: []lwm2m.Path{pTemp, pBattery}}))
			if err != nil || len(rs) != 2 || value(t, rs, pBattery).IntValue() != 88 {
				t.Fatalf("read-composite: %v %v", rs, err)
			}
			if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWriteComposite, Values: []lwm2m.Record{
				{Path: pModel, Value: lwm2m.String("m2")}, {Path: pUnits, Value: lwm2m.String("F")},
			}})); err != nil {
				t.Fatal(err)
			}
			if v, _ := p.get(pUnits); v.StringValue() != "F" {
				t.Fatalf("write-composite: units %#v", v)
			}
		})
	}
}

func TestAlternateRootPath(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	p := newPeer(t, s, "rooted", "1.1")
	p.root = "/lwm2m"
	p.register()
	rs, err := values(s.mgr.Do(context.Background(), p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pBattery}}))
	if err != nil || len(rs) != 1 || rs[0].Value.IntValue() != 88 {
		t.Fatalf("read under /lwm2m: %v %v", rs, err)
	}
	if !strings.Contains(p.lastRequest(), " /3/0/9 ") {
		t.Fatalf("request %q", p.lastRequest())
	}
}

func TestErrors(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	ctx := context.Background()
	if _, err := values(s.mgr.Do(ctx, "nobody", devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pTemp}})); !errors.Is(err, devmgmt.ErrOffline) {
		t.Fatalf("read of unregistered endpoint: %v", err)
	}
	p := newPeer(t, s, "err", "1.1")
	p.register()

	// A device error code is a failure that keeps the code.
	_, err := values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.NewPath(9, 0)}}))
	var ce *devmgmt.CoAPError
	if !errors.As(err, &ce) || ce.Code != codes.NotFound {
		t.Fatalf("read of missing object: %v", err)
	}
	p.mu.Lock()
	p.fail["/3/0/1"] = codes.MethodNotAllowed
	p.mu.Unlock()
	err = only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pModel}, Values: []lwm2m.Record{{Path: pModel, Value: lwm2m.String("x")}}}))
	if !errors.As(err, &ce) || ce.Code != codes.MethodNotAllowed || ce.Diagnostic != "forced failure" ||
		!strings.Contains(err.Error(), "4.05") {
		t.Fatalf("refused write: %v", err)
	}
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindDelete, Paths: []lwm2m.Path{lwm2m.NewPath(77, 0)}})); !errors.As(err, &ce) || ce.Code != codes.NotFound {
		t.Fatalf("delete of missing instance: %v", err)
	}

	// Invalid arguments are refused before anything is sent.
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindExecute, Paths: []lwm2m.Path{lwm2m.NewPath(3, 0)}, Args: ""})); !errors.Is(err, devmgmt.ErrInvalid) {
		t.Fatalf("execute of an instance: %v", err)
	}
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pModel}})); !errors.Is(err, devmgmt.ErrInvalid) {
		t.Fatalf("write of nothing: %v", err)
	}
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pModel}, Values: []lwm2m.Record{{Path: pTemp, Value: lwm2m.Float(1)}}})); !errors.Is(err, devmgmt.ErrInvalid) {
		t.Fatalf("write outside the path: %v", err)
	}

	// A device that acknowledges but never answers times out at the
	// deadline.
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = values(s.mgr.Do(tctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pTemp}}))
	if !errors.Is(err, devmgmt.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent device: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("timed out after %v, before the deadline", d)
	}
}

func TestObserveNotifyCancel(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	p := newPeer(t, s, "obs", "1.1")
	p.register()
	ctx := context.Background()

	obs, rs, err := observed(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{pTemp}}))
	if err != nil || len(rs) != 1 || rs[0].Value.FloatValue() != 21.5 {
		t.Fatalf("observe: %v %v", rs, err)
	}
	tok, _, ok := p.observerFor(false, pTemp)
	if !ok || tok != obs.Token {
		t.Fatalf("peer has no observation with the server's token")
	}
	reg, _ := s.reg.ByEndpoint(p.name)
	latest := func(path lwm2m.Path) []store.ResourceValue {
		vs, err := s.st.LatestResources(ctx, reg.EndpointID, path)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	if vs := latest(pTemp); len(vs) != 1 || vs[0].Value.FloatValue() != 21.5 {
		t.Fatalf("initial value not stored: %+v", vs)
	}

	// A confirmable notification is acknowledged after its value is
	// committed: it is in the store when the ACK arrives.
	p.set(pTemp, lwm2m.Float(23.25))
	if err := p.notify(tok); err != nil {
		t.Fatal(err)
	}
	if vs := latest(pTemp); len(vs) != 1 || vs[0].Value.FloatValue() != 23.25 {
		t.Fatalf("notified value not stored at ACK time: %+v", vs)
	}

	// The observation outlives the go-coap connection: close the
	// server's connection state for the device and notify again.
	cc, err := s.srv.Dial(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	_ = cc.Close()
	p.set(pTemp, lwm2m.Float(24))
	if err := p.notify(tok); err != nil {
		t.Fatal(err)
	}
	if vs := latest(pTemp); len(vs) != 1 || vs[0].Value.FloatValue() != 24 {
		t.Fatalf("value after connection reaped: %+v", vs)
	}

	// Composite observation: a notification becomes one event.
	cobs, rs, err := observed(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindObserveComposite, Paths: []lwm2m.Path{pTemp, pBattery}}))
	if err != nil || len(rs) != 2 || !cobs.Composite {
		t.Fatalf("observe-composite: %v %v", rs, err)
	}
	ctok, _, ok := p.observerFor(true, pTemp, pBattery)
	if !ok {
		t.Fatal("peer has no composite observation")
	}
	p.set(pBattery, lwm2m.Int(70))
	if err := p.notify(ctok); err != nil {
		t.Fatal(err)
	}
	vs := latest(pBattery)
	if len(vs) != 1 || vs[0].Value.IntValue() != 70 || vs[0].EventID == 0 {
		t.Fatalf("composite notification: %+v", vs)
	}
	evs, err := s.st.EventResources(ctx, vs[0].EventID)
	if err != nil || len(evs) != 2 {
		t.Fatalf("composite event values: %v %v", evs, err)
	}
	if got := s.mgr.Observations(p.name); len(got) != 2 {
		t.Fatalf("%d observations, want 2", len(got))
	}

	// Cancel both: the device drops them and the tokens are forgotten.
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindCancelObserve, Paths: []lwm2m.Path{pTemp}})); err != nil {
		t.Fatal(err)
	}
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindCancelObserveComposite, Paths: []lwm2m.Path{pTemp, pBattery}})); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := p.observerFor(false, pTemp); ok {
		t.Fatal("device still has the observation")
	}
	if _, _, ok := p.observerFor(true, pTemp, pBattery); ok {
		t.Fatal("device still has the composite observation")
	}
	if got := s.mgr.Observations(p.name); len(got) != 0 {
		t.Fatalf("observations left: %+v", got)
	}
	if err := only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindCancelObserve, Paths: []lwm2m.Path{pTemp}})); !errors.Is(err, devmgmt.ErrNoObservation) {
		t.Fatalf("second cancel: %v", err)
	}

	// Re-registering drops the server's observations, as the client does.
	if _, _, err := observed(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{pTemp}})); err != nil {
		t.Fatal(err)
	}
	p.register()
	if got := s.mgr.Observations(p.name); len(got) != 0 {
		t.Fatalf("observations after re-register: %+v", got)
	}
}

func TestAutoObserve(t *testing.T) {
	specs, err := devmgmt.ParseObserveSpecs("/3303/0/5700, /3304/0/5700, /5/0/3,/3/0/9+/3/0/0")
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, &devmgmt.Policy{Entries: specs})
	p := newPeer(t, s, "auto", "1.1")
	p.register()
	// The peer has 3303, 5 and 3 but not 3304.
	want := [][]lwm2m.Path{{pTemp}, {lwm2m.NewPath(5, 0, 3)}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		all := true
		for _, w := range want {
			if _, _, ok := p.observerFor(false, w...); !ok {
				all = false
			}
		}
		if _, _, ok := p.observerFor(true, pBattery, pManufacturer); !ok {
			all = false
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("auto-observations missing; peer requests: %v", p.requests)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.mgr.Observations(p.name); len(got) != 3 {
		t.Fatalf("%d observations, want 3", len(got))
	}
	p.mu.Lock()
	for _, r := range p.requests {
		if strings.Contains(r, "/3304") {
			t.Errorf("observed an object the device does not have: %s", r)
		}
	}
	p.mu.Unlock()
}

func TestParseObserveSpecs(t *testing.T) {
	specs, err := devmgmt.ParseObserveSpecs(" /1/0/1 ,/3/0/9+/3/0/0,")
	if err != nil || len(specs) != 2 || specs[0].Composite || !specs[1].Composite || specs[1].String() != "/3/0/9+/3/0/0" {
		t.Fatalf("%+v %v", specs, err)
	}
	for _, bad := range []string{"/x", "/", "3/0", "/1/0/1+/"} {
		if _, err := devmgmt.ParseObserveSpecs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if specs, err := devmgmt.ParseObserveSpecs(""); err != nil || len(specs) != 0 || specs == nil {
		t.Fatalf("empty list: %#v %v", specs, err)
	}
}

func TestLargeWriteIsBlockwise(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	p := newPeer(t, s, "big", "1.1")
	p.register()
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i)
	}
	pkg := lwm2m.NewPath(5, 0, 0)
	if err := only(s.mgr.Do(context.Background(), p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{pkg}, Values: []lwm2m.Record{{Path: pkg, Value: lwm2m.Opaque(big)}}})); err != nil {
		t.Fatal(err)
	}
	v, ok := p.get(pkg)
	if !ok || len(v.Opaque()) != len(big) || v.Opaque()[4999] != big[4999] {
		t.Fatalf("package not written whole: %d bytes", len(v.Opaque()))
	}
	// And read back (Block2).
	rs, err := values(s.mgr.Do(context.Background(), p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{pkg}}))
	if err != nil || len(rs) != 1 || len(rs[0].Value.Opaque()) != len(big) {
		t.Fatalf("read back: %v", err)
	}
}
