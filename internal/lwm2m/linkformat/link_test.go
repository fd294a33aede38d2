package linkformat

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// wantDecodeError fails unless err is a *lwm2m.DecodeError for link-format
// with the given field and offset.
func wantDecodeError(t *testing.T, err error, field string, offset int) {
	t.Helper()
	var de *lwm2m.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want *lwm2m.DecodeError", err, err)
	}
	if !errors.Is(err, lwm2m.ErrSyntax) {
		t.Errorf("error %v does not wrap lwm2m.ErrSyntax", err)
	}
	if de.Format != lwm2m.FormatLinkFormat || de.Field != field || de.Offset != offset {
		t.Errorf("error = %v (format %d, field %q, offset %d), want field %q at offset %d",
			err, de.Format, de.Field, de.Offset, field, offset)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, in string
		want     []Link
	}{
		{"empty", "", nil},
		{"only whitespace", " \r\n\t", nil},
		{"single", "</3/0>", []Link{{Target: "/3/0"}}},
		{"params", `</>;rt="oma.lwm2m";ct=11543;obs`, []Link{{Target: "/", Params: []Param{
			{"rt", "oma.lwm2m", true}, {"ct", "11543", true}, {"obs", "", false}}}}},
		{"quoted list and escapes", `<x>;ct="110 112";title="a \"b\" \\c"`, []Link{{Target: "x", Params: []Param{
			{"ct", "110 112", true}, {"title", `a "b" \c`, true}}}}},
		{"repeated attribute", `</a>;rt=x;rt=y`, []Link{{Target: "/a", Params: []Param{{"rt", "x", true}, {"rt", "y", true}}}}},
		{"whitespace everywhere", " </1/0> ; ver = 1.1 ,\r\n </2> ;empty\n", []Link{
			{Target: "/1/0", Params: []Param{{"ver", "1.1", true}}},
			{Target: "/2", Params: []Param{{"empty", "", false}}}}},
		{"empty value", `</a>;x=;y=""`, []Link{{Target: "/a", Params: []Param{{"x", "", true}, {"y", "", true}}}}},
		{"ptoken with = and <", `</a>;anchor=<x>=y`, []Link{{Target: "/a", Params: []Param{{"anchor", "<x>=y", true}}}}},
		{"utf-8 in quotes", `</a>;title="Température"`, []Link{{Target: "/a", Params: []Param{{"title", "Température", true}}}}},
		{"extended name", `</a>;title*=UTF-8'de'n%c3%a4chstes`, []Link{{Target: "/a", Params: []Param{{"title*", "UTF-8'de'n%c3%a4chstes", true}}}}},
		{"uri with query", `<coap://h:5683/rd?ep=x>`, []Link{{Target: "coap://h:5683/rd?ep=x"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Parse(%q)\n got %#v\nwant %#v", c.in, got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		field    string
		offset   int
	}{
		{"no <", "/3/0", "<", 0},
		{"second link without <", "</1/0>,/3/0", "<", 7},
		{"unterminated target", "</1/0>,</3/0", ">", 7},
		{"trailing comma", "</1/0>,", "<", 7},
		{"trailing comma and space", "</1/0>, ", "<", 8},
		{"missing comma", "</1/0></3/0>", ",", 6},
		{"garbage after params", "</1/0>;a=1 b", ",", 11},
		{"space in target", "</1 /0>", "target", 3},
		{"control character in target", "</1\x01/0>", "target", 3},
		{"quote in target", `</1"/0>`, "target", 3},
		{"missing parameter name", "</1/0>;=3", "param", 7},
		{"bad parameter name", "</1/0>;@x", "param", 7},
		{"unterminated quote", `</1/0>;rt="oma`, `"`, 10},
		{"backslash at end of quote", `</1/0>;rt="oma\`, `"`, 10},
		{"control character in value", "</1/0>;a=b\x01c", "a", 10},
		{"quote inside token", `</1/0>;a=b"c"`, "a", 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			links, err := Parse([]byte(c.in))
			if links != nil {
				t.Errorf("Parse(%q) returned links %v with an error", c.in, links)
			}
			wantDecodeError(t, err, c.field, c.offset)
		})
	}
}

func TestParseTooManyLinks(t *testing.T) {
	in := strings.Repeat("<>,", MaxLinks) + "<>"
	_, err := Parse([]byte(in))
	wantDecodeError(t, err, "link", 3*MaxLinks)

	links, err := Parse([]byte(in[:len(in)-3]))
	if err != nil || len(links) != MaxLinks {
		t.Fatalf("Parse of %d links: %d links, %v", MaxLinks, len(links), err)
	}
}

func TestLinkGet(t *testing.T) {
	l := Link{Target: "/", Params: []Param{{"rt", "a", true}, {"RT", "b", true}, {"obs", "", false}}}
	if v, ok := l.Get("Rt"); !ok || v != "a" {
		t.Errorf(`Get("Rt") = %q, %v, want "a", true`, v, ok)
	}
	if v, ok := l.Get("obs"); !ok || v != "" {
		t.Errorf(`Get("obs") = %q, %v, want "", true`, v, ok)
	}
	if _, ok := l.Get("ct"); ok {
		t.Error(`Get("ct") found a parameter that is not there`)
	}
}

func TestFormat(t *testing.T) {
	links := []Link{
		{Target: "/", Params: []Param{{"rt", "oma.lwm2m", true}, {"ct", "11543", true}}},
		{Target: "/3", Params: []Param{{"ver", "1.1", true}}},
		{Target: "/3/0", Params: []Param{{"obs", "", false}, {"ct", "110 112", true}, {"x", "", true}, {"t", `a"b\`, true}}},
	}
	want := `</>;rt="oma.lwm2m";ct=11543,</3>;ver=1.1,</3/0>;obs;ct="110 112";x="";t="a\"b\\"`
	if got := string(Format(links)); got != want {
		t.Errorf("Format\n got %s\nwant %s", got, want)
	}
	if got := Format(nil); len(got) != 0 {
		t.Errorf("Format(nil) = %q, want empty", got)
	}
}

// randomLinks builds links with targets and values that Format must round
// trip: arbitrary bytes in values, parameter names from the parmname set.
func randomLinks(r *rand.Rand) []Link {
	const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~*"
	const targetChars = "abcdefghijklmnopqrstuvwxyz0123456789/:?=&%.-_~;,"
	pick := func(set string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[r.IntN(len(set))]
		}
		return string(b)
	}
	links := make([]Link, 1+r.IntN(5))
	for i := range links {
		links[i].Target = pick(targetChars, r.IntN(12))
		for range r.IntN(4) {
			p := Param{Name: pick(nameChars, 1+r.IntN(6)), HasValue: r.IntN(4) != 0}
			if p.HasValue {
				b := make([]byte, r.IntN(10))
				for k := range b {
					b[k] = byte(r.IntN(256))
				}
				p.Value = string(b)
			}
			links[i].Params = append(links[i].Params, p)
		}
	}
	return links
}

func TestFormatParseRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		links := randomLinks(r)
		text := Format(links)
		got, err := Parse(text)
		if err != nil {
			t.Fatalf("case %d: Parse(Format(%#v)) = %v\ntext %q", i, links, err, text)
		}
		if !reflect.DeepEqual(got, links) {
			t.Fatalf("case %d: round trip\n got %#v\nwant %#v\ntext %q", i, got, links, text)
		}
	}
}

// testdataFiles returns the contents of every file under testdata/dir.
func testdataFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata in %s: %v", dir, err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestParseTestdata(t *testing.T) {
	for _, dir := range []string{"registration", "discover"} {
		for name, data := range testdataFiles(t, dir) {
			links, err := Parse(data)
			if err != nil {
				t.Errorf("%s/%s: %v", dir, name, err)
				continue
			}
			if len(links) == 0 {
				t.Errorf("%s/%s: no links", dir, name)
			}
			again, err := Parse(Format(links))
			if err != nil || !reflect.DeepEqual(again, links) {
				t.Errorf("%s/%s: Format/Parse round trip: %v\n got %v\nwant %v", dir, name, err, again, links)
			}
		}
	}
}
