package devmgmt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// stack is the device-facing server over a real SQLite file.
type stack struct {
	st  *store.Store
	w   *ingest.Writer
	reg *registry.Registry
	srv *coapd.Server
	mgr *devmgmt.Manager
}

// newStack starts the server with the auto-observe policy auto (nil: the
// default policy); mod, when given, changes the Manager's configuration.
func newStack(t testing.TB, auto *devmgmt.Policy, mod ...func(*devmgmt.Config)) *stack {
	t.Helper()
	return newStackOn(t, filepath.Join(t.TempDir(), "db.sqlite"), auto, mod...)
}

// newStackOn is newStack on the database at url: stacks on the same
// database are server nodes sharing it.
func newStackOn(t testing.TB, url string, auto *devmgmt.Policy, mod ...func(*devmgmt.Config)) *stack {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &stack{st: st}
	s.w = ingest.New(st, ingest.Config{Logger: log})
	s.w.Start()
	s.reg = registry.New(st, registry.Config{Logger: log, Ingest: s.w})
	types := objects.Default().TypeOf
	s.srv = coapd.New(coapd.Config{Registry: s.reg, Ingest: s.w, Types: types, Logger: log})
	cfg := devmgmt.Config{
		Registry: s.reg, Dial: s.srv.Dial, Types: types, Ingest: s.w,
		Timeout: 5 * time.Second, AutoObserve: auto, Logger: log,
	}
	for _, f := range mod {
		f(&cfg)
	}
	s.mgr = devmgmt.New(cfg)
	s.srv.Subscribe(func(a coapd.Activity) {
		if a.Kind == coapd.ActivityRegister {
			s.mgr.AutoObserve(a.Registration)
		}
	})
	if err := s.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.srv.Stop()
		s.w.Close()
		_ = st.Close()
	})
	return s
}

// peer is a minimal LwM2M client on go-coap's UDP client: it registers,
// holds a data tree, answers the server's requests and sends
// notifications. It is a test peer speaking real CoAP, not a mock.
type peer struct {
	t       testing.TB
	cc      *udpclient.Conn
	name    string
	version string
	formats string // ct of the root link, "" for none
	root    string // alternate root path, "" for "/"
	loc     string

	mu        sync.Mutex
	data      map[lwm2m.Path]lwm2m.Value // guarded by mu
	exec      []string                   // guarded by mu; "path args"
	attrs     map[string][]string        // guarded by mu
	observers map[string]observer        // guarded by mu; by token
	requests  []string                   // guarded by mu; "METHOD path cf accept"
	fail      map[string]codes.Code      // guarded by mu; path -> forced answer
	silent    bool                       // guarded by mu; drop requests
	seq       uint32
}

type observer struct {
	paths     []lwm2m.Path
	composite bool
	format    lwm2m.MediaType
}

func newPeer(t testing.TB, s *stack, name, version string) *peer {
	t.Helper()
	p := &peer{t: t, name: name, version: version, data: map[lwm2m.Path]lwm2m.Value{},
		attrs: map[string][]string{}, observers: map[string]observer{}, fail: map[string]codes.Code{}}
	cc, err := udp.Dial(s.srv.Addr().String(), options.WithHandlerFunc(p.handle), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	p.cc = cc
	// A small device: object 3 with a multi-instance resource, 3303
	// temperature, 5 firmware update.
	p.set(lwm2m.NewPath(3, 0, 0), lwm2m.String("flownexus"))
	p.set(lwm2m.NewPath(3, 0, 1), lwm2m.String("peer"))
	p.set(lwm2m.NewPath(3, 0, 7, 0), lwm2m.Int(3800))
	p.set(lwm2m.NewPath(3, 0, 7, 1), lwm2m.Int(5000))
	p.set(lwm2m.NewPath(3, 0, 9), lwm2m.Int(88))
	p.set(lwm2m.NewPath(3303, 0, 5700), lwm2m.Float(21.5))
	p.set(lwm2m.NewPath(3303, 0, 5701), lwm2m.String("Cel"))
	p.set(lwm2m.NewPath(5, 0, 3), lwm2m.Int(0))
	p.set(lwm2m.NewPath(5, 0, 5), lwm2m.Int(0))
	return p
}

func (p *peer) set(path lwm2m.Path, v lwm2m.Value) {
	p.mu.Lock()
	p.data[path] = v
	p.mu.Unlock()
}

func (p *peer) get(path lwm2m.Path) (lwm2m.Value, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.data[path]
	return v, ok
}

// links builds the registration payload from the data tree.
func (p *peer) links() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[lwm2m.Path]bool{}
	var insts []lwm2m.Path
	for path := range p.data {
		i := path.Truncate(2)
		if !seen[i] {
			seen[i] = true
			insts = append(insts, i)
		}
	}
	slices.SortFunc(insts, lwm2m.Path.Compare)
	var parts []string
	if p.formats != "" || p.root != "" {
		root := p.root
		if root == "" {
			root = "/"
		}
		l := "<" + root + `>;rt="oma.lwm2m"`
		if p.formats != "" {
			l += `;ct="` + p.formats + `"`
		}
		parts = append(parts, l)
	}
	for _, i := range insts {
		parts = append(parts, "<"+p.root+i.String()+">")
	}
	return strings.Join(parts, ",")
}

func (p *peer) register(qs ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := []message.Option{{ID: message.URIQuery, Value: []byte("ep=" + p.name)}}
	if p.version != "" {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte("lwm2m=" + p.version)})
	}
	for _, q := range qs {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	resp, err := p.cc.Post(ctx, "/rd", message.AppLinkFormat, bytes.NewReader([]byte(p.links())), opts...)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.Code() != codes.Created {
		p.t.Fatalf("register: %v", resp.Code())
	}
	p.loc, _ = resp.Options().LocationPath()
}

func (p *peer) log(format string, args ...any) {
	p.mu.Lock()
	p.requests = append(p.requests, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *peer) requestsCopy() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func (p *peer) lastRequest() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		return ""
	}
	return p.requests[len(p.requests)-1]
}

// records returns the values at or under base, in path order.
func (p *peer) records(base lwm2m.Path) []lwm2m.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rs []lwm2m.Record
	for path, v := range p.data {
		if path.HasPrefix(base) {
			rs = append(rs, lwm2m.Record{Path: path, Value: v})
		}
	}
	lwm2m.SortRecords(rs)
	return rs
}

func (p *peer) respond(w *responsewriter.ResponseWriter[*udpclient.Conn], code codes.Code, f lwm2m.MediaType, body []byte, opts ...message.Option) {
	var rd io.ReadSeeker
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if err := w.SetResponse(code, message.MediaType(f), rd, opts...); err != nil {
		p.t.Error(err)
	}
}

func types(path lwm2m.Path) (lwm2m.Type, bool) { return objects.Default().TypeOf(path) }

// handle answers the server's requests.
func (p *peer) handle(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
	if r.Code() >= codes.Created || r.Code() == codes.Empty {
		return
	}
	p.mu.Lock()
	silent := p.silent
	p.mu.Unlock()
	if silent {
		w.Message().SetModified(false)
		return
	}
	raw, _ := r.Options().Path()
	if p.root != "" {
		if !strings.HasPrefix(raw, p.root) {
			p.respond(w, codes.NotFound, 0, nil)
			return
		}
		raw = strings.TrimPrefix(raw, p.root)
	}
	if raw == "" {
		raw = "/"
	}
	path, err := lwm2m.ParsePath(raw)
	if err != nil {
		p.respond(w, codes.BadRequest, 0, nil)
		return
	}
	cf, _ := r.ContentFormat()
	acc, accErr := r.Accept()
	obs, obsErr := r.Observe()
	body, _ := r.ReadBody()
	qs, _ := r.Queries()
	p.log("%s %s cf=%d accept=%d", r.Code(), raw, cf, acc)
	p.mu.Lock()
	forced, isForced := p.fail[raw]
	p.mu.Unlock()
	if isForced {
		p.respond(w, forced, lwm2m.FormatText, []byte("forced failure"))
		return
	}
	format := lwm2m.FormatTLV
	if accErr == nil {
		format = lwm2m.MediaType(acc)
	}
	switch r.Code() {
	case codes.GET:
		if format == lwm2m.FormatLinkFormat {
			var links []linkformat.DiscoverLink
			for _, rec := range p.records(path) {
				links = append(links, linkformat.DiscoverLink{Path: rec.Path.Truncate(3)})
			}
			links = slices.CompactFunc(links, func(a, b linkformat.DiscoverLink) bool { return a.Path == b.Path })
			p.respond(w, codes.Content, lwm2m.FormatLinkFormat, linkformat.FormatDiscover(links))
			return
		}
		recs := p.records(path)
		if len(recs) == 0 {
			p.respond(w, codes.NotFound, 0, nil)
			return
		}
		out, err := codec.Encode(format, path, recs)
		if err != nil {
			p.respond(w, codes.NotAcceptable, 0, nil)
			return
		}
		var opts []message.Option
		if obsErr == nil {
			p.mu.Lock()
			if obs == 0 {
				p.observers[string(r.Token())] = observer{paths: []lwm2m.Path{path}, format: format}
				p.seq++
				opts = append(opts, message.Option{ID: message.Observe, Value: []byte{byte(p.seq)}})
			} else {
				delete(p.observers, string(r.Token()))
			}
			p.mu.Unlock()
		}
		p.respond(w, codes.Content, format, out, opts...)
	case codes.PUT:
		if len(qs) > 0 {
			p.mu.Lock()
			p.attrs[raw] = qs
			p.mu.Unlock()
			p.respond(w, codes.Changed, 0, nil)
			return
		}
		recs, err := codec.Decode(lwm2m.MediaType(cf), body, path, types)
		if err != nil {
			p.respond(w, codes.BadRequest, lwm2m.FormatText, []byte(err.Error()))
			return
		}
		p.mu.Lock()
		for k := range p.data {
			if k.HasPrefix(path) {
				delete(p.data, k)
			}
		}
		for _, rec := range recs {
			p.data[rec.Path] = rec.Value
		}
		p.mu.Unlock()
		p.respond(w, codes.Changed, 0, nil)
	case codes.POST:
		if path.IsResource() && (path.Resource() == 4 || path.Resource() == 2) {
			p.mu.Lock()
			p.exec = append(p.exec, raw+" "+string(body))
			p.mu.Unlock()
			p.respond(w, codes.Changed, 0, nil)
			return
		}
		recs, err := codec.Decode(lwm2m.MediaType(cf), body, path, types)
		if err != nil {
			p.respond(w, codes.BadRequest, lwm2m.FormatText, []byte(err.Error()))
			return
		}
		p.mu.Lock()
		for _, rec := range recs {
			p.data[rec.Path] = rec.Value
		}
		p.mu.Unlock()
		if path.IsObject() {
			inst := recs[0].Path.Truncate(2)
			p.respond(w, codes.Created, 0, nil,
				message.Option{ID: message.LocationPath, Value: fmt.Appendf(nil, "%d", inst.Object())},
				message.Option{ID: message.LocationPath, Value: fmt.Appendf(nil, "%d", inst.Instance())})
			return
		}
		p.respond(w, codes.Changed, 0, nil)
	case codes.DELETE:
		p.mu.Lock()
		n := 0
		for k := range p.data {
			if k.HasPrefix(path) {
				delete(p.data, k)
				n++
			}
		}
		p.mu.Unlock()
		if n == 0 {
			p.respond(w, codes.NotFound, 0, nil)
			return
		}
		p.respond(w, codes.Deleted, 0, nil)
	case codes.FETCH:
		var paths []lwm2m.Path
		if lwm2m.MediaType(cf) == lwm2m.FormatSenMLJSON {
			paths, err = senml.DecodePathsJSON(body)
		} else {
			paths, err = senml.DecodePathsCBOR(body)
		}
		if err != nil {
			p.respond(w, codes.BadRequest, 0, nil)
			return
		}
		var recs []lwm2m.Record
		for _, q := range paths {
			recs = append(recs, p.records(q)...)
		}
		out, err := codec.Encode(format, lwm2m.Root, recs)
		if err != nil {
			p.respond(w, codes.NotAcceptable, 0, nil)
			return
		}
		var opts []message.Option
		if obsErr == nil {
			p.mu.Lock()
			if obs == 0 {
				p.observers[string(r.Token())] = observer{paths: paths, composite: true, format: format}
				p.seq++
				opts = append(opts, message.Option{ID: message.Observe, Value: []byte{byte(p.seq)}})
			} else {
				delete(p.observers, string(r.Token()))
			}
			p.mu.Unlock()
		}
		p.respond(w, codes.Content, format, out, opts...)
	case codes.IPATCH:
		recs, err := codec.Decode(lwm2m.MediaType(cf), body, lwm2m.Root, types)
		if err != nil {
			p.respond(w, codes.BadRequest, 0, nil)
			return
		}
		p.mu.Lock()
		for _, rec := range recs {
			p.data[rec.Path] = rec.Value
		}
		p.mu.Unlock()
		p.respond(w, codes.Changed, 0, nil)
	default:
		p.respond(w, codes.MethodNotAllowed, 0, nil)
	}
}

// observerFor returns the token of the observation of exactly paths.
func (p *peer) observerFor(composite bool, paths ...lwm2m.Path) (string, observer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for tok, o := range p.observers {
		if o.composite == composite && slices.Equal(o.paths, paths) {
			return tok, o, true
		}
	}
	return "", observer{}, false
}

// notify sends a confirmable notification of the observation with the
// given token carrying the current values and returns when it is
// acknowledged.
func (p *peer) notify(token string) error {
	p.mu.Lock()
	o, ok := p.observers[token]
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("no observer %x", token)
	}
	var recs []lwm2m.Record
	base := lwm2m.Root
	if !o.composite {
		base = o.paths[0]
	}
	for _, q := range o.paths {
		recs = append(recs, p.records(q)...)
	}
	body, err := codec.Encode(o.format, base, recs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := p.cc.AcquireMessage(ctx)
	defer p.cc.ReleaseMessage(msg)
	msg.SetCode(codes.Content)
	msg.SetToken(message.Token(token))
	msg.SetObserve(seq)
	msg.SetContentFormat(message.MediaType(o.format))
	msg.SetBody(bytes.NewReader(body))
	msg.SetType(message.Confirmable)
	return p.cc.WriteMessage(msg)
}

// Adapters from Manager.Do's Result to the parts a test looks at.

func values(res devmgmt.Result, err error) ([]lwm2m.Record, error) { return res.Values, err }

func links(res devmgmt.Result, err error) ([]linkformat.DiscoverLink, error) { return res.Links, err }

func location(res devmgmt.Result, err error) (lwm2m.Path, error) { return res.Location, err }

func observed(res devmgmt.Result, err error) (registry.Observation, []lwm2m.Record, error) {
	return res.Observation, res.Values, err
}

func only(_ devmgmt.Result, err error) error { return err }
