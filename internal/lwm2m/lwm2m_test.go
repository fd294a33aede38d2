package lwm2m

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	good := map[string][]uint16{
		"/":            nil,
		"/3":           {3},
		"/3/0":         {3, 0},
		"/3/0/":        {3, 0},
		"/3/0/1":       {3, 0, 1},
		"/3/0/7/1":     {3, 0, 7, 1},
		"/65534/65534": {65534, 65534},
		"/10240/0/2":   {10240, 0, 2},
	}
	for s, ids := range good {
		p, err := ParsePath(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if !slices.Equal(p.IDs(), ids) || p.Depth() != len(ids) {
			t.Errorf("%q: ids %v depth %d", s, p.IDs(), p.Depth())
		}
	}
	for _, s := range []string{"", "3/0", "//", "/3//1", "/a", "/-1", "/65535", "/70000", "/1/2/3/4/5", "/01", "/3/ 0", "/+3"} {
		if _, err := ParsePath(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestPathFormatAndCompare(t *testing.T) {
	for _, s := range []string{"/", "/3", "/3/0", "/3/0/1", "/3/0/7/1"} {
		if got := MustParsePath(s).String(); got != s {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
	ordered := []string{"/", "/1", "/1/0", "/1/0/1", "/3", "/3/0", "/3/0/7", "/3/0/7/0", "/3/0/7/1", "/3/0/8", "/3/1", "/3303/0/5700"}
	for i := range ordered {
		for j := range ordered {
			a, b := MustParsePath(ordered[i]), MustParsePath(ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestPathPrefixParentChild(t *testing.T) {
	p := MustParsePath("/3/0/7/1")
	for _, pre := range []string{"/", "/3", "/3/0", "/3/0/7", "/3/0/7/1"} {
		if !p.HasPrefix(MustParsePath(pre)) {
			t.Errorf("%s lacks prefix %s", p, pre)
		}
	}
	for _, not := range []string{"/4", "/3/1", "/3/0/70", "/3/0/7/1/"} {
		q := MustParsePath(not)
		if q != p && p.HasPrefix(q) {
			t.Errorf("%s has prefix %s", p, q)
		}
	}
	if MustParsePath("/3").HasPrefix(MustParsePath("/3/0")) {
		t.Error("/3 has prefix /3/0")
	}
	if p.Parent() != MustParsePath("/3/0/7") || Root.Parent() != Root {
		t.Error("Parent")
	}
	if MustParsePath("/3/0").Child(9) != MustParsePath("/3/0/9") {
		t.Error("Child")
	}
	if p.Object() != 3 || p.Instance() != 0 || p.Resource() != 7 || p.ResourceInstance() != 1 {
		t.Error("accessors")
	}
	var q Path
	if err := q.UnmarshalText([]byte("/5/0/3")); err != nil || q.String() != "/5/0/3" {
		t.Errorf("UnmarshalText: %v %v", q, err)
	}
}

func TestParseType(t *testing.T) {
	for s, want := range map[string]Type{
		"String": TypeString, "Integer": TypeInteger, "Unsigned Integer": TypeUnsigned, "Float": TypeFloat,
		"Boolean": TypeBoolean, "Opaque": TypeOpaque, "Time": TypeTime, "Objlnk": TypeObjlnk, "Corelnk": TypeCorelnk,
		"": TypeNone, "none": TypeNone, "unsigned": TypeUnsigned,
	} {
		got, err := ParseType(s)
		if err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v; want %v", s, got, err, want)
		}
		if again, _ := ParseType(want.String()); again != want {
			t.Errorf("ParseType(%v.String()) = %v", want, again)
		}
	}
	if _, err := ParseType("Flaot"); err == nil {
		t.Error("bad type accepted")
	}
}

func TestValueTextRoundTrip(t *testing.T) {
	vals := []Value{
		Int(-5), Int(math.MinInt64), Int(math.MaxInt64), Uint(math.MaxUint64), Float(-1.5), Float(3.14159),
		Bool(true), Bool(false), String(""), String("héllo, wörld"), Opaque([]byte{0, 1, 0xff}), Opaque(nil),
		TimeUnix(1700000000), TimeUnix(-1), Objlnk(ObjLink{3, 0}), Objlnk(ObjLink{65535, 65535}), Corelnk("</3/0>"),
	}
	for _, v := range vals {
		got, err := ParseText(v.Type(), v.String())
		if err != nil {
			t.Errorf("%#v: %v", v, err)
			continue
		}
		if v.Type() == TypeOpaque && len(v.Opaque()) == 0 && len(got.Opaque()) == 0 {
			continue
		}
		if !got.Equal(v) {
			t.Errorf("ParseText(%v, %q) = %#v, want %#v", v.Type(), v.String(), got, v)
		}
	}
	for _, bad := range []struct {
		t Type
		s string
	}{{TypeInteger, "1.5"}, {TypeUnsigned, "-1"}, {TypeBoolean, "2"}, {TypeObjlnk, "3"}, {TypeObjlnk, "3:70000"}, {TypeFloat, "x"}, {TypeOpaque, "!!"}} {
		if _, err := ParseText(bad.t, bad.s); err == nil {
			t.Errorf("ParseText(%v, %q) accepted", bad.t, bad.s)
		}
	}
}

func TestValueConvert(t *testing.T) {
	ok := []struct {
		in   Value
		to   Type
		want Value
	}{
		{Int(5), TypeUnsigned, Uint(5)},
		{Int(5), TypeFloat, Float(5)},
		{Int(1), TypeBoolean, Bool(true)},
		{Int(1700000000), TypeTime, TimeUnix(1700000000)},
		{Uint(7), TypeInteger, Int(7)},
		{Float(2), TypeInteger, Int(2)},
		{Float(2), TypeUnsigned, Uint(2)},
		{String("42"), TypeInteger, Int(42)},
		{String("3:1"), TypeObjlnk, Objlnk(ObjLink{3, 1})},
		{String("</1>"), TypeCorelnk, Corelnk("</1>")},
		{Bool(true), TypeInteger, Int(1)},
		{TimeUnix(10), TypeInteger, Int(10)},
		{Objlnk(ObjLink{1, 2}), TypeString, String("1:2")},
	}
	for _, c := range ok {
		got, err := c.in.Convert(c.to)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%#v.Convert(%v) = %#v, %v; want %#v", c.in, c.to, got, err, c.want)
		}
	}
	bad := []struct {
		in Value
		to Type
	}{
		{Int(-1), TypeUnsigned}, {Int(2), TypeBoolean}, {Uint(math.MaxUint64), TypeInteger},
		{Float(1.5), TypeInteger}, {Float(-1), TypeUnsigned}, {Float(math.Inf(1)), TypeInteger},
		{Opaque([]byte{1}), TypeString}, {String("x"), TypeInteger},
	}
	for _, c := range bad {
		if _, err := c.in.Convert(c.to); !errors.Is(err, ErrConvert) {
			t.Errorf("%#v.Convert(%v): err %v, want ErrConvert", c.in, c.to, err)
		}
	}
	if _, err := Int(1<<53 + 1).Convert(TypeFloat); err == nil {
		t.Error("2^53+1 converted to float without loss")
	}
}

func TestTreeAndRecords(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	rs := []Record{
		{Path: MustParsePath("/3/0/7/1"), Value: Int(5000)},
		{Path: MustParsePath("/3/0/0"), Value: String("flownexus")},
		{Path: MustParsePath("/3/0/7/0"), Value: Int(3800)},
		{Path: MustParsePath("/3/1/0"), Value: String("second")},
		{Path: MustParsePath("/3/0/9"), Value: Int(90), Time: ts},
		{Path: MustParsePath("/3/0/9"), Value: Int(80), Time: ts.Add(time.Second)},
	}
	nodes, err := Tree(MustParsePath("/3"), rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Kind != KindInstance || nodes[0].Path.String() != "/3/0" || nodes[1].Path.String() != "/3/1" {
		t.Fatalf("instances: %+v", nodes)
	}
	res := nodes[0].Children
	if len(res) != 3 {
		t.Fatalf("resources of /3/0: %+v", res)
	}
	if res[0].Kind != KindResource || res[0].Value.StringValue() != "flownexus" {
		t.Errorf("/3/0/0: %+v", res[0])
	}
	if res[1].Kind != KindMultiResource || len(res[1].Children) != 2 || res[1].Children[1].Value.IntValue() != 5000 {
		t.Errorf("/3/0/7: %+v", res[1])
	}
	if res[2].Value.IntValue() != 80 || !res[2].Time.Equal(ts.Add(time.Second)) {
		t.Errorf("/3/0/9 should keep the last record: %+v", res[2])
	}
	flat := Records(nodes)
	if len(flat) != 5 || flat[0].Path.String() != "/3/0/0" || flat[4].Path.String() != "/3/1/0" {
		t.Errorf("Records: %+v", flat)
	}

	one, err := Tree(MustParsePath("/3/0/7"), rs[:1])
	if err != nil || len(one) != 1 || one[0].Kind != KindMultiResource {
		t.Errorf("resource-level tree: %+v %v", one, err)
	}
	if _, err := Tree(MustParsePath("/4"), rs); err == nil {
		t.Error("records outside base accepted")
	}
	if _, err := Tree(Root, []Record{{Path: MustParsePath("/3/0")}}); err == nil {
		t.Error("instance-depth record accepted")
	}
}

func TestNegotiation(t *testing.T) {
	p := MustParsePath("/3303/0")
	if f := ReadFormat(V1_0, nil, p); f != FormatTLV {
		t.Errorf("1.0: %v", f)
	}
	if f := ReadFormat(V1_1, nil, p); f != FormatSenMLCBOR {
		t.Errorf("1.1: %v", f)
	}
	if f := ReadFormat(V1_1, []MediaType{FormatTLV, FormatSenMLJSON}, p); f != FormatSenMLJSON {
		t.Errorf("announced: %v", f)
	}
	if f := CompositeFormat([]MediaType{FormatSenMLJSON}); f != FormatSenMLJSON {
		t.Errorf("composite: %v", f)
	}
	res := MustParsePath("/1/0/1")
	if f := WriteFormat(V1_1, nil, res, []Record{{Path: res, Value: Int(60)}}); f != FormatText {
		t.Errorf("single write: %v", f)
	}
	if f := WriteFormat(V1_1, nil, res, []Record{{Path: res, Value: Opaque([]byte{1})}}); f != FormatOpaque {
		t.Errorf("opaque write: %v", f)
	}
	if f := WriteFormat(V1_0, nil, MustParsePath("/1/0"), nil); f != FormatTLV {
		t.Errorf("instance write: %v", f)
	}
	for _, s := range []string{"", "1.0", "1.1", "1.2"} {
		if _, err := ParseVersion(s); err != nil {
			t.Errorf("ParseVersion(%q): %v", s, err)
		}
	}
	if _, err := ParseVersion("2.0"); err == nil {
		t.Error("2.0 accepted")
	}
}

func TestDecodeError(t *testing.T) {
	err := error(Errorf(FormatTLV, 12, "length", "past end of input (need %d bytes, have %d)", 4, 3))
	if got := err.Error(); got != "application/vnd.oma.lwm2m+tlv: offset 12: length: past end of input (need 4 bytes, have 3)" {
		t.Errorf("message %q", got)
	}
	if !errors.Is(err, ErrSyntax) {
		t.Error("DecodeError does not wrap ErrSyntax")
	}
	var de *DecodeError
	if !errors.As(err, &de) || de.Offset != 12 {
		t.Error("errors.As")
	}
}
