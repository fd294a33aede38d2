package linkformat

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func obj(id uint16, ver string, insts ...uint16) ObjectLink {
	return ObjectLink{ID: id, Version: ver, Instances: insts}
}

func cf(fs ...lwm2m.MediaType) []lwm2m.MediaType { return fs }

func TestParseRegistrationGolden(t *testing.T) {
	cases := []struct {
		file string
		want Registration
	}{
		{"lwm2m-1.0.txt", Registration{RootPath: "/", Objects: []ObjectLink{
			obj(1, "", 0), obj(3, "", 0), obj(5, "", 0)}}},
		{"lwm2m-1.1-json.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(1, "", 0), obj(3, "", 0), obj(4, "", 0), obj(5, "", 0)}}},
		{"lwm2m-1.2.txt", Registration{RootPath: "/",
			ContentFormats: cf(lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR),
			Objects:        []ObjectLink{obj(1, "1.1", 0), obj(3, "1.1", 0), obj(5, "", 0), obj(3303, "1.1", 0, 1)}}},
		{"alternate-root.txt", Registration{RootPath: "/lwm2m", Objects: []ObjectLink{
			obj(1, "", 0), obj(3, "", 0), obj(5, "")}}},
		{"alternate-root-ct.txt", Registration{RootPath: "/lwm2m", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(1, "", 0), obj(2, "", 0), obj(3, "", 0)}}},
		{"zephyr-1.0.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(1, "", 0), obj(3, "", 0), obj(5, "", 0), obj(3303, "", 0, 1)}}},
		{"zephyr-1.1.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(1, "1.1", 0), obj(3, "1.1", 0), obj(5, "", 0), obj(3303, "", 0)}}},
		{"zephyr-1.1-senml-cbor.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatSenMLCBOR), Objects: []ObjectLink{
			obj(1, "1.1", 0), obj(3, "1.0", 0), obj(5, "", 0), obj(3303, "", 0)}}},
		{"nrf91.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(1, "1.1", 0), obj(3, "1.1", 0), obj(4, "1.1", 0), obj(5, "", 0), obj(6, "", 0), obj(10, "1.1", 0),
			obj(3303, "1.1", 0), obj(3347, "1.1", 0), obj(10256, "", 0)}}},
		{"anjay.txt", Registration{RootPath: "/", Objects: []ObjectLink{
			obj(1, "", 1), obj(2, ""), obj(3, "", 0), obj(4, "", 0), obj(5, "", 0), obj(10, "1.1", 0), obj(11, ""), obj(16, "")}}},
		{"whitespace.txt", Registration{RootPath: "/",
			ContentFormats: cf(lwm2m.FormatCBOR, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, 11542, 11543),
			Objects:        []ObjectLink{obj(1, "1.1", 0), obj(3, "1.1", 0), obj(6, "", 0), obj(3303, "1.1", 0), obj(3441, "", 0)}}},
		{"relative.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{
			obj(3, "", 0), obj(19, "", 0)}}},
		{"leshan.txt", Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatJSON),
			Objects: []ObjectLink{obj(1, "", 0), obj(3, "", 0)}}},
		{"versioned-object.txt", Registration{RootPath: "/", Objects: []ObjectLink{
			obj(1, "", 0, 1), obj(3, "", 0), obj(44, "2.2", 0)}}},
	}
	files := testdataFiles(t, "registration")
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, ok := files[c.file]
			if !ok {
				t.Fatalf("testdata/registration/%s missing", c.file)
			}
			delete(files, c.file)
			got, err := ParseRegistration(data)
			if err != nil {
				t.Fatalf("ParseRegistration(%q): %v", data, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParseRegistration(%q)\n got %+v\nwant %+v", data, got, c.want)
			}
			again, err := ParseRegistration(FormatRegistration(got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("round trip via %q: %v\n got %+v\nwant %+v", FormatRegistration(got), err, again, got)
			}
		})
	}
	for name := range files {
		t.Errorf("testdata/registration/%s has no golden case", name)
	}
}

func TestParseRegistrationCases(t *testing.T) {
	cases := []struct {
		name, in string
		want     Registration
	}{
		{"empty", "", Registration{RootPath: "/"}},
		{"root link last", `</3/0>,</1/0>,</>;rt="oma.lwm2m";ct=110`, Registration{RootPath: "/",
			ContentFormats: cf(lwm2m.FormatSenMLJSON), Objects: []ObjectLink{obj(1, "", 0), obj(3, "", 0)}}},
		{"rt list", `</x/>;rt="core.rd oma.lwm2m",</x/3/0>`, Registration{RootPath: "/x", Objects: []ObjectLink{obj(3, "", 0)}}},
		{"relative under alternate root", `</lwm2m>;rt="oma.lwm2m",1/0,<3/0>`, Registration{}},
		{"relative under alternate root ok", `</lwm2m>;rt="oma.lwm2m",<1/0>,<3/0>`, Registration{RootPath: "/lwm2m",
			Objects: []ObjectLink{obj(1, "", 0), obj(3, "", 0)}}},
		{"duplicates merged", `</3/1>,</3/0>,</3>;ver=1.1,</3/0>,</3>;ver=1.1`, Registration{RootPath: "/",
			Objects: []ObjectLink{obj(3, "1.1", 0, 1)}}},
		{"ver on instance link", `</3/0>;ver=1.1`, Registration{RootPath: "/", Objects: []ObjectLink{obj(3, "1.1", 0)}}},
		{"other params ignored", `</>;rt="oma.lwm2m";ct=11543;hb,</3/0>;obs;foo="bar"`, Registration{RootPath: "/",
			ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{obj(3, "", 0)}}},
		{"trailing slashes", `</lwm2m//>;rt="oma.lwm2m",</lwm2m/3/0/>`, Registration{RootPath: "/lwm2m",
			Objects: []ObjectLink{obj(3, "", 0)}}},
		{"ct with commas inside quotes", `</>;rt="oma.lwm2m";ct="110,112"`, Registration{RootPath: "/",
			ContentFormats: cf(lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR)}},
		{"largest ID", `</65534/65534>`, Registration{RootPath: "/", Objects: []ObjectLink{obj(65534, "", 65534)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRegistration([]byte(c.in))
			if c.want.RootPath == "" {
				if err == nil {
					t.Fatalf("ParseRegistration(%q) = %+v, want an error", c.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRegistration(%q): %v", c.in, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParseRegistration(%q)\n got %+v\nwant %+v", c.in, got, c.want)
			}
		})
	}
}

func TestParseRegistrationRootPrecedence(t *testing.T) {
	// The rt link is the root; the slash link is then not under it.
	_, err := ParseRegistration([]byte(`</>;ct=110,</a>;rt="oma.lwm2m";ct=112,</a/3/0>`))
	wantDecodeError(t, err, "path", 1)

	got, err := ParseRegistration([]byte(`</a/3/0>,</a>;rt="oma.lwm2m";ct=112`))
	if err != nil {
		t.Fatal(err)
	}
	want := Registration{RootPath: "/a", ContentFormats: cf(lwm2m.FormatSenMLCBOR), Objects: []ObjectLink{obj(3, "", 0)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseRegistrationErrors(t *testing.T) {
	cases := []struct {
		name, in string
		field    string
		offset   int
	}{
		{"no <", `</1/0>,3/0`, "<", 7},
		{"unterminated <", `</1/0>,</3/0`, ">", 7},
		{"bad ID", `</1/0>,</3/x>`, "path", 11},
		{"negative ID", `</-3/0>`, "path", 2},
		{"ID 65535", `</1/0>,</65535/0>`, "path", 9},
		{"ID 65535 instance", `</3/65535>`, "path", 4},
		{"huge ID", `</3/99999999999999999999999>`, "path", 4},
		{"leading zero", `</03/0>`, "path", 2},
		{"empty segment", `<//3>`, "path", 2},
		{"too deep path", `</1/0>,</3/0/1>`, "path", 8},
		{"resource instance path", `</3/0/1/2>`, "path", 1},
		{"five IDs", `</3/0/1/2/3>`, "path", 10},
		{"name path", `</temp>`, "path", 2},
		{"outside alternate root", `</lwm2m>;rt="oma.lwm2m",</3/0>`, "path", 25},
		{"prefix but not under alternate root", `</lwm2m>;rt="oma.lwm2m",</lwm2mx/3/0>`, "path", 25},
		{"second root link", `</>;ct=110,</>`, "path", 12},
		{"alternate root repeated", `</lwm2m>;rt="oma.lwm2m",</lwm2m>`, "path", 31},
		{"two rt links", `</a>;rt="oma.lwm2m",</b>;rt="oma.lwm2m"`, "rt", 25},
		{"root with query", `</a?b>;rt="oma.lwm2m"`, "path", 3},
		{"bad ver", `</3>;ver=one`, "ver", 9},
		{"ver without minor", `</3>;ver=1`, "ver", 9},
		{"ver flag", `</3>;ver`, "ver", 0},
		{"conflicting ver", `</3>;ver=1.0,</3/0>,</3>;ver=1.1`, "ver", 29},
		{"bad ct", `</>;rt="oma.lwm2m";ct=json`, "ct", 22},
		{"ct too large", `</>;ct="110 70000"`, "ct", 7},
		{"empty ct", `</>;ct=""`, "ct", 7},
		{"ct flag", `</>;ct`, "ct", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRegistration([]byte(c.in))
			if err == nil {
				t.Fatalf("ParseRegistration(%q) = %+v, want an error", c.in, got)
			}
			wantDecodeError(t, err, c.field, c.offset)
		})
	}
}

func TestFormatRegistration(t *testing.T) {
	cases := []struct {
		reg  Registration
		want string
	}{
		{Registration{Objects: []ObjectLink{obj(1, "", 0), obj(3, "", 0), obj(5, "", 0)}}, `</1/0>,</3/0>,</5/0>`},
		{Registration{RootPath: "/", ContentFormats: cf(lwm2m.FormatJSON), Objects: []ObjectLink{obj(3, "", 0)}},
			`</>;rt="oma.lwm2m";ct=11543,</3/0>`},
		{Registration{ContentFormats: cf(110, 112, 11544), Objects: []ObjectLink{obj(3, "1.1", 0), obj(5, "")}},
			`</>;rt="oma.lwm2m";ct="110 112 11544",</3>;ver=1.1,</3/0>,</5>`},
		{Registration{RootPath: "/lwm2m", Objects: []ObjectLink{obj(1, "", 0), obj(3, "", 0, 1)}},
			`</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/3/0>,</lwm2m/3/1>`},
		{Registration{}, ``},
	}
	for _, c := range cases {
		if got := string(FormatRegistration(c.reg)); got != c.want {
			t.Errorf("FormatRegistration(%+v)\n got %s\nwant %s", c.reg, got, c.want)
		}
	}
}

func randomRegistration(r *rand.Rand) Registration {
	reg := Registration{RootPath: "/"}
	if r.IntN(3) == 0 {
		reg.RootPath = []string{"/lwm2m", "/a/b", "/x"}[r.IntN(3)]
	}
	for range r.IntN(4) {
		reg.ContentFormats = append(reg.ContentFormats, lwm2m.MediaType(r.IntN(65536)))
	}
	id := 0
	for range r.IntN(30) {
		id += 1 + r.IntN(3000)
		if id > lwm2m.MaxID {
			break
		}
		o := ObjectLink{ID: uint16(id)}
		if r.IntN(3) == 0 {
			o.Version = fmt.Sprintf("%d.%d", r.IntN(3), r.IntN(10))
		}
		inst := -1
		for range r.IntN(4) {
			inst += 1 + r.IntN(100)
			o.Instances = append(o.Instances, uint16(inst))
		}
		reg.Objects = append(reg.Objects, o)
	}
	return reg
}

func TestRegistrationRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		reg := randomRegistration(r)
		text := FormatRegistration(reg)
		got, err := ParseRegistration(text)
		if err != nil {
			t.Fatalf("case %d: ParseRegistration(%q): %v", i, text, err)
		}
		if !reflect.DeepEqual(got, reg) {
			t.Fatalf("case %d: round trip via %q\n got %+v\nwant %+v", i, text, got, reg)
		}
	}
}

func TestRegistrationObject(t *testing.T) {
	reg := Registration{Objects: []ObjectLink{obj(1, "", 0), obj(3, "1.1", 0), obj(3303, "", 0, 1)}}
	if o, ok := reg.Object(3303); !ok || !reflect.DeepEqual(o, obj(3303, "", 0, 1)) {
		t.Errorf("Object(3303) = %+v, %v", o, ok)
	}
	if _, ok := reg.Object(2); ok {
		t.Error("Object(2) found an object that is not there")
	}
}

// payload20 is a registration with 20 objects, most with one instance, in
// the shape of a well-equipped cellular device.
func payload20() []byte {
	var b strings.Builder
	b.WriteString(`</>;rt="oma.lwm2m";ct="110 112 11542 11543 11544"`)
	ids := []int{1, 3, 4, 5, 6, 7, 9, 10, 11, 16, 19, 3200, 3201, 3300, 3301, 3303, 3304, 3311, 3347, 10256}
	for i, id := range ids {
		if i%3 == 0 {
			fmt.Fprintf(&b, ",</%d>;ver=1.1", id)
		}
		fmt.Fprintf(&b, ",</%d/0>", id)
		if id == 3303 {
			b.WriteString(",</3303/1>,</3303/2>")
		}
	}
	return []byte(b.String())
}

func TestPayload20(t *testing.T) {
	reg, err := ParseRegistration(payload20())
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Objects) != 20 || len(reg.ContentFormats) != 5 {
		t.Fatalf("got %d objects and %d formats, want 20 and 5", len(reg.Objects), len(reg.ContentFormats))
	}
}

func BenchmarkParseRegistration(b *testing.B) {
	data := payload20()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRegistration(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data := payload20()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatRegistration(b *testing.B) {
	reg, err := ParseRegistration(payload20())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		FormatRegistration(reg)
	}
}
