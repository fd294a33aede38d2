package linkformat

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestAttrNames(t *testing.T) {
	for a := range numAttrs {
		got, ok := ParseAttr(a.String())
		if !ok || got != a {
			t.Errorf("ParseAttr(%q) = %v, %v; want %v", a.String(), got, ok, a)
		}
	}
	for _, n := range []string{"", "PMIN", "dim", "ver", "pmin "} {
		if _, ok := ParseAttr(n); ok {
			t.Errorf("ParseAttr(%q) accepted a name that is not an attribute", n)
		}
	}
	if s := Attr(200).String(); s != "attr(200)" {
		t.Errorf("Attr(200).String() = %q", s)
	}
}

func TestParseQuery(t *testing.T) {
	q := []string{"pmin=10", "pmax=600", "gt=25.5", "lt=-3", "st=0.25", "epmin=1", "epmax=60", "edge=1", "con=0", "hqmax=5"}
	got, err := ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	want := Attributes{PMin: i64(10), PMax: i64(600), GT: f64(25.5), LT: f64(-3), ST: f64(0.25),
		EPMin: i64(1), EPMax: i64(60), Edge: ip(1), Con: ip(0), HQMax: ip(5)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseQuery = %v, want %v", got.Query(), want.Query())
	}
	if !reflect.DeepEqual(got.Query(), q) {
		t.Errorf("Query() = %q, want %q", got.Query(), q)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	unset, err := ParseQuery([]string{"pmin", "gt=1", "st"})
	if err != nil {
		t.Fatal(err)
	}
	if unset.PMin != nil || unset.ST != nil || *unset.GT != 1 ||
		unset.Unset != AttrSet(0).With(AttrPMin).With(AttrST) {
		t.Errorf("ParseQuery with removals = %+v", unset)
	}
	if q := unset.Query(); !reflect.DeepEqual(q, []string{"gt=1", "pmin", "st"}) {
		t.Errorf("Query() = %q", q)
	}

	empty, err := ParseQuery(nil)
	if err != nil || !empty.IsZero() || empty.Query() != nil {
		t.Errorf("ParseQuery(nil) = %+v, %v", empty, err)
	}
}

func TestParseQueryErrors(t *testing.T) {
	cases := []struct {
		name  string
		q     []string
		field string
		index int
	}{
		{"unknown", []string{"pmin=1", "foo=2"}, "foo", 1},
		{"upper case", []string{"PMIN=1"}, "PMIN", 0},
		{"repeated", []string{"pmin=1", "pmax=2", "pmin=3"}, "pmin", 2},
		{"set and unset", []string{"pmin", "pmin=3"}, "pmin", 1},
		{"bad int", []string{"pmax=1.5"}, "pmax", 0},
		{"negative period", []string{"pmin=-1"}, "pmin", 0},
		{"empty value", []string{"pmin="}, "pmin", 0},
		{"overflow", []string{"epmax=9223372036854775808"}, "epmax", 0},
		{"nan", []string{"gt=NaN"}, "gt", 0},
		{"huge float", []string{"lt=1e400"}, "lt", 0},
		{"negative step", []string{"st=-0.5"}, "st", 0},
		{"edge 2", []string{"edge=2"}, "edge", 0},
		{"con -1", []string{"con=-1"}, "con", 0},
		{"hqmax words", []string{"hqmax=ten"}, "hqmax", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseQuery(c.q)
			if err == nil {
				t.Fatalf("ParseQuery(%q) = %+v, want an error", c.q, a)
			}
			wantDecodeError(t, err, c.field, c.index)
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		a     Attributes
		field string // "" when valid
	}{
		{"empty", Attributes{}, ""},
		{"pmin = pmax", Attributes{PMin: i64(5), PMax: i64(5)}, ""},
		{"pmin > pmax", Attributes{PMin: i64(6), PMax: i64(5)}, "pmin"},
		{"only pmin", Attributes{PMin: i64(600)}, ""},
		{"epmin > epmax", Attributes{EPMin: i64(6), EPMax: i64(5)}, "epmin"},
		{"negative pmax", Attributes{PMax: i64(-1)}, "pmax"},
		{"negative epmin", Attributes{EPMin: i64(-1)}, "epmin"},
		{"lt < gt", Attributes{LT: f64(1), GT: f64(2)}, ""},
		{"lt = gt", Attributes{LT: f64(2), GT: f64(2)}, "lt"},
		{"lt > gt", Attributes{LT: f64(3), GT: f64(2)}, "lt"},
		{"step fits", Attributes{LT: f64(0), GT: f64(10), ST: f64(4.9)}, ""},
		{"step too large", Attributes{LT: f64(0), GT: f64(10), ST: f64(5)}, "st"},
		{"negative step", Attributes{ST: f64(-1)}, "st"},
		{"nan gt", Attributes{GT: f64(math.NaN())}, "gt"},
		{"inf lt", Attributes{LT: f64(math.Inf(-1))}, "lt"},
		{"edge 2", Attributes{Edge: ip(2)}, "edge"},
		{"con -1", Attributes{Con: ip(-1)}, "con"},
		{"negative hqmax", Attributes{HQMax: ip(-1)}, "hqmax"},
		{"unset ignored", Attributes{Unset: AttrSet(0).With(AttrPMin)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.a.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantDecodeError(t, err, c.field, -1)
		})
	}
}

func TestMerge(t *testing.T) {
	inForce := Attributes{PMin: i64(10), PMax: i64(60), GT: f64(30)}
	req, err := ParseQuery([]string{"pmax=120", "gt", "st=1"})
	if err != nil {
		t.Fatal(err)
	}
	got := inForce.Merge(req)
	want := Attributes{PMin: i64(10), PMax: i64(120), ST: f64(1)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge = %q, want %q", got.Query(), want.Query())
	}
	if got.Unset != 0 {
		t.Errorf("Merge left Unset = %b", got.Unset)
	}
	if *inForce.PMax != 60 || inForce.GT == nil {
		t.Error("Merge modified its receiver")
	}
	if s := got.Set(); s != AttrSet(0).With(AttrPMin).With(AttrPMax).With(AttrST) {
		t.Errorf("Set() = %b", s)
	}
}

func TestQueryRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 1000 {
		a := randomAttributes(r)
		for at := range numAttrs {
			if !a.has(at) && r.IntN(4) == 0 {
				a.Unset = a.Unset.With(at)
			}
		}
		got, err := ParseQuery(a.Query())
		if err != nil {
			t.Fatalf("case %d: ParseQuery(%q): %v", i, a.Query(), err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("case %d: round trip via %q: got %q", i, a.Query(), got.Query())
		}
	}
}
