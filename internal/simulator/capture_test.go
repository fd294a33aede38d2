package simulator

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
)

var update = flag.Bool("update", false, "rewrite testdata/captures from a fresh simulator run")

const capturesDir = "testdata/captures"

// TestCapture runs a device with CaptureDir through a fixed script of
// operations and compares what it sent with testdata/captures, which
// `go test -run TestCapture -update` rewrites. The captures double as
// golden files and fuzz seeds for the codecs.
func TestCapture(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	log := newEventLog(t)
	cfg := testConfig(t, p, clk, log)
	cfg.Seed = 1
	cfg.CaptureDir = t.TempDir()
	d := startDevice(t, cfg)
	ep := d.Endpoint()
	p.wait("register", ep, 5*time.Second)

	get := func(path string, f lwm2m.MediaType) {
		t.Helper()
		var opts []reqOpt
		if f != 0 {
			opts = append(opts, accept(f))
		}
		if r := p.request(ep, codes.GET, path, 0, nil, opts...); r.code != codes.Content {
			t.Fatalf("GET %s as %v: %v", path, f, r.code)
		}
	}
	for _, f := range []lwm2m.MediaType{lwm2m.FormatTLV, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatJSON} {
		get("/3/0", f)
		get("/3303/0", f)
		get("/3/0/6", f)
	}
	get("/3/0/0", lwm2m.FormatText)
	get("/3303/0/5700", lwm2m.FormatText)
	get("/3303/0/5700", lwm2m.FormatCBOR)
	get("/3/0/13", lwm2m.FormatCBOR)
	get("/19/0/0/0", lwm2m.FormatOpaque)
	get("/3", lwm2m.FormatLinkFormat)
	get("/3/0/6", lwm2m.FormatLinkFormat)
	paths, _ := senml.EncodePathsJSON([]lwm2m.Path{lwm2m.MustParsePath("/3303/0/5700"), lwm2m.MustParsePath("/3/0/9")})
	if r := p.request(ep, codes.FETCH, "/", lwm2m.FormatSenMLJSON, paths); r.code != codes.Content {
		t.Fatalf("read-composite: %v", r.code)
	}
	p.observe(ep, "/3304/0", nil, accept(lwm2m.FormatSenMLCBOR))
	log.wait(EventObserve, nil, 5*time.Second)
	clk.Advance(10 * time.Second)
	log.wait(EventNotified, nil, 5*time.Second)
	d.TriggerSend()
	log.wait(EventSendAcked, nil, 5*time.Second)

	got := readCaptures(t, filepath.Join(cfg.CaptureDir, strings.ReplaceAll(ep, ":", "_")))
	if len(got) < 25 {
		t.Fatalf("only %d captures", len(got))
	}
	if *update {
		if err := os.RemoveAll(capturesDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(capturesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range got {
			if err := os.WriteFile(filepath.Join(capturesDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := readCaptures(t, capturesDir)
	for name, data := range got {
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("new capture %s (run with -update)", name)
		case !bytes.Equal(data, w):
			t.Errorf("capture %s differs from testdata:\ngot  %q\nwant %q", name, data, w)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("capture %s no longer produced", name)
		}
	}
}

func readCaptures(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

// TestCapturesDecode checks every stored capture with the codec of its
// format, so the golden files stay valid input for the codecs.
func TestCapturesDecode(t *testing.T) {
	got := readCaptures(t, capturesDir)
	if len(got) == 0 {
		t.Fatal("no captures")
	}
	formats := map[string]lwm2m.MediaType{}
	for _, f := range []lwm2m.MediaType{lwm2m.FormatText, lwm2m.FormatOpaque, lwm2m.FormatCBOR, lwm2m.FormatTLV,
		lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR, lwm2m.FormatLwM2MCBOR, lwm2m.FormatJSON, lwm2m.FormatLinkFormat} {
		formats[FormatExt(f)] = f
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		// <seq>_<op>_<path>.<ext>
		parts := strings.SplitN(name, "_", 3)
		rest := parts[2]
		dot := strings.IndexByte(rest, '.')
		pathPart, ext := rest[:dot], rest[dot:]
		f, ok := formats[ext]
		if !ok {
			t.Errorf("%s: unknown extension", name)
			continue
		}
		base := lwm2m.Root
		if pathPart != "root" {
			base = lwm2m.MustParsePath("/" + strings.ReplaceAll(pathPart, "_", "/"))
		}
		if f == lwm2m.FormatLinkFormat {
			continue // covered by the registration and discover tests
		}
		if parts[1] == "send" || strings.Contains(parts[1], "composite") {
			base = lwm2m.Root
		}
		if _, err := decode(f, got[name], base, testTypes, time.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
