package simulator

import (
	"bytes"
	"io"
	"strconv"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// maxRequestBody bounds the payload of a server request the device reads,
// but for a firmware package written to /5/0/0 (maxFirmware).
const maxRequestBody = 1 << 20

// request is a server request, decoded from CoAP.
type request struct {
	path      lwm2m.Path
	accept    lwm2m.MediaType
	hasAccept bool
	format    lwm2m.MediaType // Content-Format
	hasFormat bool
	observe   uint32
	hasObs    bool
	body      []byte
	queries   []string
	token     message.Token
}

// response is what the device answers.
type response struct {
	op       string
	path     lwm2m.Path
	code     codes.Code
	format   lwm2m.MediaType
	body     []byte // nil: no payload
	diag     string // diagnostic payload of an error
	observe  bool
	seq      uint32
	location []string
	after    func() // runs once the response was sent
}

func failed(op string, p lwm2m.Path, err error) response {
	return response{op: op, path: p, code: codeOf(err), diag: err.Error()}
}

// monitor sees every incoming datagram before go-coap handles it. It ends
// observations whose notification the server answered with Reset, and
// drops requests while a queue-mode device sleeps or when fault injection
// says so.
func (d *Device) monitor(_ *client.Conn, m *pool.Message) (bool, error) {
	if m.Type() == message.Reset {
		d.mu.Lock()
		n := d.inflight
		ok := n != nil && !n.reset
		if ok {
			n.reset = true
		}
		d.mu.Unlock()
		if ok {
			d.cancelObservation(n.token, "reset")
		}
		return false, nil
	}
	if !isRequest(m.Code()) {
		return false, nil
	}
	d.mu.Lock()
	asleep := d.queueMode() && !d.awake
	drop := !asleep && d.cfg.Faults.DropRate > 0 && d.faultRng.Float64() < d.cfg.Faults.DropRate
	d.mu.Unlock()
	if !asleep && !drop {
		return false, nil
	}
	d.stats.dropped.Add(1)
	how := "fault"
	if asleep {
		how = "asleep"
	}
	p, _ := requestPath(m)
	d.emit(Event{Kind: EventDropped, Op: how, Path: p})
	return true, nil
}

func isRequest(c codes.Code) bool { return c >= codes.GET && c < 32 }

// handle answers one server request.
func (d *Device) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	if !isRequest(r.Code()) {
		return
	}
	f := d.cfg.Faults
	d.mu.Lock()
	fail := f.ErrorRate > 0 && d.faultRng.Float64() < f.ErrorRate
	delay := f.Delay > 0 && d.faultRng.Float64() < f.DelayRate
	d.mu.Unlock()
	if delay && !sleep(d.clock, f.Delay, r.Context().Done()) {
		return
	}
	if fail {
		_ = w.SetResponse(f.ErrorCode, message.TextPlain, bytes.NewReader([]byte("injected fault")))
		d.stats.faults.Add(1)
		p, _ := requestPath(r)
		d.emit(Event{Kind: EventRequest, Op: "fault", Path: p, Code: f.ErrorCode})
		return
	}
	res := d.serve(r)
	var body io.ReadSeeker
	cf := message.MediaType(res.format)
	switch {
	case res.body != nil:
		body = bytes.NewReader(res.body)
	case res.diag != "":
		body, cf = bytes.NewReader([]byte(res.diag)), message.TextPlain
	}
	if err := w.SetResponse(res.code, cf, body); err != nil {
		d.log.Debug("response not allowed by No-Response", "err", err)
		return
	}
	if res.observe {
		w.Message().SetObserve(res.seq & 0xFFFFFF)
	}
	for _, seg := range res.location {
		w.Message().AddOptionString(message.LocationPath, seg)
	}
	if res.after != nil {
		afterWrite(r, res.after)
	}
	d.touch()
	d.stats.requests.Add(1)
	if res.body != nil && res.code>>5 == 2 {
		d.capture(res.op, res.path, res.format, res.body)
	}
	d.emit(Event{Kind: EventRequest, Op: res.op, Path: res.path, Code: res.code})
}

// requestPath returns the LwM2M path of a request's Uri-Path options.
func requestPath(r *pool.Message) (lwm2m.Path, error) {
	var segs []uint16
	for _, o := range r.Options() {
		if o.ID != message.URIPath {
			continue
		}
		if len(o.Value) == 0 && len(segs) == 0 {
			continue // "/" sent as one empty segment
		}
		if len(segs) == 4 {
			return lwm2m.Root, statusf(codes.NotFound, "path deeper than 4")
		}
		n, err := strconv.ParseUint(string(o.Value), 10, 16)
		if err != nil || n > lwm2m.MaxID || (len(o.Value) > 1 && o.Value[0] == '0') {
			return lwm2m.Root, statusf(codes.NotFound, "no such path segment %q", o.Value)
		}
		segs = append(segs, uint16(n))
	}
	return lwm2m.NewPath(segs...), nil
}

// parseRequest extracts what the operations need from r.
func parseRequest(r *pool.Message) (request, error) {
	var rq request
	p, err := requestPath(r)
	if err != nil {
		return rq, err
	}
	rq.path = p
	if a, err := r.Accept(); err == nil {
		rq.accept, rq.hasAccept = lwm2m.MediaType(a), true
	}
	if f, err := r.ContentFormat(); err == nil {
		rq.format, rq.hasFormat = lwm2m.MediaType(f), true
	}
	if o, err := r.Observe(); err == nil {
		rq.observe, rq.hasObs = o, true
	}
	if r.Body() != nil {
		limit := int64(maxRequestBody)
		if p == pathFwPackage {
			limit = maxFirmware // a firmware push
		}
		if n, err := r.BodySize(); err == nil && n > limit {
			return rq, statusf(codes.RequestEntityTooLarge, "payload of %d bytes", n)
		}
		b, err := r.ReadBody()
		if err != nil {
			return rq, statusf(codes.BadRequest, "payload: %v", err)
		}
		rq.body = b
	}
	rq.queries, _ = r.Queries()
	rq.token = append(message.Token(nil), r.Token()...)
	return rq, nil
}

// serve dispatches a request to its operation.
func (d *Device) serve(r *pool.Message) response {
	rq, err := parseRequest(r)
	if err != nil {
		return failed("unknown", rq.path, err)
	}
	p := rq.path
	switch r.Code() {
	case codes.GET:
		switch {
		case rq.hasAccept && rq.accept == lwm2m.FormatLinkFormat:
			return d.discover(rq)
		case rq.hasObs && rq.observe == 0:
			return d.observe(rq)
		case rq.hasObs && rq.observe == 1:
			return d.cancelObserve(rq)
		}
		return d.read(rq)
	case codes.FETCH:
		return d.fetch(rq)
	case codes.PUT:
		if len(rq.body) == 0 && !rq.hasFormat {
			return d.writeAttributes(rq)
		}
		return d.write(rq, writeReplace)
	case codes.POST:
		switch p.Depth() {
		case 1:
			return d.create(rq)
		case 2:
			return d.write(rq, writeUpdate)
		case 3:
			d.mu.Lock()
			_, _, res, err := d.model.lookup(p)
			d.mu.Unlock()
			switch {
			case err != nil:
				return failed("execute", p, err)
			case res.def.Operations.Has(objects.E):
				return d.execute(rq)
			case res.def.Multiple && res.def.Operations.Has(objects.W):
				return d.write(rq, writeUpdate)
			}
			return failed("execute", p, statusf(codes.MethodNotAllowed, "resource %s is not executable", p))
		}
		return failed("execute", p, statusf(codes.MethodNotAllowed, "POST on %s", p))
	case codes.DELETE:
		return d.remove(rq)
	case codes.IPATCH:
		return d.writeComposite(rq)
	}
	return failed("unknown", p, statusf(codes.MethodNotAllowed, "method %v", r.Code()))
}

// read answers Read.
func (d *Device) read(rq request) response {
	p := rq.path
	if p.IsRoot() {
		return failed("read", p, statusf(codes.MethodNotAllowed, "Read on /"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.model.read(p)
	if err != nil {
		return failed("read", p, err)
	}
	return d.contentLocked("read", rq, recs)
}

// contentLocked encodes records read at rq.path in the format asked for.
func (d *Device) contentLocked(op string, rq request, recs []lwm2m.Record) response {
	f, err := d.responseFormatLocked(rq, recs)
	if err != nil {
		return failed(op, rq.path, err)
	}
	body, err := encode(f, rq.path, recs)
	if err != nil {
		return failed(op, rq.path, statusf(codes.InternalServerError, "encode %v: %v", f, err))
	}
	if body == nil {
		body = []byte{}
	}
	return response{op: op, path: rq.path, code: codes.Content, format: f, body: body}
}

// defaultFormatLocked is the format for multi-value answers without Accept.
func (d *Device) defaultFormatLocked() lwm2m.MediaType {
	if formatSupported(d.cfg.Format, d.version) {
		return d.cfg.Format
	}
	return lwm2m.FormatTLV
}

// responseFormatLocked picks the content format of a Read or Observe
// answer: the Accept option when the device supports it for these
// records (else 4.06), otherwise text/plain (octet-stream for opaque) for a
// single value and the default format for anything else.
func (d *Device) responseFormatLocked(rq request, recs []lwm2m.Record) (lwm2m.MediaType, error) {
	single := len(recs) == 1 && recs[0].Path == rq.path
	if rq.hasAccept {
		f := rq.accept
		if !formatSupported(f, d.version) || f == lwm2m.FormatLinkFormat {
			return 0, statusf(codes.NotAcceptable, "%v not supported by an LwM2M %s client", f, d.version)
		}
		if codec.SingleValue(f) {
			if !single {
				return 0, statusf(codes.NotAcceptable, "%v carries a single resource value", f)
			}
			if f == lwm2m.FormatOpaque && recs[0].Value.Type() != lwm2m.TypeOpaque {
				return 0, statusf(codes.NotAcceptable, "%s is not opaque", rq.path)
			}
		}
		return f, nil
	}
	if single {
		if recs[0].Value.Type() == lwm2m.TypeOpaque {
			return lwm2m.FormatOpaque, nil
		}
		return lwm2m.FormatText, nil
	}
	return d.defaultFormatLocked(), nil
}

// observe answers Observe: a Read that also registers the observation.
func (d *Device) observe(rq request) response {
	p := rq.path
	if p.IsRoot() {
		return failed("observe", p, statusf(codes.MethodNotAllowed, "Observe on /"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.model.read(p)
	if err != nil {
		return failed("observe", p, err)
	}
	res := d.contentLocked("observe", rq, recs)
	if res.code != codes.Content {
		return res
	}
	o := &observation{token: rq.token, paths: []lwm2m.Path{p}, format: res.format, last: recs, lastAt: d.clock.Now()}
	return d.startObservationLocked(o, res)
}

// startObservationLocked stores o (replacing an observation with the same
// token) and turns res into its first answer.
func (d *Device) startObservationLocked(o *observation, res response) response {
	key := string(o.token)
	if old := d.obs[key]; old != nil {
		o.seq = old.seq
	}
	o.seq++
	d.obs[key] = o
	res.observe, res.seq = true, o.seq
	res.after = func() {
		d.mu.Lock()
		o.active = true
		d.mu.Unlock()
		d.emit(Event{Kind: EventObserve, Path: o.firstPath()})
		d.wake()
	}
	return res
}

// cancelObserve answers an Observe with Observe=1: it ends the observation with
// the request's token and answers like a Read of what it observed (a
// composite one like a Read-Composite of its paths, whatever the path).
func (d *Device) cancelObserve(rq request) response {
	d.mu.Lock()
	o := d.obs[string(rq.token)]
	d.mu.Unlock()
	d.cancelObservation(string(rq.token), "cancel")
	if o == nil || !o.composite {
		res := d.read(rq)
		res.op = "cancel"
		return res
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.readCompositeLocked(o.paths)
	if err != nil {
		return failed("cancel-composite", o.firstPath(), err)
	}
	body, err := encode(o.format, lwm2m.Root, recs)
	if err != nil {
		return failed("cancel-composite", o.firstPath(), statusf(codes.InternalServerError, "encode %v: %v", o.format, err))
	}
	return response{op: "cancel-composite", path: o.firstPath(), code: codes.Content, format: o.format, body: body}
}

// fetch answers Read-Composite, Observe-Composite and its cancellation.
func (d *Device) fetch(rq request) response {
	op := "read-composite"
	if rq.hasObs {
		op = "observe-composite"
		if rq.observe == 1 {
			op = "cancel-composite"
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.version.AtLeast(lwm2m.V1_1) {
		return failed(op, rq.path, statusf(codes.MethodNotAllowed, "composite operations need LwM2M 1.1"))
	}
	if !rq.path.IsRoot() {
		return failed(op, rq.path, statusf(codes.MethodNotAllowed, "composite operations address /"))
	}
	if !rq.hasFormat || !compositeFormat(rq.format, d.version) {
		return failed(op, rq.path, statusf(codes.UnsupportedMediaType, "paths must be SenML"))
	}
	paths, err := decodePaths(rq.format, rq.body)
	if err != nil {
		return failed(op, rq.path, err)
	}
	if rq.hasObs && rq.observe == 1 {
		key := string(rq.token)
		if o, ok := d.obs[key]; ok {
			delete(d.obs, key)
			defer func() {
				d.mu.Unlock()
				d.emit(Event{Kind: EventCancel, Op: "cancel", Path: o.firstPath()})
				d.mu.Lock()
			}()
		}
	}
	f := rq.format
	if rq.hasAccept {
		f = rq.accept
	}
	if !compositeFormat(f, d.version) {
		return failed(op, rq.path, statusf(codes.NotAcceptable, "composite answers are SenML"))
	}
	recs, err := d.readCompositeLocked(paths)
	if err != nil {
		return failed(op, rq.path, err)
	}
	body, err := encode(f, lwm2m.Root, recs)
	if err != nil {
		return failed(op, rq.path, statusf(codes.InternalServerError, "encode %v: %v", f, err))
	}
	res := response{op: op, path: paths[0], code: codes.Content, format: f, body: body}
	if rq.hasObs && rq.observe == 0 {
		o := &observation{token: rq.token, paths: paths, composite: true, format: f, last: recs, lastAt: d.clock.Now()}
		return d.startObservationLocked(o, res)
	}
	return res
}

// write answers Write (replace or partial update).
func (d *Device) write(rq request, mode writeMode) response {
	p := rq.path
	if p.Depth() < 2 {
		return failed("write", p, statusf(codes.MethodNotAllowed, "Write on %s", p))
	}
	if !rq.hasFormat {
		return failed("write", p, statusf(codes.BadRequest, "Write without Content-Format"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !formatSupported(rq.format, d.version) || rq.format == lwm2m.FormatLinkFormat {
		return failed("write", p, statusf(codes.UnsupportedMediaType, "%v", rq.format))
	}
	recs, err := decode(rq.format, rq.body, p, d.model.typeOf, d.clock.Now())
	if err != nil {
		return failed("write", p, err)
	}
	if len(recs) == 0 {
		return failed("write", p, statusf(codes.BadRequest, "no values in the payload"))
	}
	changed, err := d.model.write(p, recs, mode)
	if err != nil {
		return failed("write", p, err)
	}
	d.afterWriteLocked(changed)
	return response{op: "write", path: p, code: codes.Changed, after: d.wake}
}

// writeComposite answers Write-Composite (iPATCH on /).
func (d *Device) writeComposite(rq request) response {
	const op = "write-composite"
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.version.AtLeast(lwm2m.V1_1) {
		return failed(op, rq.path, statusf(codes.MethodNotAllowed, "composite operations need LwM2M 1.1"))
	}
	if !rq.path.IsRoot() {
		return failed(op, rq.path, statusf(codes.MethodNotAllowed, "composite operations address /"))
	}
	if !rq.hasFormat || !compositeFormat(rq.format, d.version) {
		return failed(op, rq.path, statusf(codes.UnsupportedMediaType, "Write-Composite needs SenML"))
	}
	recs, err := decode(rq.format, rq.body, lwm2m.Root, d.model.typeOf, d.clock.Now())
	if err != nil {
		return failed(op, rq.path, err)
	}
	if len(recs) == 0 {
		return failed(op, rq.path, statusf(codes.BadRequest, "no values in the payload"))
	}
	changed, err := d.model.write(lwm2m.Root, recs, writeUpdate)
	if err != nil {
		return failed(op, rq.path, err)
	}
	d.afterWriteLocked(changed)
	return response{op: op, path: recs[0].Path, code: codes.Changed, after: d.wake}
}

// checkWrite validates values of resources with rules beyond their type.
func (d *Device) checkWrite(p lwm2m.Path, v lwm2m.Value) error {
	switch p {
	case pathLifetime:
		if v.IntValue() < 1 {
			return statusf(codes.BadRequest, "lifetime %d below 1", v.IntValue())
		}
	case pathDefaultPMin, pathDefaultPMax, pathDisableTime:
		if v.IntValue() < 0 {
			return statusf(codes.BadRequest, "%s must not be negative", p)
		}
	case pathBinding:
		if s := v.StringValue(); s != "U" && s != "UQ" {
			return statusf(codes.BadRequest, "binding %q not supported (U or UQ)", s)
		}
	case pathFwURI:
		if len(v.StringValue()) > 255 {
			return statusf(codes.BadRequest, "package URI longer than 255 bytes")
		}
		return d.checkFwWriteLocked(p, v)
	case pathFwPackage:
		if len(v.Opaque()) > maxFirmware {
			return statusf(codes.RequestEntityTooLarge, "firmware package larger than %d bytes", maxFirmware)
		}
		return d.checkFwWriteLocked(p, v)
	}
	return nil
}

// afterWriteLocked reacts to written resources: a new lifetime or binding
// is announced with an Update, a written Current Time moves the device's
// clock, firmware writes start a download.
func (d *Device) afterWriteLocked(changed []lwm2m.Path) {
	for _, p := range changed {
		switch p {
		case pathLifetime, pathBinding:
			d.wantUpdate = true
		case pathCurrentTime:
			d.timeOffset = d.model.valueStored(pathCurrentTime).TimeValue().Sub(d.clock.Now())
		case pathFwURI:
			d.fwURIWrittenLocked()
		case pathFwPackage:
			d.fwPackageWrittenLocked()
		}
	}
}

// writeAttributes answers Write-Attributes (PUT with Uri-Query only).
func (d *Device) writeAttributes(rq request) response {
	const op = "write-attributes"
	p := rq.path
	if p.IsRoot() {
		return failed(op, p, statusf(codes.MethodNotAllowed, "Write-Attributes on /"))
	}
	a, err := linkformat.ParseQuery(rq.queries)
	if err != nil {
		return failed(op, p, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _, r, err := d.model.lookup(p)
	if err != nil {
		return failed(op, p, err)
	}
	if a.GT != nil || a.LT != nil || a.ST != nil {
		if r == nil || !numericType(r.def.Type) {
			return failed(op, p, statusf(codes.BadRequest, "gt, lt and st apply to numeric resources"))
		}
	}
	merged := d.attrs[p].Merge(a)
	if err := merged.Validate(); err != nil {
		return failed(op, p, err)
	}
	if merged.Set() == 0 {
		delete(d.attrs, p)
	} else {
		d.attrs[p] = merged
	}
	return response{op: op, path: p, code: codes.Changed, after: d.wake}
}

func numericType(t lwm2m.Type) bool {
	return t == lwm2m.TypeInteger || t == lwm2m.TypeUnsigned || t == lwm2m.TypeFloat
}

// discover answers Discover with the node, its children and the attributes
// written on each.
func (d *Device) discover(rq request) response {
	const op = "discover"
	p := rq.path
	if p.IsRoot() || p.IsResourceInstance() {
		return failed(op, p, statusf(codes.MethodNotAllowed, "Discover on %s", p))
	}
	if rq.hasObs {
		return failed(op, p, statusf(codes.BadRequest, "Discover cannot be observed"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, in, r, err := d.model.lookup(p)
	if err != nil {
		return failed(op, p, err)
	}
	var links []linkformat.DiscoverLink
	link := func(q lwm2m.Path) linkformat.DiscoverLink {
		return linkformat.DiscoverLink{Path: q, Attrs: d.attrs[q]}
	}
	addResource := func(q lwm2m.Path, r *resource, withInstances bool) {
		l := link(q)
		if r.def.Multiple {
			n := len(r.multi)
			l.Dim = &n
		}
		links = append(links, l)
		if withInstances {
			for _, ri := range r.multi {
				links = append(links, link(q.Child(ri.id)))
			}
		}
	}
	addInstance := func(q lwm2m.Path, in *instance) {
		links = append(links, link(q))
		for _, rid := range sortedKeys(in.res) {
			addResource(q.Child(rid), in.res[rid], false)
		}
	}
	switch p.Depth() {
	case 1:
		l := link(p)
		if o.def.Version != "1.0" {
			l.Ver = o.def.Version
		}
		links = append(links, l)
		for _, id := range sortedKeys(o.inst) {
			addInstance(p.Child(id), o.inst[id])
		}
	case 2:
		addInstance(p, in)
	case 3:
		addResource(p, r, true)
	}
	return response{op: op, path: p, code: codes.Content, format: lwm2m.FormatLinkFormat, body: linkformat.FormatDiscover(links)}
}

// execute answers Execute.
func (d *Device) execute(rq request) response {
	const op = "execute"
	p := rq.path
	args := string(rq.body)
	if err := checkExecArgs(args); err != nil {
		return failed(op, p, err)
	}
	d.mu.Lock()
	var after func()
	switch {
	case p == pathReboot:
		after = d.Reboot
	case p == pathFactoryReset:
		after = func() {
			d.mu.Lock()
			d.factoryResetLocked()
			d.requestRebootLocked()
			d.mu.Unlock()
			d.wake()
		}
	case p == pathResetError:
		_, _, r, _ := d.model.lookup(pathErrorCode)
		r.multi = []resInst{{0, lwm2m.Int(0)}}
	case p == pathUpdateTrigger:
		d.wantUpdate = true
		after = d.wake
	case p == pathDisable:
		d.wantDisable = true
		after = d.wake
	case p == pathFwUpdate:
		if err := d.fwUpdateLocked(); err != nil {
			d.mu.Unlock()
			return failed(op, p, err)
		}
		after = d.wake
	case (p.Object() == objTemp || p.Object() == objHumidity) && p.Resource() == resResetMinMax:
		d.resetMinMax(p.Truncate(2))
		after = d.wake
	}
	d.mu.Unlock()
	d.emit(Event{Kind: EventExecute, Path: p, Args: args})
	return response{op: op, path: p, code: codes.Changed, after: after}
}

// checkExecArgs validates Execute arguments (LwM2M 1.1 §5.4.5): a
// comma-separated list of single digits, each optionally followed by
// ='value' where value has no quote.
func checkExecArgs(s string) error {
	bad := func(i int, what string) error {
		return statusf(codes.BadRequest, "execute arguments: offset %d: %s", i, what)
	}
	for i := 0; i < len(s); {
		if s[i] < '0' || s[i] > '9' {
			return bad(i, "want a digit")
		}
		i++
		if i < len(s) && s[i] == '=' {
			i++
			if i >= len(s) || s[i] != '\'' {
				return bad(i, "want a quoted value")
			}
			i++
			for i < len(s) && s[i] != '\'' {
				if c := s[i]; c < 0x21 || c > 0x7e {
					if c != ' ' {
						return bad(i, "character not allowed in a value")
					}
				}
				i++
			}
			if i >= len(s) {
				return bad(i, "unterminated value")
			}
			i++
		}
		if i < len(s) {
			if s[i] != ',' {
				return bad(i, "want ','")
			}
			i++
			if i == len(s) {
				return bad(i, "trailing ','")
			}
		}
	}
	return nil
}

// create answers Create.
func (d *Device) create(rq request) response {
	const op = "create"
	p := rq.path
	d.mu.Lock()
	defer d.mu.Unlock()
	var recs []lwm2m.Record
	if len(rq.body) > 0 {
		if !rq.hasFormat || !formatSupported(rq.format, d.version) || codec.SingleValue(rq.format) || rq.format == lwm2m.FormatLinkFormat {
			return failed(op, p, statusf(codes.UnsupportedMediaType, "Create payload format %v", rq.format))
		}
		var err error
		if recs, err = decode(rq.format, rq.body, p, d.model.typeOf, d.clock.Now()); err != nil {
			return failed(op, p, err)
		}
	}
	id, err := d.model.create(p.Object(), recs)
	if err != nil {
		return failed(op, p, err)
	}
	d.wantUpdate = true
	np := p.Child(id)
	return response{op: op, path: np, code: codes.Created,
		location: []string{strconv.Itoa(int(p.Object())), strconv.Itoa(int(id))}, after: d.wake}
}

// remove answers Delete.
func (d *Device) remove(rq request) response {
	const op = "delete"
	p := rq.path
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.model.remove(p); err != nil {
		return failed(op, p, err)
	}
	for q := range d.attrs {
		if q.HasPrefix(p) {
			delete(d.attrs, q)
		}
	}
	delete(d.walks, p)
	d.wantUpdate = true
	return response{op: op, path: p, code: codes.Deleted, after: d.wake}
}
