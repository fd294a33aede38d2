package linkformat

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func i64(v int64) *int64     { return &v }
func f64(v float64) *float64 { return &v }
func ip(v int) *int          { return &v }

func TestParseDiscoverGolden(t *testing.T) {
	cases := []struct {
		file string
		want []DiscoverLink
	}{
		{"device.txt", []DiscoverLink{
			{Path: lwm2m.MustParsePath("/3"), Ver: "1.1"},
			{Path: lwm2m.MustParsePath("/3/0"), Attrs: Attributes{PMin: i64(10), PMax: i64(60)}},
			{Path: lwm2m.MustParsePath("/3/0/0")},
			{Path: lwm2m.MustParsePath("/3/0/1")},
			{Path: lwm2m.MustParsePath("/3/0/7"), Dim: ip(8), Attrs: Attributes{GT: f64(3.5), LT: f64(1.25), ST: f64(0.5)}},
			{Path: lwm2m.MustParsePath("/3/0/11"), Dim: ip(1)},
		}},
		{"zephyr.txt", []DiscoverLink{
			{Path: lwm2m.MustParsePath("/3303/0"), Attrs: Attributes{PMin: i64(10)}},
			{Path: lwm2m.MustParsePath("/3303/0/5700"), Attrs: Attributes{PMin: i64(5), PMax: i64(200)}},
			{Path: lwm2m.MustParsePath("/3303/0/5701")},
		}},
		{"lwm2m-1.2.txt", []DiscoverLink{
			{Path: lwm2m.MustParsePath("/3303/0/5700"), Attrs: Attributes{
				EPMin: i64(1), EPMax: i64(30), Edge: ip(1), Con: ip(0), HQMax: ip(10)}},
		}},
	}
	files := testdataFiles(t, "discover")
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, ok := files[c.file]
			if !ok {
				t.Fatalf("testdata/discover/%s missing", c.file)
			}
			delete(files, c.file)
			got, err := ParseDiscover(data)
			if err != nil {
				t.Fatalf("ParseDiscover(%q): %v", data, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParseDiscover(%q)\n got %s\nwant %s", data, FormatDiscover(got), FormatDiscover(c.want))
			}
			if text := FormatDiscover(got); string(text) != string(data) {
				t.Errorf("FormatDiscover\n got %s\nwant %s", text, data)
			}
		})
	}
	for name := range files {
		t.Errorf("testdata/discover/%s has no golden case", name)
	}
}

func TestParseDiscoverCases(t *testing.T) {
	got, err := ParseDiscover([]byte(`</3/0>;pmin=10;ssid=1;uri="coap://x";DIM=2, </>;ver="1.2", <3/0/7/1>`))
	if err != nil {
		t.Fatal(err)
	}
	want := []DiscoverLink{
		{Path: lwm2m.MustParsePath("/3/0"), Attrs: Attributes{PMin: i64(10)}, Dim: ip(2)},
		{Path: lwm2m.Root, Ver: "1.2"},
		{Path: lwm2m.MustParsePath("/3/0/7/1")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %s, want %s", FormatDiscover(got), FormatDiscover(want))
	}
	if got, err := ParseDiscover(nil); err != nil || got != nil {
		t.Errorf("ParseDiscover(nil) = %v, %v; want nil, nil", got, err)
	}
}

func TestParseDiscoverErrors(t *testing.T) {
	cases := []struct {
		name, in string
		field    string
		offset   int
	}{
		{"no <", `/3/0`, "<", 0},
		{"unterminated", `</3/0>,</3/0/1`, ">", 7},
		{"bad path", `</3/0>,</3/a>`, "path", 11},
		{"id 65535", `</65535>`, "path", 2},
		{"bad pmin", `</3/0>;pmin=ten`, "pmin", 12},
		{"negative pmax", `</3/0>;pmax=-1`, "pmax", 12},
		{"pmin flag", `</3/0>;pmin`, "pmin", 7},
		{"repeated pmin", `</3/0>;pmin=1;pmin=2`, "pmin", 14},
		{"nan gt", `</3/0/1>;gt=NaN`, "gt", 12},
		{"inf lt", `</3/0/1>;lt=Inf`, "lt", 12},
		{"hex st", `</3/0/1>;st=0x10`, "st", 12},
		{"negative st", `</3/0/1>;st=-1`, "st", 12},
		{"edge 2", `</3/0/1>;edge=2`, "edge", 14},
		{"con x", `</3/0/1>;con=x`, "con", 13},
		{"hqmax huge", `</3/0/1>;hqmax=99999999999`, "hqmax", 15},
		{"bad dim", `</3/0/7>;dim=x`, "dim", 13},
		{"dim too large", `</3/0/7>;dim=65536`, "dim", 13},
		{"repeated dim", `</3/0/7>;dim=1;dim=1`, "dim", 15},
		{"bad ver", `</3>;ver=1`, "ver", 9},
		{"repeated ver", `</3>;ver=1.0;ver=1.0`, "ver", 13},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDiscover([]byte(c.in))
			if err == nil {
				t.Fatalf("ParseDiscover(%q) = %v, want an error", c.in, got)
			}
			wantDecodeError(t, err, c.field, c.offset)
		})
	}
}

func randomAttributes(r *rand.Rand) Attributes {
	var a Attributes
	if r.IntN(2) == 0 {
		a.PMin = i64(r.Int64N(100000))
	}
	if r.IntN(2) == 0 {
		a.PMax = i64(r.Int64N(100000))
	}
	if r.IntN(2) == 0 {
		a.GT = f64(r.NormFloat64() * 1000)
	}
	if r.IntN(2) == 0 {
		a.LT = f64(-r.Float64())
	}
	if r.IntN(2) == 0 {
		a.ST = f64(r.Float64() * 10)
	}
	if r.IntN(3) == 0 {
		a.EPMin = i64(r.Int64N(100))
	}
	if r.IntN(3) == 0 {
		a.EPMax = i64(r.Int64N(1 << 40))
	}
	if r.IntN(3) == 0 {
		a.Edge = ip(r.IntN(2))
	}
	if r.IntN(3) == 0 {
		a.Con = ip(r.IntN(2))
	}
	if r.IntN(3) == 0 {
		a.HQMax = ip(r.IntN(1000))
	}
	return a
}

func TestDiscoverRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 1000 {
		links := make([]DiscoverLink, 1+r.IntN(6))
		for k := range links {
			ids := make([]uint16, r.IntN(5))
			for j := range ids {
				ids[j] = uint16(r.IntN(lwm2m.MaxID + 1))
			}
			links[k].Path = lwm2m.NewPath(ids...)
			links[k].Attrs = randomAttributes(r)
			if r.IntN(3) == 0 {
				links[k].Dim = ip(r.IntN(lwm2m.MaxID + 2))
			}
			if r.IntN(4) == 0 {
				links[k].Ver = "1.2"
			}
		}
		text := FormatDiscover(links)
		got, err := ParseDiscover(text)
		if err != nil {
			t.Fatalf("case %d: ParseDiscover(%q): %v", i, text, err)
		}
		if !reflect.DeepEqual(got, links) {
			t.Fatalf("case %d: round trip via %q\n got %s", i, text, FormatDiscover(got))
		}
	}
}

func BenchmarkParseDiscover(b *testing.B) {
	data := []byte(`</3>;ver=1.1,</3/0>;pmin=10;pmax=60,</3/0/0>,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/7>;dim=8;gt=3.5;lt=1.25;st=0.5,</3/0/11>;dim=1,</3/0/13>,</3/0/14>,</3/0/15>,</3/0/16>`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseDiscover(data); err != nil {
			b.Fatal(err)
		}
	}
}
