package devmgmt_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

var mp = lwm2m.MustParsePath

func paths(ps ...string) []lwm2m.Path {
	out := make([]lwm2m.Path, len(ps))
	for i, p := range ps {
		out[i] = mp(p)
	}
	return out
}

func TestCheckRefuses(t *testing.T) {
	rec := func(p string) []lwm2m.Record { return []lwm2m.Record{{Path: mp(p), Value: lwm2m.Int(1)}} }
	pmin := int64(10)
	bad := int64(-1)
	cbor, link := lwm2m.FormatCBOR, lwm2m.FormatLinkFormat
	type op = devmgmt.Operation
	for _, c := range []struct {
		op   op
		want string
	}{
		{op{Kind: "reboot"}, `unknown kind "reboot"`},
		{op{Kind: devmgmt.KindRead}, "read takes exactly one path, got 0"},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0", "/1/0")}, "read takes exactly one path, got 2"},
		{op{Kind: devmgmt.KindRead, Paths: []lwm2m.Path{lwm2m.Root}}, "read of the root path"},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0"), Values: rec("/3/0/1")}, "read takes no values"},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0"), Args: "x"}, "read takes no arguments"},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0"), Mode: devmgmt.Update}, "read takes no write mode"},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0"), Format: &link}, "read: format application/link-format is not supported"},
		{op{Kind: devmgmt.KindDiscover, Paths: paths("/3/0/11/0")}, "discover /3/0/11/0: want an object, object instance or resource"},
		{op{Kind: devmgmt.KindDiscover, Paths: paths("/3/0"), Format: &cbor}, "discover takes no format"},
		{op{Kind: devmgmt.KindWrite, Paths: paths("/1"), Values: rec("/1/0/1")}, "write to /1: want an object instance, resource or resource instance"},
		{op{Kind: devmgmt.KindWrite, Paths: paths("/1/0/1")}, "write to /1/0/1: no values"},
		{op{Kind: devmgmt.KindWrite, Paths: paths("/1/0/1"), Values: rec("/1/0/2")}, "write to /1/0/1: value for /1/0/2: want a resource or resource instance on or under /1/0/1"},
		{op{Kind: devmgmt.KindWrite, Paths: paths("/1/0/1"), Mode: 7, Values: rec("/1/0/1")}, "write mode 7"},
		{op{Kind: devmgmt.KindWriteComposite}, "write-composite: no values"},
		{op{Kind: devmgmt.KindWriteComposite, Paths: paths("/1/0/1"), Values: rec("/1/0/1")}, "write-composite takes its paths from its values"},
		{op{Kind: devmgmt.KindWriteComposite, Values: rec("/1/0")}, "write-composite: value for /1/0: want a resource or resource instance"},
		{op{Kind: devmgmt.KindWriteComposite, Values: rec("/1/0/1"), Format: &cbor}, "write-composite: format application/cbor: want"},
		{op{Kind: devmgmt.KindExecute, Paths: paths("/3/0")}, "execute /3/0: want a resource"},
		{op{Kind: devmgmt.KindWriteAttributes, Paths: paths("/3/0/9")}, "write-attributes on /3/0/9: no attributes"},
		{op{Kind: devmgmt.KindWriteAttributes, Paths: paths("/3/0/9"), Attributes: linkformat.Attributes{PMin: &bad}}, "write-attributes on /3/0/9: "},
		{op{Kind: devmgmt.KindRead, Paths: paths("/3/0/9"), Attributes: linkformat.Attributes{PMin: &pmin}}, "read takes no attributes"},
		{op{Kind: devmgmt.KindCreate, Paths: paths("/3303/0"), Values: rec("/3303/0/5700")}, "create under /3303/0: want an object"},
		{op{Kind: devmgmt.KindCreate, Paths: paths("/3303")}, "create under /3303: no values"},
		{op{Kind: devmgmt.KindCreate, Paths: paths("/3303"), Values: append(rec("/3303/0/5700"), rec("/3303/1/5700")...)}, "create under /3303: value for /3303/1/5700"},
		{op{Kind: devmgmt.KindDelete, Paths: paths("/3303")}, "delete /3303: want an object instance or resource instance"},
		{op{Kind: devmgmt.KindReadComposite}, "read-composite: no paths"},
		{op{Kind: devmgmt.KindObserveComposite, Paths: []lwm2m.Path{lwm2m.Root}}, "observe-composite of the root path"},
	} {
		_, err := c.op.Check(nil)
		if !errors.Is(err, devmgmt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want ErrInvalid with %q", c.op, err, c.want)
		}
	}
}

// TestCheckTypesValues: values are converted to their resources' types
// where that is exact, and refused otherwise, naming the path.
func TestCheckTypesValues(t *testing.T) {
	types := objects.Default().TypeOf
	write := func(p string, v lwm2m.Value) devmgmt.Operation {
		return devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: paths(p), Values: []lwm2m.Record{{Path: mp(p), Value: v}}}
	}
	for _, c := range []struct {
		op   devmgmt.Operation
		want lwm2m.Value
	}{
		{write("/3303/0/5700", lwm2m.Int(20)), lwm2m.Float(20)}, // float resource
		{write("/1/0/1", lwm2m.String("600")), lwm2m.Int(600)},  // integer resource
		{write("/1/0/1", lwm2m.Float(600)), lwm2m.Int(600)},     // exact
		{write("/3/0/13", lwm2m.String("2026-11-20T10:00:00Z")), lwm2m.Time(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))},
		{write("/3/0/13", lwm2m.Int(1_700_000_000)), lwm2m.TimeUnix(1_700_000_000)},
		{write("/1/0/6", lwm2m.Int(1)), lwm2m.Bool(true)},  // boolean resource
		{write("/1/0/7", lwm2m.Int(5)), lwm2m.String("5")}, // string resource
		{write("/1/0/10", lwm2m.String("3:0")), lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 0})},
		{write("/9999/0/1", lwm2m.Int(5)), lwm2m.Int(5)}, // unknown resource: as given
	} {
		got, err := c.op.Check(types)
		if err != nil {
			t.Errorf("%v: %v", c.op.Values, err)
			continue
		}
		if v := got.Values[0].Value; !v.Equal(c.want) || v.Type() != c.want.Type() {
			t.Errorf("%v: %#v, want %#v", c.op.Values, v, c.want)
		}
	}
	for _, c := range []struct {
		op   devmgmt.Operation
		want string
	}{
		{write("/1/0/1", lwm2m.String("soon")), `write to /1/0/1: value for /1/0/1: want integer, got string "soon"`},
		{write("/1/0/1", lwm2m.Float(1.5)), `value for /1/0/1: want integer, got float "1.5"`},
		{write("/1/0/6", lwm2m.Int(2)), `value for /1/0/6: want boolean`},
		{write("/1/0/1", lwm2m.None()), `value for /1/0/1: want integer, got none`},
		{write("/9999/0/1", lwm2m.None()), `value for /9999/0/1: no value`},
		{write("/3/0/4", lwm2m.Int(1)), `value for /3/0/4: want none`}, // executable
	} {
		_, err := c.op.Check(types)
		if !errors.Is(err, devmgmt.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want ErrInvalid with %q", c.op.Values, err, c.want)
		}
	}
}

// TestDoChecksFirst: Do refuses what Check refuses, with the same text,
// before it looks the endpoint up or sends anything.
func TestDoChecksFirst(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	p := newPeer(t, s, "check", "1.1")
	p.register()
	before := len(p.requestsCopy())
	op := devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: paths("/1/0/1"), Values: []lwm2m.Record{{Path: mp("/1/0/1"), Value: lwm2m.String("soon")}}}
	_, checkErr := s.mgr.Check(op)
	for _, ep := range []string{p.name, "nobody"} {
		_, err := s.mgr.Do(context.Background(), ep, op)
		if !errors.Is(err, devmgmt.ErrInvalid) || checkErr == nil || err.Error() != checkErr.Error() {
			t.Fatalf("Do on %q: %v, want Check's error %v", ep, err, checkErr)
		}
	}
	if n := len(p.requestsCopy()); n != before {
		t.Fatalf("%d requests sent for a refused operation", n-before)
	}
}

// TestDoFormat: an operation's Format overrides the format the Manager
// would choose from the registration.
func TestDoFormat(t *testing.T) {
	s := newStack(t, &devmgmt.Policy{})
	p := newPeer(t, s, "format", "1.1")
	p.register()
	ctx := context.Background()
	tlv, senmlJSON := lwm2m.FormatTLV, lwm2m.FormatSenMLJSON

	rs, err := values(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindRead, Paths: paths("/3/0"), Format: &tlv}))
	if err != nil || value(t, rs, pManufacturer).StringValue() != "flownexus" {
		t.Fatalf("read as TLV: %v %v", rs, err)
	}
	if !strings.Contains(p.lastRequest(), "accept="+strconv.Itoa(int(tlv))) {
		t.Fatalf("request %q, want accept %d", p.lastRequest(), tlv)
	}
	// A single resource is written as text/plain unless told otherwise.
	err = only(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: paths("/3/0/1"), Format: &senmlJSON,
		Values: []lwm2m.Record{{Path: pModel, Value: lwm2m.String("model-f")}}}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.lastRequest(), "cf="+strconv.Itoa(int(senmlJSON))) {
		t.Fatalf("request %q, want content format %d", p.lastRequest(), senmlJSON)
	}
	if v, _ := p.get(pModel); v.StringValue() != "model-f" {
		t.Fatalf("model after write: %#v", v)
	}
	obs, rs, err := observed(s.mgr.Do(ctx, p.name, devmgmt.Operation{Kind: devmgmt.KindObserve, Paths: []lwm2m.Path{pTemp}, Format: &tlv}))
	if err != nil || len(rs) != 1 || obs.Format != tlv {
		t.Fatalf("observe as TLV: %+v %v %v", obs, rs, err)
	}
}
