package objects

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestParseGood(t *testing.T) {
	data, err := os.ReadFile("testdata/good.xml")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := Parse("good.xml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 2 {
		t.Fatalf("got %d objects, want 2", len(defs))
	}
	soil := defs[0]
	if soil.ID != 32769 || soil.Name != "Soil Probe" || soil.Version != "1.1" || soil.URN != "urn:oma:lwm2m:x:32769" ||
		!soil.Multiple || soil.Mandatory || soil.Description != "Moisture & temperature <probe>." {
		t.Errorf("object header: %+v", soil)
	}
	want := []ResourceDef{
		{0, "Moisture", R, single, mand, lwm2m.TypeFloat, "0..100", "%RH", "Volumetric water content."},
		{1, "Depths", RW, multi, opt, lwm2m.TypeUnsigned, "", "cm", "Probe depths."},
		{2, "Calibrate", E, single, opt, lwm2m.TypeNone, "", "", ""},
		{3, "Raw", R, single, opt, lwm2m.TypeNone, "", "", "Declared without a type."},
	}
	if len(soil.Resources) != len(want) {
		t.Fatalf("resources: %+v", soil.Resources)
	}
	for i, w := range want {
		if soil.Resources[i] != w {
			t.Errorf("resource %d = %+v\nwant %+v", i, soil.Resources[i], w)
		}
	}
	temp := defs[1]
	if temp.ID != 3303 || temp.Version != "1.0" || len(temp.Resources) != 1 || temp.Resources[0].Type != lwm2m.TypeInteger {
		t.Errorf("second object: %+v", temp)
	}
}

// badFiles are the malformed files in testdata with the error each must
// produce, after "objects: testdata/".
var badFiles = map[string]string{
	"bad_type.xml":           "bad_type.xml:26: resource 5700: unknown type \"Flaot\"",
	"bad_ops.xml":            "bad_ops.xml:13: resource 5700: unknown operations \"RX\" (want R, W, RW, E or empty)",
	"bad_multiple.xml":       "bad_multiple.xml:8: object 3303: MultipleInstances \"Several\": want Multiple or Single",
	"missing_objectid.xml":   "missing_objectid.xml:3: object without <ObjectID>",
	"object_id_range.xml":    "object_id_range.xml:6: object ID \"65535\" is not a number in 0..65534",
	"resource_id_range.xml":  "resource_id_range.xml:21: resource ID \"70000\" is not a number in 0..65534",
	"duplicate_resource.xml": "duplicate_resource.xml:21: resource 5700 defined twice",
	"truncated.xml":          "truncated.xml:15: XML syntax error: unexpected EOF",
	"not_xml.xml":            "not_xml.xml:1: not an LwM2M DDF file: text outside the root element",
	"text_before_root.xml":   "text_before_root.xml:1: not an LwM2M DDF file: text outside the root element",
	"wrong_root.xml":         "wrong_root.xml:2: not an LwM2M DDF file: root element <units>, want <LWM2M>",
}

func TestLoadFileErrors(t *testing.T) {
	for file, want := range badFiles {
		t.Run(file, func(t *testing.T) {
			r := Default()
			n, err := r.LoadFile(filepath.Join("testdata", file))
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != "objects: testdata/"+want {
				t.Errorf("error\n got %s\nwant objects: testdata/%s", got, want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != filepath.Join("testdata", file) || pe.Line == 0 {
				t.Errorf("error is not a *ParseError with file and line: %#v", err)
			}
			if n != 0 || r.Len() != len(builtin) {
				t.Errorf("failed load changed the registry: n=%d, len=%d", n, r.Len())
			}
			if typ, _ := r.TypeOf(lwm2m.NewPath(3303, 0, 5700)); typ != lwm2m.TypeFloat {
				t.Errorf("failed load changed 3303/5700 to %s", typ)
			}
		})
	}
}

func TestParseErrorUnwrap(t *testing.T) {
	_, err := Default().LoadFile("testdata/bad_type.xml")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Err == nil || !strings.Contains(pe.Err.Error(), "unknown data type") {
		t.Errorf("bad type error does not wrap the type error: %#v", err)
	}
	_, err = Default().LoadFile("testdata/truncated.xml")
	if se := (*xml.SyntaxError)(nil); !errors.As(err, &se) || se.Line != 15 {
		t.Errorf("truncated file: %#v does not wrap the *xml.SyntaxError", err)
	}
	_, err = Default().LoadFile("testdata/no-such-file.xml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
}

func TestLoadDirTestdata(t *testing.T) {
	r := Default()
	n, err := r.LoadDir("testdata")
	if n != 2 {
		t.Errorf("loaded %d objects, want 2 (from good.xml)", n)
	}
	var got []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			got = append(got, e.Error())
		}
	}
	if len(got) != len(badFiles) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(badFiles), strings.Join(got, "\n"))
	}
	for _, want := range badFiles {
		if !strings.Contains(err.Error(), "objects: "+filepath.Join("testdata", want)) {
			t.Errorf("LoadDir error lacks %q", want)
		}
	}
	if typ, _ := r.TypeOf(lwm2m.NewPath(3303, 0, 5700)); typ != lwm2m.TypeInteger {
		t.Errorf("good.xml did not override 3303/5700: %s", typ)
	}
	if d, ok := r.Object(32769); !ok || d.Name != "Soil Probe" {
		t.Errorf("object 32769 not loaded: %+v", d)
	}
}

// ddf builds a one-object DDF document with the given version and the
// given resource items (ID and type).
func ddf(id int, version string, items ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<LWM2M><Object><Name>O%d</Name><ObjectID>%d</ObjectID>", id, id)
	if version != "" {
		fmt.Fprintf(&b, "<ObjectVersion>%s</ObjectVersion>", version)
	}
	b.WriteString("<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Resources>")
	for i := 0; i+1 < len(items); i += 2 {
		fmt.Fprintf(&b, `<Item ID="%s"><Name>r</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances>`+
			`<Mandatory>Optional</Mandatory><Type>%s</Type></Item>`, items[i], items[i+1])
	}
	b.WriteString("</Resources></Object></LWM2M>")
	return b.String()
}

func TestLoadDirPrefersNewestVersion(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a-new.xml":    ddf(40000, "1.10", "0", "Integer"),
		"b-old.xml":    ddf(40000, "1.2", "0", "String"),
		"c-same.xml":   ddf(40001, "", "0", "String"),
		"d-same.XML":   ddf(40001, "1.0", "0", "Float"), // same version, sorts last: wins
		"e-broken.xml": ddf(40002, "1.0", "0", "Nope"),
		"notes.txt":    "not a DDF, not read",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.xml"), 0o755); err != nil {
		t.Fatal(err)
	}
	var r Catalog
	n, err := r.LoadDir(dir)
	if n != 2 || err == nil || !strings.Contains(err.Error(), `e-broken.xml:1: resource 0: unknown type "Nope"`) {
		t.Fatalf("LoadDir = %d, %v", n, err)
	}
	if typ, _ := r.TypeOf(lwm2m.NewPath(40000, 0, 0)); typ != lwm2m.TypeInteger {
		t.Errorf("40000: version 1.10 should win over 1.2, got type %s", typ)
	}
	if typ, _ := r.TypeOf(lwm2m.NewPath(40001, 0, 0)); typ != lwm2m.TypeFloat {
		t.Errorf("40001: the later file should win at equal versions, got type %s", typ)
	}
	if _, err := r.LoadDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestParseStructureErrors(t *testing.T) {
	item := func(extra string) string {
		return `<Item ID="0"><Name>r</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances>` +
			`<Mandatory>Optional</Mandatory><Type>Integer</Type>` + extra + `</Item>`
	}
	obj := func(body string) string {
		return "<LWM2M><Object><Name>O</Name><ObjectID>40000</ObjectID><MultipleInstances>Single</MultipleInstances>" +
			"<Mandatory>Optional</Mandatory>" + body + "</Object></LWM2M>"
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "x.xml:1: not an LwM2M DDF file: no <LWM2M> element"},
		{"binary", "\x00\x01\x02", "x.xml:1: XML syntax error: illegal character code U+0000"},
		{"no objects", "<LWM2M>\n</LWM2M>", "x.xml:1: no <Object> in <LWM2M>"},
		{"two roots", ddf(40000, "", "0", "Integer") + "<LWM2M/>", "x.xml:1: element <LWM2M> after the <LWM2M> element"},
		{"no resources", obj(""), "x.xml:1: object 40000: missing <Resources>"},
		{"empty name", strings.Replace(obj("<Resources/>"), "<Name>O</Name>", "<Name> </Name>", 1), "x.xml:1: object 40000: missing or empty <Name>"},
		{"no multiple", strings.Replace(obj("<Resources/>"), "<MultipleInstances>Single</MultipleInstances>", "", 1), "x.xml:1: object 40000: missing <MultipleInstances>"},
		{"bad version", strings.Replace(obj("<Resources/>"), "<Mandatory>", "<ObjectVersion>v2</ObjectVersion><Mandatory>", 1), `x.xml:1: object 40000: ObjectVersion "v2": want MAJOR.MINOR`},
		{"twice", strings.Replace(obj("<Resources/>"), "<Mandatory>", "<ObjectID>1</ObjectID><Mandatory>", 1), "x.xml:1: <ObjectID> given twice"},
		{"item without ID", obj("<Resources><Item><Name>r</Name></Item></Resources>"), "x.xml:1: <Item> without an ID attribute"},
		{"item ID text", obj(`<Resources><Item ID="x1"></Item></Resources>`), `x.xml:1: resource ID "x1" is not a number in 0..65534`},
		{"item no type", obj("<Resources>" + strings.Replace(item(""), "<Type>Integer</Type>", "", 1) + "</Resources>"), "x.xml:1: resource 0: missing <Type>"},
		{"item no ops", obj("<Resources>" + strings.Replace(item(""), "<Operations>R</Operations>", "", 1) + "</Resources>"), "x.xml:1: resource 0: missing <Operations>"},
		{"item bad mandatory", obj("<Resources>" + strings.Replace(item(""), ">Optional<", ">Maybe<", 1) + "</Resources>"), `x.xml:1: resource 0: Mandatory "Maybe": want Mandatory or Optional`},
		{"duplicate object", "<LWM2M>" + strings.Repeat(strings.TrimSuffix(strings.TrimPrefix(obj("<Resources/>"), "<LWM2M>"), "</LWM2M>")+"\n", 2) + "</LWM2M>", "x.xml:2: object 40000 defined twice"},
		{"unclosed", "<LWM2M><Object><Name>O", "x.xml:1: XML syntax error: unexpected EOF"},
		{"mismatched", "<LWM2M><Object></LWM2M>", "x.xml:1: XML syntax error: element <Object> closed by </LWM2M>"},
		{"latin1", `<?xml version="1.0" encoding="ISO-8859-1"?><LWM2M/>`, `x.xml:1: xml: encoding "ISO-8859-1" declared but Decoder.CharsetReader is nil`},
	} {
		_, err := Parse("x.xml", []byte(tc.doc))
		if err == nil || err.Error() != "objects: "+tc.want {
			t.Errorf("%s:\n got %v\nwant objects: %s", tc.name, err, tc.want)
		}
	}
}

func TestParseTolerates(t *testing.T) {
	doc := "\uFEFF" + `<?xml version="1.0"?>
<!DOCTYPE LWM2M>
<LWM2M xmlns="urn:example">
  <Header><Deep><Deeper>ignored</Deeper></Deep></Header>
  <Object><Name>O</Name><ObjectID> 40000 </ObjectID>
    <MultipleInstances> multiple </MultipleInstances><Mandatory>MANDATORY</Mandatory>
    <Resources>
      <Item ID="7" Extra="1"><Name>Seven<b>teen</b></Name><Operations> RW </Operations><MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory><Type> unsigned integer </Type><Notes><p>ignored</p></Notes></Item>
    </Resources>
  </Object>
</LWM2M>
`
	defs, err := Parse("x.xml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d := defs[0]
	if d.ID != 40000 || !d.Multiple || !d.Mandatory || len(d.Resources) != 1 {
		t.Fatalf("%+v", d)
	}
	if r := d.Resources[0]; r.ID != 7 || r.Name != "Seventeen" || r.Operations != RW || r.Type != lwm2m.TypeUnsigned {
		t.Errorf("%+v", r)
	}
}

func TestParseLimits(t *testing.T) {
	big := make([]byte, MaxFileSize+1)
	if _, err := Parse("big.xml", big); err == nil || err.Error() != "objects: big.xml: file larger than 4194304 bytes" {
		t.Errorf("oversized input: %v", err)
	}
	items := make([]string, 0, 2*(MaxResources+1))
	for i := range MaxResources + 1 {
		items = append(items, fmt.Sprint(i), "Integer")
	}
	if _, err := Parse("many.xml", []byte(ddf(40000, "", items...))); err == nil ||
		!strings.Contains(err.Error(), "more than 4096 resources in the file") {
		t.Errorf("too many resources: %v", err)
	}
	if _, err := Parse("ok.xml", []byte(ddf(40000, "", items[:2*MaxResources]...))); err != nil {
		t.Errorf("MaxResources resources: %v", err)
	}
	var objs strings.Builder
	objs.WriteString("<LWM2M>")
	for i := range MaxObjects + 1 {
		doc := ddf(40000+i, "", "0", "Integer")
		objs.WriteString(strings.TrimSuffix(strings.TrimPrefix(doc, "<LWM2M>"), "</LWM2M>"))
	}
	objs.WriteString("</LWM2M>")
	if _, err := Parse("objs.xml", []byte(objs.String())); err == nil || !strings.Contains(err.Error(), "more than 256 objects") {
		t.Errorf("too many objects: %v", err)
	}
	// Deep nesting in ignored elements is skipped without recursion.
	deep := strings.Replace(ddf(40000, "", "0", "Integer"), "<Resources>",
		strings.Repeat("<x>", 100000)+strings.Repeat("</x>", 100000)+"<Resources>", 1)
	if _, err := Parse("deep.xml", []byte(deep)); err != nil {
		t.Errorf("deeply nested ignored element: %v", err)
	}
}

func TestLoadFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.xml")
	data := append([]byte(ddf(40000, "", "0", "Integer")), bytes.Repeat([]byte(" "), MaxFileSize)...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var r Catalog
	if n, err := r.LoadFile(path); n != 0 || err == nil || !strings.HasSuffix(err.Error(), "huge.xml: file larger than 4194304 bytes") {
		t.Errorf("LoadFile = %d, %v", n, err)
	}
}

func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := Parse("fuzz.xml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "fuzz.xml" {
				t.Fatalf("error is not a *ParseError for fuzz.xml: %#v", err)
			}
			if defs != nil {
				t.Fatal("definitions returned with an error")
			}
			return
		}
		if len(defs) == 0 || len(defs) > MaxObjects {
			t.Fatalf("%d definitions without an error", len(defs))
		}
		var r Catalog
		for _, d := range defs {
			if d.Name == "" || d.Version == "" {
				t.Fatalf("object %d: empty name or version", d.ID)
			}
			for i, res := range d.Resources {
				if i > 0 && d.Resources[i-1].ID >= res.ID {
					t.Fatalf("object %d: resources unsorted or duplicated", d.ID)
				}
			}
			if err := r.Add(d); err != nil {
				t.Fatalf("parsed definition rejected by Add: %v", err)
			}
		}
	})
}
