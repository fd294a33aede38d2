package simulator

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

var allFormats = []lwm2m.MediaType{
	lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR,
	lwm2m.FormatJSON, lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR,
}

// sameRecords compares records by path and value, ignoring order and time.
func sameRecords(t *testing.T, what string, got, want []lwm2m.Record) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	lwm2m.SortRecords(got)
	lwm2m.SortRecords(want)
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d:\ngot  %v\nwant %v", what, len(got), len(want), got, want)
		return
	}
	for i := range got {
		if got[i].Path != want[i].Path || !got[i].Value.Equal(want[i].Value) {
			t.Errorf("%s: record %d = %s %#v, want %s %#v", what, i, got[i].Path, got[i].Value, want[i].Path, want[i].Value)
		}
	}
}

// decodeReply decodes a device's answer read at base with the project's
// codecs.
func decodeReply(t *testing.T, r reply, base lwm2m.Path) []lwm2m.Record {
	t.Helper()
	if !r.hasCF {
		t.Fatalf("answer %v without Content-Format", r.code)
	}
	recs, err := decode(r.format, r.body, base, objects.Default().TypeOf, time.Now())
	if err != nil {
		t.Fatalf("decode %v answer for %s: %v\n%q", r.format, base, err, r.body)
	}
	return recs
}

func TestReadEveryFormat(t *testing.T) {
	p := newPeer(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), nil))
	p.wait("register", d.Endpoint(), 5*time.Second)
	ep := d.Endpoint()
	paths := []string{"/3", "/3/0", "/3/0/0", "/3/0/9", "/3/0/13", "/3/0/6", "/3/0/6/1", "/4/0/4",
		"/3303", "/3303/0", "/3303/0/5700", "/19/0/0", "/19/0/0/0", "/5/0"}
	for _, ps := range paths {
		base := lwm2m.MustParsePath(ps)
		want, err := d.Read(base)
		if err != nil {
			t.Fatalf("device read %s: %v", ps, err)
		}
		single := len(want) == 1 && want[0].Path == base
		for _, f := range allFormats {
			r := p.request(ep, codes.GET, ps, 0, nil, accept(f))
			fits := !codec.SingleValue(f) || single && (f != lwm2m.FormatOpaque || want[0].Value.Type() == lwm2m.TypeOpaque)
			if !fits {
				if r.code != codes.NotAcceptable {
					t.Errorf("read %s as %v: %v, want 4.06", ps, f, r.code)
				}
				continue
			}
			if r.code != codes.Content || r.format != f {
				t.Errorf("read %s as %v: %v %v %q", ps, f, r.code, r.format, r.body)
				continue
			}
			sameRecords(t, ps+" as "+f.String(), decodeReply(t, r, base), want)
		}
		// Without Accept: text (or opaque) for single values, the
		// configured format otherwise.
		r := p.request(ep, codes.GET, ps, 0, nil)
		wantF := lwm2m.FormatSenMLCBOR
		if single {
			wantF = lwm2m.FormatText
			if want[0].Value.Type() == lwm2m.TypeOpaque {
				wantF = lwm2m.FormatOpaque
			}
		}
		if r.code != codes.Content || r.format != wantF {
			t.Errorf("read %s without Accept: %v %v, want %v", ps, r.code, r.format, wantF)
		} else {
			sameRecords(t, ps+" default", decodeReply(t, r, base), want)
		}
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/3/0/0")); v.StringValue() != "flownexus" {
		t.Errorf("manufacturer %v", v)
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/3/0/3")); v.StringValue() != "1.0.0" {
		t.Errorf("firmware version %v", v)
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/3303/0/5701")); v.StringValue() != "Cel" {
		t.Errorf("temperature units %v", v)
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/3304/0/5701")); v.StringValue() != "%RH" {
		t.Errorf("humidity units %v", v)
	}
}

func TestReadErrors(t *testing.T) {
	p := newPeer(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), nil))
	p.wait("register", d.Endpoint(), 5*time.Second)
	for _, tc := range []struct {
		path   string
		accept []lwm2m.MediaType
		want   codes.Code
	}{
		{"/rd", nil, codes.NotFound},
		{"/9", nil, codes.NotFound},
		{"/3/1", nil, codes.NotFound},
		{"/3/0/999", nil, codes.NotFound},
		{"/3/0/0/0", nil, codes.NotFound}, // single resource has no instances
		{"/3/0/6/9", nil, codes.NotFound},
		{"/3/0/4", nil, codes.MethodNotAllowed}, // executable
		{"/5/0/0", nil, codes.MethodNotAllowed}, // write-only
		{"/", nil, codes.MethodNotAllowed},
		{"/3/0", []lwm2m.MediaType{9999}, codes.NotAcceptable},
		{"/3/0", []lwm2m.MediaType{lwm2m.FormatText}, codes.NotAcceptable},
	} {
		var opts []reqOpt
		for _, a := range tc.accept {
			opts = append(opts, accept(a))
		}
		if r := p.request(d.Endpoint(), codes.GET, tc.path, 0, nil, opts...); r.code != tc.want {
			t.Errorf("GET %s: %v, want %v (%q)", tc.path, r.code, tc.want, r.body)
		}
	}
}

func TestDiscoverAndWriteAttributes(t *testing.T) {
	p := newPeer(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), nil))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)

	r := p.request(ep, codes.GET, "/3", 0, nil, accept(lwm2m.FormatLinkFormat))
	if r.code != codes.Content || r.format != lwm2m.FormatLinkFormat {
		t.Fatalf("discover /3: %v %v", r.code, r.format)
	}
	links, err := linkformat.ParseDiscover(r.body)
	if err != nil {
		t.Fatalf("discover /3 %q: %v", r.body, err)
	}
	if links[0].Path != lwm2m.NewPath(3) || links[0].Ver != "1.2" || links[1].Path != lwm2m.NewPath(3, 0) {
		t.Errorf("discover /3 starts %+v %+v", links[0], links[1])
	}
	byPath := map[lwm2m.Path]linkformat.DiscoverLink{}
	for _, l := range links {
		byPath[l.Path] = l
	}
	if l, ok := byPath[lwm2m.NewPath(3, 0, 6)]; !ok || l.Dim == nil || *l.Dim != 2 {
		t.Errorf("/3/0/6 link %+v", l)
	}
	if _, ok := byPath[lwm2m.NewPath(3, 0, 4)]; !ok {
		t.Error("executable /3/0/4 not discovered")
	}

	for _, tc := range []struct {
		path    string
		queries []string
		want    codes.Code
	}{
		{"/3303/0/5700", []string{"pmin=2", "pmax=60", "gt=30.5", "lt=-5", "st=0.5"}, codes.Changed},
		{"/3303/0", []string{"pmin=5"}, codes.Changed},
		{"/3303/0/5700", []string{"pmin"}, codes.Changed}, // removes pmin
		{"/3303/0/5700", []string{"foo=1"}, codes.BadRequest},
		{"/3303/0/5700", []string{"pmin=x"}, codes.BadRequest},
		{"/3303/0/5700", []string{"pmin=90"}, codes.BadRequest}, // pmin > pmax
		{"/3/0/0", []string{"gt=1"}, codes.BadRequest},          // string resource
		{"/3303/0", []string{"st=1"}, codes.BadRequest},         // not a resource
		{"/3303/9", []string{"pmin=1"}, codes.NotFound},
		{"/", []string{"pmin=1"}, codes.MethodNotAllowed},
	} {
		r := p.request(ep, codes.PUT, tc.path, 0, nil, query(tc.queries...))
		if r.code != tc.want {
			t.Errorf("write-attributes %s %q: %v, want %v (%q)", tc.path, tc.queries, r.code, tc.want, r.body)
		}
	}
	r = p.request(ep, codes.GET, "/3303/0", 0, nil, accept(lwm2m.FormatLinkFormat))
	links, err = linkformat.ParseDiscover(r.body)
	if err != nil {
		t.Fatalf("discover /3303/0 %q: %v", r.body, err)
	}
	if links[0].Path != lwm2m.NewPath(3303, 0) || links[0].Attrs.PMin == nil || *links[0].Attrs.PMin != 5 {
		t.Errorf("instance link %+v", links[0])
	}
	found := false
	for _, l := range links {
		if l.Path == lwm2m.NewPath(3303, 0, 5700) {
			found = true
			a := l.Attrs
			if a.PMin != nil || a.PMax == nil || *a.PMax != 60 || *a.GT != 30.5 || *a.LT != -5 || *a.ST != 0.5 {
				t.Errorf("5700 attributes %s", linkformat.FormatDiscover([]linkformat.DiscoverLink{l}))
			}
		}
	}
	if !found {
		t.Errorf("no /3303/0/5700 in %q", r.body)
	}
	// Discover of a multiple resource lists its instances.
	r = p.request(ep, codes.GET, "/3/0/6", 0, nil, accept(lwm2m.FormatLinkFormat))
	if string(r.body) != "</3/0/6>;dim=2,</3/0/6/0>,</3/0/6/1>" {
		t.Errorf("discover /3/0/6 = %q", r.body)
	}
	for _, path := range []string{"/", "/3/0/6/0"} {
		if r := p.request(ep, codes.GET, path, 0, nil, accept(lwm2m.FormatLinkFormat)); r.code != codes.MethodNotAllowed {
			t.Errorf("discover %s: %v", path, r.code)
		}
	}
}

func TestWrite(t *testing.T) {
	p := newPeer(t)
	log := newEventLog(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), log))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	enc := func(f lwm2m.MediaType, base string, recs ...lwm2m.Record) []byte {
		t.Helper()
		b, err := encode(f, lwm2m.MustParsePath(base), recs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec := func(p string, v lwm2m.Value) lwm2m.Record {
		return lwm2m.Record{Path: lwm2m.MustParsePath(p), Value: v}
	}
	value := func(path string) lwm2m.Value {
		v, ok := d.Value(lwm2m.MustParsePath(path))
		if !ok {
			t.Fatalf("no value at %s", path)
		}
		return v
	}

	// Single values in every single-value format.
	for _, tc := range []struct {
		f    lwm2m.MediaType
		path string
		v    lwm2m.Value
	}{
		{lwm2m.FormatText, "/3/0/14", lwm2m.String("+01:00")},
		{lwm2m.FormatCBOR, "/3/0/15", lwm2m.String("Europe/Berlin")},
		{lwm2m.FormatOpaque, "/19/0/0/1", lwm2m.Opaque([]byte{0, 1, 2, 0xff})},
		{lwm2m.FormatText, "/3303/0/5750", lwm2m.String("kitchen")},
	} {
		r := p.request(ep, codes.PUT, tc.path, tc.f, enc(tc.f, tc.path, rec(tc.path, tc.v)))
		if r.code != codes.Changed {
			t.Errorf("write %s as %v: %v %q", tc.path, tc.f, r.code, r.body)
		}
		if got := value(tc.path); !got.Equal(tc.v) {
			t.Errorf("%s = %#v after write, want %#v", tc.path, got, tc.v)
		}
	}
	// Instance writes in every multi-value format: replace and update.
	for i, f := range []lwm2m.MediaType{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatJSON} {
		name := "room" + string(rune('A'+i))
		body := enc(f, "/3303/0", rec("/3303/0/5750", lwm2m.String(name)))
		code := codes.PUT
		if i%2 == 1 {
			code = codes.POST
		}
		if r := p.request(ep, code, "/3303/0", f, body); r.code != codes.Changed {
			t.Errorf("%v /3303/0 as %v: %v %q", code, f, r.code, r.body)
		}
		if got := value("/3303/0/5750").StringValue(); got != name {
			t.Errorf("after %v write: %q, want %q", f, got, name)
		}
	}
	// Replacing a multiple resource drops instances not written; a partial
	// update keeps them.
	body := enc(lwm2m.FormatTLV, "/19/0/0", rec("/19/0/0/3", lwm2m.Opaque([]byte("x"))))
	if r := p.request(ep, codes.POST, "/19/0/0", lwm2m.FormatTLV, body); r.code != codes.Changed {
		t.Fatalf("partial update /19/0/0: %v", r.code)
	}
	if rs, _ := d.Read(lwm2m.MustParsePath("/19/0/0")); len(rs) != 3 {
		t.Errorf("after partial update /19/0/0 has %d instances", len(rs))
	}
	if r := p.request(ep, codes.PUT, "/19/0/0", lwm2m.FormatTLV, body); r.code != codes.Changed {
		t.Fatalf("replace /19/0/0: %v", r.code)
	}
	if rs, _ := d.Read(lwm2m.MustParsePath("/19/0/0")); len(rs) != 1 || rs[0].Path != lwm2m.MustParsePath("/19/0/0/3") {
		t.Errorf("after replace /19/0/0 = %v", rs)
	}

	// Payloads above the block size travel block-wise both ways.
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if r := p.request(ep, codes.PUT, "/19/0/0/9", lwm2m.FormatOpaque, big); r.code != codes.Changed {
		t.Fatalf("block-wise write: %v %q", r.code, r.body)
	}
	if r := p.request(ep, codes.GET, "/19/0/0/9", 0, nil); r.code != codes.Content || !bytes.Equal(r.body, big) {
		t.Errorf("block-wise read: %v, %d bytes", r.code, len(r.body))
	}
	if r := p.request(ep, codes.GET, "/19/0", 0, nil, accept(lwm2m.FormatSenMLJSON)); r.code != codes.Content || len(r.body) < 6000 {
		t.Errorf("block-wise SenML read: %v, %d bytes", r.code, len(r.body))
	} else {
		rs, _ := d.Read(lwm2m.MustParsePath("/19/0"))
		sameRecords(t, "block-wise SenML read", decodeReply(t, r, lwm2m.MustParsePath("/19/0")), rs)
	}

	// Refusals, and nothing of a refused write is applied.
	before := value("/3303/0/5750")
	for _, tc := range []struct {
		name string
		code codes.Code
		path string
		f    lwm2m.MediaType
		body []byte
		want codes.Code
	}{
		{"read-only", codes.PUT, "/3/0/0", lwm2m.FormatText, []byte("acme"), codes.MethodNotAllowed},
		{"read-only in instance", codes.PUT, "/3303/0", lwm2m.FormatSenMLJSON,
			enc(lwm2m.FormatSenMLJSON, "/3303/0", rec("/3303/0/5750", lwm2m.String("x")), rec("/3303/0/5700", lwm2m.Float(1))), codes.MethodNotAllowed},
		{"bad integer", codes.PUT, "/1/0/1", lwm2m.FormatText, []byte("abc"), codes.BadRequest},
		{"zero lifetime", codes.PUT, "/1/0/1", lwm2m.FormatText, []byte("0"), codes.BadRequest},
		{"bad binding", codes.PUT, "/1/0/7", lwm2m.FormatText, []byte("T"), codes.BadRequest},
		{"type mismatch", codes.PUT, "/3303/0", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/0/","n":"5750","v":3}]`), codes.BadRequest},
		{"unknown object", codes.PUT, "/9999/0/1", lwm2m.FormatText, []byte("1"), codes.NotFound},
		{"unknown resource", codes.PUT, "/3303/0", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/0/","n":"9999","v":3}]`), codes.NotFound},
		{"object level", codes.PUT, "/3303", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/0/","n":"5750","vs":"x"}]`), codes.MethodNotAllowed},
		{"unknown format", codes.PUT, "/3/0/14", 9999, []byte("x"), codes.UnsupportedMediaType},
		{"link-format", codes.PUT, "/3/0/14", lwm2m.FormatLinkFormat, []byte("</3>"), codes.UnsupportedMediaType},
		{"malformed TLV", codes.PUT, "/3303/0", lwm2m.FormatTLV, []byte{0xff}, codes.BadRequest},
		{"no content format", codes.PUT, "/3/0/14", 0, nil, codes.BadRequest},
	} {
		var r reply
		if tc.name == "no content format" {
			r = p.request(ep, tc.code, tc.path, 0, nil, func(m *poolMessage) { m.SetBody(strings.NewReader("x")) })
		} else {
			r = p.request(ep, tc.code, tc.path, tc.f, tc.body)
		}
		if r.code != tc.want {
			t.Errorf("%s: %v, want %v (%q)", tc.name, r.code, tc.want, r.body)
		}
	}
	if got := value("/3303/0/5750"); !got.Equal(before) {
		t.Errorf("refused write changed 5750 to %#v", got)
	}

	// A new lifetime goes to the server with an Update.
	log.drain()
	if r := p.request(ep, codes.PUT, "/1/0/1", lwm2m.FormatText, []byte("250")); r.code != codes.Changed {
		t.Fatalf("write lifetime: %v", r.code)
	}
	up := p.wait("update", ep, 5*time.Second)
	if !slices.Equal(up.queries, []string{"lt=250"}) {
		t.Errorf("update after lifetime write: %q", up.queries)
	}
	// Current Time is writable and moves the device's clock.
	if r := p.request(ep, codes.PUT, "/3/0/13", lwm2m.FormatText, []byte("1700000000")); r.code != codes.Changed {
		t.Fatalf("write current time: %v", r.code)
	}
	if got := value("/3/0/13").IntValue(); got != 1700000000 {
		t.Errorf("current time %d after write", got)
	}

	// Write-Composite.
	body = enc(lwm2m.FormatSenMLCBOR, "/", rec("/3/0/14", lwm2m.String("-05:00")), rec("/3304/0/5750", lwm2m.String("cellar")))
	if r := p.request(ep, codes.IPATCH, "/", lwm2m.FormatSenMLCBOR, body); r.code != codes.Changed {
		t.Errorf("write-composite: %v %q", r.code, r.body)
	}
	if value("/3/0/14").StringValue() != "-05:00" || value("/3304/0/5750").StringValue() != "cellar" {
		t.Errorf("write-composite not applied")
	}
	body = enc(lwm2m.FormatSenMLJSON, "/", rec("/3/0/14", lwm2m.String("+09:00")), rec("/3/0/0", lwm2m.String("acme")))
	if r := p.request(ep, codes.IPATCH, "/", lwm2m.FormatSenMLJSON, body); r.code != codes.MethodNotAllowed {
		t.Errorf("write-composite with a read-only resource: %v", r.code)
	}
	if value("/3/0/14").StringValue() != "-05:00" {
		t.Errorf("refused write-composite was applied in part")
	}
	if r := p.request(ep, codes.IPATCH, "/", lwm2m.FormatTLV, []byte{}); r.code != codes.UnsupportedMediaType {
		t.Errorf("write-composite as TLV: %v", r.code)
	}
}

func TestReadComposite(t *testing.T) {
	p := newPeer(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), nil))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)
	paths := []lwm2m.Path{lwm2m.MustParsePath("/3/0/0"), lwm2m.MustParsePath("/3303/0"), lwm2m.MustParsePath("/9/0"), lwm2m.MustParsePath("/3/0/6/1")}
	var want []lwm2m.Record
	for _, q := range []string{"/3/0/0", "/3303/0", "/3/0/6/1"} {
		rs, _ := d.Read(lwm2m.MustParsePath(q))
		want = append(want, rs...)
	}
	for _, reqF := range []lwm2m.MediaType{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR} {
		var body []byte
		var err error
		if reqF == lwm2m.FormatSenMLJSON {
			body, err = senml.EncodePathsJSON(paths)
		} else {
			body, err = senml.EncodePathsCBOR(paths)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, acc := range []lwm2m.MediaType{0, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR} {
			var opts []reqOpt
			wantF := reqF
			if acc != 0 {
				opts, wantF = append(opts, accept(acc)), acc
			}
			r := p.request(ep, codes.FETCH, "/", reqF, body, opts...)
			if r.code != codes.Content || r.format != wantF {
				t.Errorf("read-composite %v accept %v: %v %v", reqF, acc, r.code, r.format)
				continue
			}
			sameRecords(t, "read-composite", decodeReply(t, r, lwm2m.Root), want)
		}
		if r := p.request(ep, codes.FETCH, "/", reqF, body, accept(lwm2m.FormatTLV)); r.code != codes.NotAcceptable {
			t.Errorf("read-composite accept TLV: %v", r.code)
		}
	}
	if r := p.request(ep, codes.FETCH, "/", lwm2m.FormatTLV, []byte{1}); r.code != codes.UnsupportedMediaType {
		t.Errorf("read-composite with TLV paths: %v", r.code)
	}
	only, _ := senml.EncodePathsJSON([]lwm2m.Path{lwm2m.MustParsePath("/9/0")})
	if r := p.request(ep, codes.FETCH, "/", lwm2m.FormatSenMLJSON, only); r.code != codes.NotFound {
		t.Errorf("read-composite of nothing present: %v", r.code)
	}
	if r := p.request(ep, codes.FETCH, "/", lwm2m.FormatSenMLJSON, []byte("{")); r.code != codes.BadRequest {
		t.Errorf("read-composite of malformed paths: %v", r.code)
	}
}

func TestExecute(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	first := p.wait("register", ep, 5*time.Second)

	for _, tc := range []struct {
		path, args string
		want       codes.Code
	}{
		{"/3/0/12", "", codes.Changed},
		{"/3/0/12", "0='abc',1", codes.Changed},
		{"/3/0/12", "x", codes.BadRequest},
		{"/3/0/12", "0='abc", codes.BadRequest},
		{"/3/0/12", "0,", codes.BadRequest},
		{"/3/0/0", "", codes.MethodNotAllowed},
		{"/3/0/99", "", codes.NotFound},
		{"/3/0/6/0", "", codes.MethodNotAllowed},
		{"/", "", codes.MethodNotAllowed},
	} {
		var body []byte
		if tc.args != "" {
			body = []byte(tc.args)
		}
		if r := p.request(ep, codes.POST, tc.path, lwm2m.FormatText, body); r.code != tc.want {
			t.Errorf("execute %s %q: %v, want %v", tc.path, tc.args, r.code, tc.want)
		}
	}
	if e := log.wait(EventExecute, func(e Event) bool { return e.Args != "" }, time.Second); e.Args != "0='abc',1" {
		t.Errorf("execute event args %q", e.Args)
	}

	// Reset Min and Max: after some steps min < max, then both equal the value.
	clk.Advance(100 * time.Second)
	eventually(t, 5*time.Second, "min below max", func() bool {
		mn, _ := d.Value(lwm2m.MustParsePath("/3303/0/5601"))
		mx, _ := d.Value(lwm2m.MustParsePath("/3303/0/5602"))
		return mn.FloatValue() < mx.FloatValue()
	})
	p.wait("update", ep, 5*time.Second)
	if r := p.request(ep, codes.POST, "/3303/0/5605", 0, nil); r.code != codes.Changed {
		t.Fatalf("reset min/max: %v", r.code)
	}
	v, _ := d.Value(lwm2m.MustParsePath("/3303/0/5700"))
	mn, _ := d.Value(lwm2m.MustParsePath("/3303/0/5601"))
	mx, _ := d.Value(lwm2m.MustParsePath("/3303/0/5602"))
	if !mn.Equal(v) || !mx.Equal(v) {
		t.Errorf("after reset: value %v min %v max %v", v, mn, mx)
	}

	// Registration Update Trigger.
	if r := p.request(ep, codes.POST, "/1/0/8", 0, nil); r.code != codes.Changed {
		t.Fatalf("update trigger: %v", r.code)
	}
	p.wait("update", ep, 5*time.Second)

	// Reboot: answered, then a new Register from a new port.
	if r := p.request(ep, codes.POST, "/3/0/4", 0, nil); r.code != codes.Changed {
		t.Fatalf("reboot: %v", r.code)
	}
	log.wait(EventReboot, nil, 5*time.Second)
	second := p.wait("register", ep, 5*time.Second)
	if second.addr == first.addr {
		t.Errorf("rebooted device kept its address %s", first.addr)
	}
	if second.loc == first.loc {
		t.Errorf("rebooted device got the old location")
	}
	eventually(t, 5*time.Second, "second registration", func() bool { return d.Stats().Registrations == 2 })
	if s := d.Stats(); s.Reboots != 1 || s.Registrations != 2 {
		t.Errorf("stats after reboot: %+v", s)
	}

	// Disable: de-register, stay away for the Disable Timeout, come back.
	if r := p.request(ep, codes.PUT, "/1/0/5", lwm2m.FormatText, []byte("30")); r.code != codes.Changed {
		t.Fatalf("write disable timeout: %v", r.code)
	}
	if r := p.request(ep, codes.POST, "/1/0/4", 0, nil); r.code != codes.Changed {
		t.Fatalf("disable: %v", r.code)
	}
	p.wait("deregister", ep, 5*time.Second)
	log.wait(EventDeregistered, nil, 5*time.Second)
	clk.Advance(29 * time.Second)
	p.none("register", 200*time.Millisecond)
	clk.Advance(time.Second)
	p.wait("register", ep, 5*time.Second)

	// Factory reset restores written values and reboots.
	if r := p.request(ep, codes.PUT, "/3/0/14", lwm2m.FormatText, []byte("+02:00")); r.code != codes.Changed {
		t.Fatalf("write: %v", r.code)
	}
	if r := p.request(ep, codes.POST, "/3/0/5", 0, nil); r.code != codes.Changed {
		t.Fatalf("factory reset: %v", r.code)
	}
	p.wait("register", ep, 5*time.Second)
	if v, _ := d.Value(lwm2m.MustParsePath("/3/0/14")); v.StringValue() != "+00:00" {
		t.Errorf("UTC offset after factory reset: %v", v)
	}
}

func TestCreateDelete(t *testing.T) {
	p := newPeer(t)
	d := startDevice(t, testConfig(t, p, newFakeClock(), nil))
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)

	r := p.request(ep, codes.POST, "/3303", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/1/","n":"5750","vs":"garage"}]`))
	if r.code != codes.Created || r.loc != "/3303/1" {
		t.Fatalf("create /3303/1: %v %q %q", r.code, r.loc, r.body)
	}
	up := p.wait("update", ep, 5*time.Second)
	reg, err := linkformat.ParseRegistration(up.payload)
	if err != nil {
		t.Fatalf("update payload %q: %v", up.payload, err)
	}
	if o, _ := reg.Object(3303); !slices.Equal(o.Instances, []uint16{0, 1}) {
		t.Errorf("object list after create: %q", up.payload)
	}
	if v, _ := d.Value(lwm2m.MustParsePath("/3303/1/5750")); v.StringValue() != "garage" {
		t.Errorf("created instance application type %v", v)
	}
	if _, ok := d.Value(lwm2m.MustParsePath("/3303/1/5700")); !ok {
		t.Error("created instance has no sensor value")
	}
	// Without payload: the next free instance.
	r = p.request(ep, codes.POST, "/3303", 0, nil)
	if r.code != codes.Created || r.loc != "/3303/2" {
		t.Errorf("create without payload: %v %q", r.code, r.loc)
	}
	// TLV with an explicit instance.
	body, _ := encode(lwm2m.FormatTLV, lwm2m.NewPath(3304), []lwm2m.Record{{Path: lwm2m.MustParsePath("/3304/7/5750"), Value: lwm2m.String("attic")}})
	r = p.request(ep, codes.POST, "/3304", lwm2m.FormatTLV, body)
	if r.code != codes.Created || r.loc != "/3304/7" {
		t.Errorf("create TLV: %v %q %q", r.code, r.loc, r.body)
	}
	for _, tc := range []struct {
		name string
		path string
		f    lwm2m.MediaType
		body []byte
		want codes.Code
	}{
		{"existing instance", "/3303", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/0/","n":"5750","vs":"x"}]`), codes.BadRequest},
		{"not creatable", "/3", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3/1/","n":"14","vs":"x"}]`), codes.MethodNotAllowed},
		{"unknown object", "/9", 0, nil, codes.NotFound},
		{"executable set", "/3303", lwm2m.FormatSenMLJSON, []byte(`[{"bn":"/3303/9/","n":"5605","vs":""}]`), codes.MethodNotAllowed},
		{"text payload", "/3303", lwm2m.FormatText, []byte("x"), codes.UnsupportedMediaType},
	} {
		if r := p.request(ep, codes.POST, tc.path, tc.f, tc.body); r.code != tc.want {
			t.Errorf("create %s: %v, want %v (%q)", tc.name, r.code, tc.want, r.body)
		}
	}

	if r := p.request(ep, codes.DELETE, "/3303/1", 0, nil); r.code != codes.Deleted {
		t.Fatalf("delete /3303/1: %v", r.code)
	}
	if _, err := d.Read(lwm2m.MustParsePath("/3303/1")); err == nil {
		t.Error("/3303/1 still there")
	}
	for path, want := range map[string]codes.Code{
		"/3/0": codes.MethodNotAllowed, "/3303/1": codes.NotFound, "/3303/0/5700": codes.MethodNotAllowed, "/": codes.MethodNotAllowed,
	} {
		if r := p.request(ep, codes.DELETE, path, 0, nil); r.code != want {
			t.Errorf("delete %s: %v, want %v", path, r.code, want)
		}
	}
	eventually(t, 5*time.Second, "object list without /3303/1", func() bool {
		o, _ := p.registration(ep).objects.Object(3303)
		return slices.Equal(o.Instances, []uint16{0, 2})
	})
}
