package jobs

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

var mp = lwm2m.MustParsePath

func attrs(t *testing.T, q ...string) linkformat.Attributes {
	t.Helper()
	a, err := linkformat.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRequestRoundTrip(t *testing.T) {
	reqs := []Request{
		{Kind: KindRead, Paths: []lwm2m.Path{mp("/3/0")}},
		{Kind: KindDiscover, Paths: []lwm2m.Path{mp("/3303/0")}},
		{Kind: KindWrite, Paths: []lwm2m.Path{mp("/1/0/1")}, Records: []lwm2m.Record{{Path: mp("/1/0/1"), Value: lwm2m.Int(600)}}},
		{Kind: KindWrite, Paths: []lwm2m.Path{mp("/3303/0")}, Update: true, Records: []lwm2m.Record{
			{Path: mp("/3303/0/5750"), Value: lwm2m.String("a, \"quoted\" name")},
			{Path: mp("/3303/0/5700"), Value: lwm2m.Float(math.Pi)},
			{Path: mp("/3303/0/5701"), Value: lwm2m.Float(math.Inf(-1))},
		}},
		{Kind: KindWriteComposite, Records: []lwm2m.Record{
			{Path: mp("/1/0/1"), Value: lwm2m.Uint(math.MaxUint64)},
			{Path: mp("/3/0/13"), Value: lwm2m.TimeUnix(1_700_000_000)},
			{Path: mp("/3/0/16"), Value: lwm2m.Bool(true)},
			{Path: mp("/5/0/0"), Value: lwm2m.Opaque([]byte{0, 1, 0xff})},
			{Path: mp("/1/0/22/0"), Value: lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 0})},
		}},
		{Kind: KindExecute, Paths: []lwm2m.Path{mp("/3/0/4")}, Args: "0='v1',1"},
		{Kind: KindWriteAttributes, Paths: []lwm2m.Path{mp("/3303/0/5700")}, Attributes: attrs(t, "pmin=10", "gt=20.5", "st")},
		{Kind: KindCreate, Paths: []lwm2m.Path{mp("/3303")}, Records: []lwm2m.Record{{Path: mp("/3303/1/5700"), Value: lwm2m.Float(21)}}},
		{Kind: KindDelete, Paths: []lwm2m.Path{mp("/3303/1")}},
		{Kind: KindObserve, Paths: []lwm2m.Path{mp("/3303/0/5700")}},
		{Kind: KindCancelObserve, Paths: []lwm2m.Path{mp("/3303/0/5700")}},
		{Kind: KindReadComposite, Paths: []lwm2m.Path{mp("/3/0/0"), mp("/1/0")}},
		{Kind: KindObserveComposite, Paths: []lwm2m.Path{mp("/3/0/9"), mp("/3/0/10")}},
		{Kind: KindCancelObserveComposite, Paths: []lwm2m.Path{mp("/3/0/9"), mp("/3/0/10")}},
	}
	seen := map[Kind]bool{}
	for _, r := range reqs {
		seen[r.Kind] = true
		if err := r.Validate(); err != nil {
			t.Fatalf("%s: %v", r.Kind, err)
		}
		payload, err := r.payload()
		if err != nil {
			t.Fatal(err)
		}
		op := store.Operation{ID: 1, Kind: string(r.Kind), Paths: r.targetPaths(), Payload: payload}
		got, err := DecodeRequest(op)
		if err != nil {
			t.Fatalf("%s: %v (payload %s)", r.Kind, err, payload)
		}
		if r.Kind == KindWriteComposite && len(op.Paths) != len(r.Records) {
			t.Fatalf("write-composite stores paths %v", op.Paths)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", r.Kind, got, r)
		}
	}
	for _, k := range Kinds {
		if !seen[k] {
			t.Errorf("kind %s not covered", k)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	rec := func(p string) []lwm2m.Record { return []lwm2m.Record{{Path: mp(p), Value: lwm2m.Int(1)}} }
	bad := []struct {
		r    Request
		want string
	}{
		{Request{Kind: "reboot"}, "unknown kind"},
		{Request{Kind: KindRead}, "exactly one path"},
		{Request{Kind: KindRead, Paths: []lwm2m.Path{mp("/3/0"), mp("/1/0")}}, "exactly one path"},
		{Request{Kind: KindRead, Paths: []lwm2m.Path{lwm2m.Root}}, "root path"},
		{Request{Kind: KindDiscover, Paths: []lwm2m.Path{mp("/3/0/11/0")}}, "resource instance"},
		{Request{Kind: KindWrite, Paths: []lwm2m.Path{mp("/1")}, Records: rec("/1/0/1")}, "want an instance"},
		{Request{Kind: KindWrite, Paths: []lwm2m.Path{mp("/1/0/1")}}, "without values"},
		{Request{Kind: KindWrite, Paths: []lwm2m.Path{mp("/1/0/1")}, Records: rec("/1/0/2")}, "value for /1/0/2"},
		{Request{Kind: KindWriteComposite}, "without values"},
		{Request{Kind: KindWriteComposite, Records: []lwm2m.Record{{Path: mp("/1/0"), Value: lwm2m.Int(1)}}}, "want a resource"},
		{Request{Kind: KindExecute, Paths: []lwm2m.Path{mp("/3/0")}}, "want a resource"},
		{Request{Kind: KindWriteAttributes, Paths: []lwm2m.Path{mp("/3/0/9")}}, "without attributes"},
		{Request{Kind: KindCreate, Paths: []lwm2m.Path{mp("/3303/0")}, Records: rec("/3303/0/5700")}, "want an object"},
		{Request{Kind: KindCreate, Paths: []lwm2m.Path{mp("/3303")}, Records: append(rec("/3303/0/5700"), rec("/3303/1/5700")...)}, "value for /3303/1/5700"},
		{Request{Kind: KindDelete, Paths: []lwm2m.Path{mp("/3303")}}, "want an object instance"},
		{Request{Kind: KindReadComposite}, "without paths"},
		{Request{Kind: KindObserveComposite, Paths: []lwm2m.Path{lwm2m.Root}}, "root path"},
	}
	for _, c := range bad {
		err := c.r.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrInvalid with %q", c.r, err, c.want)
		}
	}
}

func TestDecodeRequestRejectsForeignPayloads(t *testing.T) {
	for _, payload := range []string{
		`[1,2]`,
		`{"records":[{"path":"/1/0/1","type":"banana","value":"1"}]}`,
		`{"records":[{"path":"/1/0/1","type":"integer","value":"1.5"}]}`,
		`{"records":[{"path":"/1/0/1/2/3","type":"integer","value":"1"}]}`,
		`{"attributes":["pmin=x"]}`,
	} {
		op := store.Operation{ID: 7, Kind: "write", Paths: []lwm2m.Path{mp("/1/0/1")}, Payload: []byte(payload)}
		if _, err := DecodeRequest(op); !errors.Is(err, ErrInvalid) {
			t.Errorf("payload %s: %v, want ErrInvalid", payload, err)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	dim := 3
	res := Result{
		Records:     []lwm2m.Record{{Path: mp("/3/0/9"), Value: lwm2m.Int(87)}},
		Links:       []linkformat.DiscoverLink{{Path: mp("/3/0/7"), Attrs: attrs(t, "pmin=10"), Dim: &dim}, {Path: mp("/3/0"), Ver: "1.1"}},
		Location:    mp("/3303/2"),
		Observation: []byte{0xca, 0xfe},
	}
	raw, err := res.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResult(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, res) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, res)
	}
	if raw, _ := (Result{}).encode(); raw != nil {
		t.Fatalf("empty result encodes as %s", raw)
	}
	if got, err := DecodeResult(nil); err != nil || !reflect.DeepEqual(got, Result{}) {
		t.Fatalf("nil: %+v %v", got, err)
	}
	if _, err := DecodeResult([]byte(`{"observation":"zz"}`)); err == nil {
		t.Fatal("bad observation accepted")
	}
}
