package jobs

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
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

func TestOperationRoundTrip(t *testing.T) {
	tlv := lwm2m.FormatTLV
	ops := []devmgmt.Operation{
		{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{mp("/3/0")}},
		{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{mp("/3/0")}, Format: &tlv},
		{Kind: devmgmt.KindDiscover, Paths: []lwm2m.Path{mp("/3303/0")}},
		{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{mp("/1/0/1")}, Values: []lwm2m.Record{{Path: mp("/1/0/1"), Value: lwm2m.Int(600)}}},
		{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{mp("/3303/0")}, Mode: devmgmt.Update, Values: []lwm2m.Record{
			{Path: mp("/3303/0/5750"), Value: lwm2m.String("a, \"quoted\" name")},
			{Path: mp("/3303/0/5700"), Value: lwm2m.Float(math.Pi)},
			{Path: mp("/3303/0/5701"), Value: lwm2m.Float(math.Inf(-1))},
		}},
		{Kind: devmgmt.KindWriteComposite, Values: []lwm2m.Record{
			{Path: mp("/1/0/1"), Value: lwm2m.Uint(math.MaxUint64)},
			{Path: mp("/3/0/13"), Value: lwm2m.TimeUnix(1_700_000_000)},
			{Path: mp("/3/0/16"), Value: lwm2m.Bool(true)},
			{Path: mp("/5/0/0"), Value: lwm2m.Opaque([]byte{0, 1, 0xff})},
			{Path: mp("/1/0/22/0"), Value: lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 0})},
		}},
		{Kind: devmgmt.KindExecute, Paths: []lwm2m.Path{mp("/3/0/4")}, Args: "0='v1',1"},
		{Kind: devmgmt.KindWriteAttributes, Paths: []lwm2m.Path{mp("/3303/0/5700")}, Attributes: attrs(t, "pmin=10", "gt=20.5", "st")},
		{Kind: devmgmt.KindCreate, Paths: []lwm2m.Path{mp("/3303")}, Values: []lwm2m.Record{{Path: mp("/3303/1/5700"), Value: lwm2m.Float(21)}}},
		{Kind: devmgmt.KindDelete, Paths: []lwm2m.Path{mp("/3303/1")}},
		{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{mp("/3303/0/5700")}},
		{Kind: devmgmt.KindCancelObserve, Paths: []lwm2m.Path{mp("/3303/0/5700")}},
		{Kind: devmgmt.KindReadComposite, Paths: []lwm2m.Path{mp("/3/0/0"), mp("/1/0")}},
		{Kind: devmgmt.KindObserveComposite, Paths: []lwm2m.Path{mp("/3/0/9"), mp("/3/0/10")}},
		{Kind: devmgmt.KindCancelObserveComposite, Paths: []lwm2m.Path{mp("/3/0/9"), mp("/3/0/10")}},
	}
	seen := map[devmgmt.Kind]bool{}
	for _, o := range ops {
		seen[o.Kind] = true
		if _, err := o.Check(nil); err != nil {
			t.Fatalf("%s: %v", o.Kind, err)
		}
		payload, err := encodePayload(o)
		if err != nil {
			t.Fatal(err)
		}
		stored := store.Operation{ID: 1, Kind: string(o.Kind), Paths: o.Targets(), Payload: payload}
		got, err := DecodeOperation(stored)
		if err != nil {
			t.Fatalf("%s: %v (payload %s)", o.Kind, err, payload)
		}
		if o.Kind == devmgmt.KindWriteComposite && len(stored.Paths) != len(o.Values) {
			t.Fatalf("write-composite stores paths %v", stored.Paths)
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", o.Kind, got, o)
		}
	}
	for _, k := range devmgmt.Kinds {
		if !seen[k] {
			t.Errorf("kind %s not covered", k)
		}
	}
}

func TestDecodeOperationRejectsForeignPayloads(t *testing.T) {
	for _, payload := range []string{
		`[1,2]`,
		`{"records":[{"path":"/1/0/1","type":"banana","value":"1"}]}`,
		`{"records":[{"path":"/1/0/1","type":"integer","value":"1.5"}]}`,
		`{"records":[{"path":"/1/0/1/2/3","type":"integer","value":"1"}]}`,
		`{"attributes":["pmin=x"]}`,
	} {
		op := store.Operation{ID: 7, Kind: "write", Paths: []lwm2m.Path{mp("/1/0/1")}, Payload: []byte(payload)}
		if _, err := DecodeOperation(op); !errors.Is(err, devmgmt.ErrInvalid) {
			t.Errorf("payload %s: %v, want ErrInvalid", payload, err)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	dim := 3
	res := devmgmt.Result{
		Values:      []lwm2m.Record{{Path: mp("/3/0/9"), Value: lwm2m.Int(87)}},
		Links:       []linkformat.DiscoverLink{{Path: mp("/3/0/7"), Attrs: attrs(t, "pmin=10"), Dim: &dim}, {Path: mp("/3/0"), Ver: "1.1"}},
		Location:    mp("/3303/2"),
		Observation: registry.Observation{Token: "\xca\xfe"},
	}
	raw, err := encodeResult(res)
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
	if raw, _ := encodeResult(devmgmt.Result{}); raw != nil {
		t.Fatalf("empty result encodes as %s", raw)
	}
	if got, err := DecodeResult(nil); err != nil || !reflect.DeepEqual(got, devmgmt.Result{}) {
		t.Fatalf("nil: %+v %v", got, err)
	}
	if _, err := DecodeResult([]byte(`{"observation":"zz"}`)); err == nil {
		t.Fatal("bad observation accepted")
	}
}
