package api

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// The event stream offers the topics of events.Topics: a topic's Name is
// the SSE event name, its Doc a line of the OpenAPI description, and the
// schema of its Data is shown in the OpenAPI document.

// TopicDropped is the SSE event name of the stream's own notice that
// events were lost: the feed dropped them for a client that read too
// slowly, and the event log, from which the stream fills such gaps, could
// not be read. Its data's Data is a Dropped. It is always sent, not
// filtered by topic, and never published on the bus.
const TopicDropped = "dropped"

// Dropped reports events a stream lost (see TopicDropped).
type Dropped struct {
	Count uint64 `json:"count" doc:"Events lost since the previous dropped notice"`
	Total uint64 `json:"total" doc:"Events lost since the stream opened"`
}

// StreamEvent is the data of one message of the event stream, as JSON on
// its data: line.
type StreamEvent struct {
	Topic    string    `json:"topic" doc:"The topic, also the message's event: name"`
	Time     time.Time `json:"time" doc:"When it happened"`
	Endpoint string    `json:"endpoint,omitempty" doc:"The device it concerns"`
	Data     any       `json:"data,omitempty" doc:"Specific to the topic"`
}

// streamWriteTimeout bounds the write of one batch of messages: a client
// that stops reading for this long loses its stream.
const streamWriteTimeout = 10 * time.Second

// The event streams' share of the events.Feed: each stream holds at most
// streamBuffer messages and streamMaxBytes bytes of them (shared with the
// other streams) before the feed drops for it (the stream then reads the
// event log instead), and is woken at most every streamInterval, so that
// it writes a burst of events with one flush.
const (
	streamBuffer   = events.DefaultBuffer
	streamMaxBytes = events.DefaultMaxBytes
	streamInterval = 50 * time.Millisecond
)

var keepAliveComment = []byte(": keep-alive\n\n")

// TopicReset is the SSE event name of the stream's notice that events
// after the client's Last-Event-ID are no longer in the event log (older
// than its retention, or the log was replaced): the client missed some.
// Its data's Data is a Reset. Always sent, never published on the bus.
const TopicReset = "reset"

// Reset tells a resuming client where the event log begins.
type Reset struct {
	LastEventID int64 `json:"last_event_id" doc:"The id the client resumed after"`
	Oldest      int64 `json:"oldest" doc:"The oldest event id still logged, 0 when the log is empty"`
}

// replayPage is how many logged events a resuming stream reads at a time.
const replayPage = 200

type streamInput struct {
	Endpoint    string   `query:"endpoint" doc:"Only events of this endpoint" example:"urn:imei:356938035643809"`
	Topic       []string `query:"topic,explode" doc:"Only these topics: repeat the parameter or separate topics by commas; all when absent"`
	LastEventID string   `header:"Last-Event-ID" doc:"Resume after this event id: the logged events after it that the filters select come first, then the live ones"`
	LastEventQ  string   `query:"last_event_id" doc:"As the Last-Event-ID header, for clients that cannot set headers; the header wins"`
}

func (a *API) streamRoutes(h huma.API) {
	a.feed = events.NewFeed(a.opts.Events, events.FeedConfig{
		Encode: a.encodeEvent, Buffer: streamBuffer, MaxBytes: streamMaxBytes, Interval: streamInterval,
	})
	names := make([]string, 0, len(events.Topics)+1)
	var lines strings.Builder
	var dataSchemas []*huma.Schema
	seen := map[reflect.Type]bool{}
	reg := h.OpenAPI().Components.Schemas
	for _, t := range events.Topics {
		names = append(names, t.Name)
		lines.WriteString("\n- `" + t.Name + "`: " + t.Doc)
		if typ := reflect.TypeOf(t.Data); typ != nil && !seen[typ] {
			seen[typ] = true
			dataSchemas = append(dataSchemas, reg.Schema(typ, true, t.Name))
		}
	}
	names = append(names, TopicDropped, TopicReset)
	dataSchemas = append(dataSchemas, reg.Schema(reflect.TypeFor[Dropped](), true, TopicDropped),
		reg.Schema(reflect.TypeFor[Reset](), true, TopicReset))
	envelope := reg.Schema(reflect.TypeFor[StreamEvent](), true, "")
	message := &huma.Schema{
		Type:        huma.TypeObject,
		Description: "One message: `id:` (not on `dropped` and `reset`), `event:` and `data:` lines and a blank line. Lines starting with `:` are keep-alive comments.",
		Properties: map[string]*huma.Schema{
			"id":    {Type: huma.TypeInteger, Description: "The event's id in the durable event log: it grows with every event, is the same on every stream and after a restart, and is what Last-Event-ID resumes after"},
			"event": {Type: huma.TypeString, Enum: toAny(names), Description: "The topic"},
			"data": {AllOf: []*huma.Schema{envelope}, Description: "A StreamEvent as JSON; its data is one of these, by topic",
				Properties: map[string]*huma.Schema{"data": {OneOf: dataSchemas}}},
		},
		Required: []string{"event", "data"},
	}
	register(h, auth.ViewData, huma.Operation{
		OperationID: "stream-events", Method: http.MethodGet, Path: Prefix + "/events/stream",
		Summary: "Live events as Server-Sent Events", Tags: []string{"events"},
		Description: "A text/event-stream of the events of the durable event log as they are logged: one " +
			"message per event, `id:` its id in the log, `event:` its topic and `data:` a StreamEvent as JSON. " +
			"The subscription is in place when the response headers arrive. A client that reconnects " +
			"with `Last-Event-ID` (or `last_event_id`) set to the last id it got first receives every " +
			"logged event after it that its filters and its user's sites select, then the live ones, " +
			"with no gap and no duplicate. Events are logged for the server's event retention: when " +
			"some after the given id are gone, a `reset` message says so first. A comment line keeps " +
			"the connection alive every " + a.opts.KeepAlive.String() + ". A client that reads slower " +
			"than events come never delays the server: its stream falls behind the live events and " +
			"catches up from the event log, in order; only when the log cannot be read does a `dropped` " +
			"message say how many events were lost (reconnecting with the last id received fetches them). The stream ends " +
			"when the server stops, and at a keep-alive after its token is revoked or its user disabled. Topics:" +
			lines.String() +
			"\n- `dropped`: events this stream lost (always sent, no id)." +
			"\n- `reset`: events after Last-Event-ID are no longer logged (always sent, no id).",
		Responses: map[string]*huma.Response{"200": {
			Description: "The event stream",
			Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: message}},
		}},
	}, a.streamEvents)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// streamTopics parses the topic filter: nil for all topics, else the
// topics named, each of which must be known.
func (a *API) streamTopics(in []string) ([]string, error) {
	var set []string
	for _, v := range in {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.ContainsFunc(events.Topics, func(st events.Topic) bool { return st.Name == t }) {
				names := make([]string, len(events.Topics))
				for i, st := range events.Topics {
					names[i] = st.Name
				}
				return nil, badRequest("unknown topic " + strconv.Quote(t) + "; topics are " + strings.Join(names, ", "))
			}
			if !slices.Contains(set, t) {
				set = append(set, t)
			}
		}
	}
	return set, nil
}

func (a *API) streamEvents(ctx context.Context, in *streamInput) (*huma.StreamResponse, error) {
	topics, err := a.streamTopics(in.Topic)
	if err != nil {
		return nil, err
	}
	resume := int64(-1)
	if v := cmp.Or(in.LastEventID, in.LastEventQ); v != "" {
		if resume, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || resume < 0 {
			return nil, badRequest("Last-Event-ID must be an event id (a whole number >= 0), not " + strconv.Quote(v))
		}
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		w, ok := hctx.BodyWriter().(http.ResponseWriter)
		if !ok {
			a.opts.Logger.Error("event stream needs a net/http response writer")
			hctx.SetStatus(http.StatusInternalServerError)
			return
		}
		a.stream(hctx.Context(), w, events.Filter{Endpoint: in.Endpoint, Topics: topics}, resume)
	}}, nil
}

// encodeEvent is the feed's encoder: the event as the `event:` and
// `data:` lines of a message and the blank line that ends it, shared by
// every stream that gets it (each writes its own `id:` line first). It
// returns nil for an event whose data is not encodable.
func (a *API) encodeEvent(ev events.Event) []byte {
	data, err := json.Marshal(StreamEvent{Topic: ev.Topic, Time: ev.Time, Endpoint: ev.Endpoint, Data: ev.Data})
	if err != nil {
		a.opts.Logger.Error("event not encodable", "topic", ev.Topic, "endpoint", ev.Endpoint, "err", err)
		return nil
	}
	b := make([]byte, 0, len("event: \ndata: \n\n")+len(ev.Topic)+len(data))
	b = append(b, "event: "...)
	b = append(b, ev.Topic...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// stream writes the events filter selects to w until the client goes
// away, a write fails or times out, CloseStreams is called, or, checked at
// each keep-alive, the caller is no longer authorized (see
// stillAuthorized). Each event's message carries its log id (`id:`).
// With resume >= 0, the logged events after resume come first (see
// replay).
func (a *API) stream(ctx context.Context, w http.ResponseWriter, filter events.Filter, resume int64) {
	rd := a.feed.Open(filter) // live first: what is logged from now on comes through rd
	defer rd.Close()
	// Everything logged before rd was open is in the log up to newest:
	// the recorder publishes an event only after its batch committed. The
	// stream starts after newest, or after resume.
	oldest, newest, err := a.opts.Store.EventLogBounds(ctx)
	if err != nil {
		a.opts.Logger.Error("event stream: event log unreadable", "err", err)
		problem.Write(w, problem.Internal(""))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front (nginx) must not hold messages back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// Writes go to the response's buffer, which sends full chunks as it
	// fills; flush ends a burst.
	var werr error
	write := func(b []byte) {
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	deadline := func() {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // best effort: not every writer has deadlines
	}
	flush := func() bool {
		if werr == nil {
			werr = rc.Flush()
		}
		return werr == nil
	}
	deadline()
	if !flush() { // the headers: the client now knows it is subscribed
		return
	}
	var reported uint64
	last := newest // the id of the last logged event dealt with
	var line [32]byte
	message := func(id int64, b []byte) {
		if id > 0 {
			write(append(strconv.AppendInt(append(line[:0], "id: "...), id, 10), '\n'))
		}
		write(b)
	}
	var lost uint64 // events the stream could not fill in from the log
	noteLost := func(n uint64) {
		lost += n
		if b := a.encodeEvent(events.Event{Topic: TopicDropped, Time: a.opts.Now(),
			Data: Dropped{Count: n, Total: lost}}); b != nil {
			message(0, b)
		}
	}
	keepAlive := time.NewTicker(a.opts.KeepAlive)
	defer keepAlive.Stop()
	var msgs []*events.Message
	scope := userFrom(ctx).Subject.Scope(auth.ViewData)
	if resume >= 0 {
		// Some events after resume are gone when the oldest one left is
		// past the next, or the log was emptied or replaced meanwhile.
		if oldest > resume+1 || (resume > 0 && oldest == 0) || resume > newest {
			if b := a.encodeEvent(events.Event{Topic: TopicReset, Time: a.opts.Now(),
				Data: Reset{LastEventID: resume, Oldest: oldest}}); b != nil {
				message(0, b)
			}
		}
		var ok bool
		if last, ok, err = a.replay(ctx, filter, scope, resume, newest, message, deadline, flush); !ok || err != nil {
			if err != nil {
				a.opts.Logger.Error("event stream: replay from the event log failed", "err", err)
			}
			return // the client resumes after the last id it got
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.closing:
			return
		case <-keepAlive.C:
			s, ok := a.stillAuthorized(ctx)
			if !ok {
				return
			}
			scope = s.Scope(auth.ViewData)
			deadline()
			write(keepAliveComment)
		case <-rd.Ready:
			deadline()
			msgs = rd.Take(msgs[:0])
			// The feed dropped some events for this stream (it read too
			// slowly): the log has them and those taken, in order.
			if d := rd.Dropped(); d > reported {
				n := d - reported
				reported = d
				clear(msgs)
				msgs = msgs[:0]
				_, through, err := a.opts.Store.EventLogBounds(ctx)
				if err == nil {
					var ok bool
					if last, ok, err = a.replay(ctx, filter, scope, last, through, message, deadline, flush); !ok {
						return
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					a.opts.Logger.Warn("event stream: events dropped for a slow client could not be read from the event log", "err", err)
					noteLost(n)
				}
			}
			for _, m := range msgs {
				// Skip what a replay dealt with: the live events
				// logged before it ended.
				if m.ID > last && a.inScope(ctx, scope, m.Endpoint) {
					message(m.ID, m.Bytes)
					last = m.ID
				}
			}
			clear(msgs) // the messages are the feed's to free
		}
		if !flush() {
			return
		}
	}
}

// replay writes the logged events after `after` up to `through` that
// filter and scope select, a page at a time, each page flushed, and
// returns through: the live events up to it were dealt with. When the
// log cannot be read it returns the last id it dealt with and the error.
// ok is false when the stream must end (a write failed, the streams are
// closing, the client went away).
func (a *API) replay(ctx context.Context, filter events.Filter, scope auth.Scope, after, through int64,
	message func(int64, []byte), deadline func(), flush func() bool) (last int64, ok bool, err error) {
	for after < through {
		page, err := a.opts.Store.EventsAfter(ctx, store.EventFilter{After: after, Through: through, Limit: replayPage,
			Scope: auth.Everything, Topics: filter.Topics, Endpoint: filter.Endpoint})
		if err != nil {
			return after, ctx.Err() == nil, err
		}
		if len(page) == 0 {
			break
		}
		deadline()
		for _, e := range page {
			after = e.ID
			// The device's site when the event was logged and now must
			// both be the user's.
			if e.Endpoint != "" && !scope.All && !scope.Contains(e.SiteID) || !a.inScope(ctx, scope, e.Endpoint) {
				continue
			}
			if b := a.encodeEvent(events.Event{ID: e.ID, Topic: e.Topic, Time: e.Time, Endpoint: e.Endpoint,
				Data: e.Data}); b != nil {
				message(e.ID, b)
			}
		}
		if !flush() {
			return after, false, nil
		}
		select {
		case <-a.closing:
			return after, false, nil
		case <-ctx.Done():
			return after, false, nil
		default:
		}
	}
	return through, true, nil
}

// inScope reports whether a stream whose user reaches sc may carry an
// event of the endpoint: always for an event of no endpoint; for a
// device's, when its site (remembered by the SiteResolver) is in sc. An
// unknown endpoint (removed meanwhile) or a failed lookup is out.
func (a *API) inScope(ctx context.Context, sc auth.Scope, endpoint string) bool {
	if sc.All || endpoint == "" {
		return true
	}
	site, known, err := a.sites.Site(ctx, endpoint)
	if err != nil {
		if ctx.Err() == nil {
			a.opts.Logger.Warn("event stream: site of an endpoint unknown; its event is left out", "endpoint", endpoint, "err", err)
		}
		return false
	}
	return known && sc.Contains(site)
}

// CloseStreams ends every open event stream, each with a complete
// response, and makes streams opened later end at once. The server calls
// it when it begins to shut down, so that open streams do not hold the
// shutdown up. Calls after the first do nothing.
func (a *API) CloseStreams() { a.closeOnce.Do(func() { close(a.closing) }) }
