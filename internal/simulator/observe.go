package simulator

import (
	"bytes"
	"context"
	"math"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
)

// observation is one Observe or Observe-Composite the server holds on the
// device, keyed by its token.
type observation struct {
	token     message.Token
	paths     []lwm2m.Path // one for Observe
	composite bool
	format    lwm2m.MediaType
	seq       uint32 // Observe option value of the last message
	last      []lwm2m.Record
	lastAt    time.Time
	active    bool // the Observe response has been sent
}

// inflightNote is a notification waiting for its acknowledgement. Only the
// run loop sends confirmable messages (Register, Update, Send and
// notifications), one at a time, so a Reset that arrives while a
// notification is in flight answers that notification. (go-coap assigns
// the message ID itself when it sends through its block-wise layer, so
// matching by message ID is not possible.)
type inflightNote struct {
	token string
	reset bool // answered with Reset; guarded by Device.mu
}

// note is a notification ready to go out.
type note struct {
	obs  *observation
	seq  uint32
	code codes.Code // 2.05, or an error code that ends the observation
	recs []lwm2m.Record
	body []byte
}

func (o *observation) firstPath() lwm2m.Path { return o.paths[0] }

// readLocked returns the records an observation covers now. For a
// composite observation paths that no longer exist are left out; it fails
// only when none is left.
func (d *Device) observedRecordsLocked(o *observation) ([]lwm2m.Record, error) {
	if !o.composite {
		return d.model.read(o.paths[0])
	}
	return d.readCompositeLocked(o.paths)
}

// readCompositeLocked reads several paths into one list, without
// duplicates, in path order.
func (d *Device) readCompositeLocked(paths []lwm2m.Path) ([]lwm2m.Record, error) {
	var out []lwm2m.Record
	seen := map[lwm2m.Path]bool{}
	found := false
	var lastErr error
	for _, p := range paths {
		rs, err := d.model.read(p)
		if err != nil {
			lastErr = err
			continue
		}
		found = true
		for _, r := range rs {
			if !seen[r.Path] {
				seen[r.Path] = true
				out = append(out, r)
			}
		}
	}
	if !found {
		if lastErr == nil {
			lastErr = statusf(codes.NotFound, "no path given")
		}
		return nil, lastErr
	}
	lwm2m.SortRecords(out)
	return out, nil
}

// attributesLocked returns the attributes in force for a path: the
// server's defaults (Default Minimum and Maximum Period of object 1), then
// those written on the object, instance, resource and resource instance,
// each level overriding the one above.
func (d *Device) attributesLocked(p lwm2m.Path) linkformat.Attributes {
	var a linkformat.Attributes
	if v := d.model.value(pathDefaultPMin).IntValue(); v > 0 {
		a.PMin = &v
	}
	if v := d.model.value(pathDefaultPMax).IntValue(); v > 0 {
		a.PMax = &v
	}
	for depth := 1; depth <= p.Depth(); depth++ {
		if w, ok := d.attrs[p.Truncate(depth)]; ok {
			a = a.Merge(w)
		}
	}
	return a
}

// periods returns pmin and pmax of a (0 when absent; pmax 0 means none, as
// does a pmax below pmin).
func periods(a linkformat.Attributes) (pmin, pmax time.Duration) {
	if a.PMin != nil {
		pmin = time.Duration(*a.PMin) * time.Second
	}
	if a.PMax != nil {
		pmax = time.Duration(*a.PMax) * time.Second
	}
	if pmax < pmin {
		pmax = 0
	}
	return pmin, pmax
}

// worthNotifying reports whether cur differs from what the server last
// got, as far as the attributes care: for a single numeric resource with
// gt, lt or st, only a crossing of gt or lt or a change of at least st
// counts; otherwise any change does.
func worthNotifying(last, cur []lwm2m.Record, a linkformat.Attributes) bool {
	if recordsEqual(last, cur) {
		return false
	}
	if len(last) != 1 || len(cur) != 1 || (a.GT == nil && a.LT == nil && a.ST == nil) {
		return true
	}
	old, ok1 := numeric(last[0].Value)
	now, ok2 := numeric(cur[0].Value)
	if !ok1 || !ok2 {
		return true
	}
	if a.GT != nil && (old > *a.GT) != (now > *a.GT) {
		return true
	}
	if a.LT != nil && (old < *a.LT) != (now < *a.LT) {
		return true
	}
	if a.ST != nil && math.Abs(now-old) >= *a.ST {
		return true
	}
	return false
}

func numeric(v lwm2m.Value) (float64, bool) {
	switch v.Type() {
	case lwm2m.TypeInteger:
		return float64(v.IntValue()), true
	case lwm2m.TypeUnsigned:
		return float64(v.UintValue()), true
	case lwm2m.TypeFloat:
		return v.FloatValue(), true
	}
	return 0, false
}

func recordsEqual(a, b []lwm2m.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

// dueNotificationsLocked returns the notifications to send now, already
// encoded and with their sequence numbers taken, and the earliest time a
// further one may fall due (zero: none pending).
func (d *Device) dueNotificationsLocked(now time.Time) ([]note, time.Time) {
	var out []note
	var next time.Time
	for _, o := range d.obs {
		if !o.active {
			continue
		}
		cur, err := d.observedRecordsLocked(o)
		if err != nil {
			// The observed node is gone: tell the server, which ends
			// the observation.
			o.seq++
			out = append(out, note{obs: o, seq: o.seq, code: codeOf(err)})
			continue
		}
		a := linkformat.Attributes{}
		if !o.composite {
			a = d.attributesLocked(o.firstPath())
		} else {
			a = d.attributesLocked(lwm2m.Root)
		}
		pmin, pmax := periods(a)
		due := false
		if worthNotifying(o.last, cur, a) {
			if at := o.lastAt.Add(pmin); now.Before(at) {
				next = earliest(next, at)
			} else {
				due = true
			}
		}
		if pmax > 0 && !due {
			if at := o.lastAt.Add(pmax); now.Before(at) {
				next = earliest(next, at)
			} else {
				due = true
			}
		}
		if !due {
			continue
		}
		body, err := encode(o.format, o.encodeBase(), cur)
		if err != nil {
			d.log.Error("notification: encode", "path", o.firstPath().String(), "err", err)
			continue
		}
		o.seq++
		o.last = cur
		o.lastAt = now
		if pmax > 0 {
			next = earliest(next, now.Add(pmax))
		}
		out = append(out, note{obs: o, seq: o.seq, code: codes.Content, recs: cur, body: body})
	}
	return out, next
}

// encodeBase is the base path notification payloads are encoded for.
func (o *observation) encodeBase() lwm2m.Path {
	if o.composite {
		return lwm2m.Root
	}
	return o.paths[0]
}

// notify sends one confirmable notification and waits for its
// acknowledgement. An observation ends when the server answers with Reset,
// when the notification times out (RFC 7641 §4.5) and after an error
// notification. A socket that closes under the notification (go-coap
// closes a client's socket on an ICMP error, as while the server
// restarts) is not the server losing interest: the notification goes
// again from a new socket, as the CoAP layer would have retransmitted it,
// until Config.RequestTimeout has passed (real time, as go-coap's
// retransmissions).
func (d *Device) notify(ctx context.Context, n note) {
	start := time.Now()
	wait := notifyResend
	for {
		conn := d.connection()
		if conn == nil {
			return
		}
		reset, err := d.notifyOn(ctx, conn, n, d.cfg.RequestTimeout-time.Since(start))
		closed := err != nil && !reset && ctx.Err() == nil && conn.Context().Err() != nil
		if closed && time.Since(start)+wait < d.cfg.RequestTimeout {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, maxNotifyResend)
			d.reopenIfClosed()
			continue
		}
		switch {
		case reset:
			// The server answered with Reset: the monitor ended the
			// observation.
			return
		case err != nil:
			d.stats.errors.Add(1)
			d.emit(Event{Kind: EventNotifyFailed, Path: n.obs.firstPath(), Err: err})
			if ctx.Err() == nil {
				// Not acknowledged in time (or not sent at all): the
				// server is taken to have lost interest.
				d.cancelObservation(string(n.obs.token), "timeout")
			}
			return
		case n.code != codes.Content:
			d.cancelObservation(string(n.obs.token), "gone")
			return
		}
		d.touch()
		d.stats.notifications.Add(1)
		d.emit(Event{Kind: EventNotified, Path: n.obs.firstPath(), Code: n.code})
		return
	}
}

// notifyResend and maxNotifyResend are the first and the longest wait
// before a notification whose socket closed goes again.
const (
	notifyResend    = 200 * time.Millisecond
	maxNotifyResend = 2 * time.Second
)

// notifyOn sends the notification n on conn and waits up to timeout for
// its acknowledgement; reset reports that a Reset answered it.
func (d *Device) notifyOn(ctx context.Context, conn *client.Conn, n note, timeout time.Duration) (reset bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, max(timeout, 0))
	defer cancel()
	msg := conn.AcquireMessage(rctx)
	defer conn.ReleaseMessage(msg)
	msg.SetCode(n.code)
	msg.SetToken(n.obs.token)
	msg.SetType(message.Confirmable)
	if n.code == codes.Content {
		msg.SetObserve(n.seq & 0xFFFFFF)
		msg.SetContentFormat(message.MediaType(n.obs.format))
		msg.SetBody(bytes.NewReader(n.body))
	}
	inflight := &inflightNote{token: string(n.obs.token)}
	d.mu.Lock()
	d.inflight = inflight
	d.mu.Unlock()
	if n.code == codes.Content {
		d.capture("notify", n.obs.firstPath(), n.obs.format, n.body)
	}
	err = conn.WriteMessage(msg)
	d.mu.Lock()
	d.inflight = nil
	reset = inflight.reset
	d.mu.Unlock()
	return reset, err
}

// cancelObservation removes the observation with the given token.
func (d *Device) cancelObservation(token, how string) {
	d.mu.Lock()
	o, ok := d.obs[token]
	delete(d.obs, token)
	d.mu.Unlock()
	if ok {
		d.emit(Event{Kind: EventCancel, Op: how, Path: o.firstPath()})
	}
}

// clearObservationsLocked drops every observation (a new registration
// starts without any).
func (d *Device) clearObservationsLocked() {
	clear(d.obs)
}

// Observations returns the number of observations the device holds.
func (d *Device) Observations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.obs)
}
