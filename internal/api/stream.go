package api

import (
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
)

// The event stream offers the topics of events.Topics: a topic's Name is
// the SSE event name, its Doc a line of the OpenAPI description, and the
// schema of its Data is shown in the OpenAPI document.

// TopicDropped is the SSE event name of the stream's own notice that
// events were lost; its data's Data is a Dropped. It is always sent, not
// filtered by topic, and never published on the bus.
const TopicDropped = "dropped"

// Dropped reports events a stream lost because its client read them
// slower than they came.
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
// other streams) before it drops, and is woken at most every
// streamInterval, so that it writes a burst of events with one flush.
const (
	streamBuffer   = events.DefaultBuffer
	streamMaxBytes = events.DefaultMaxBytes
	streamInterval = 50 * time.Millisecond
)

var keepAliveComment = []byte(": keep-alive\n\n")

type streamInput struct {
	Endpoint string   `query:"endpoint" doc:"Only events of this endpoint" example:"urn:imei:356938035643809"`
	Topic    []string `query:"topic,explode" doc:"Only these topics: repeat the parameter or separate topics by commas; all when absent"`
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
	names = append(names, TopicDropped)
	dataSchemas = append(dataSchemas, reg.Schema(reflect.TypeFor[Dropped](), true, TopicDropped))
	envelope := reg.Schema(reflect.TypeFor[StreamEvent](), true, "")
	message := &huma.Schema{
		Type:        huma.TypeObject,
		Description: "One message: `id:`, `event:` and `data:` lines and a blank line. Lines starting with `:` are keep-alive comments.",
		Properties: map[string]*huma.Schema{
			"id":    {Type: huma.TypeInteger, Description: "Number of the message in this stream, from 1"},
			"event": {Type: huma.TypeString, Enum: toAny(names), Description: "The topic"},
			"data": {AllOf: []*huma.Schema{envelope}, Description: "A StreamEvent as JSON; its data is one of these, by topic",
				Properties: map[string]*huma.Schema{"data": {OneOf: dataSchemas}}},
		},
		Required: []string{"id", "event", "data"},
	}
	register(h, auth.ViewData, huma.Operation{
		OperationID: "stream-events", Method: http.MethodGet, Path: Prefix + "/events/stream",
		Summary: "Live events as Server-Sent Events", Tags: []string{"events"},
		Description: "A text/event-stream of what happens while it is open: one message per event, " +
			"`event:` its topic and `data:` a StreamEvent as JSON. Nothing is replayed: a client that " +
			"reconnects reads the current state from the other routes. The subscription is in place " +
			"when the response headers arrive. A comment line keeps the connection alive every " +
			a.opts.KeepAlive.String() + ". A client that reads slower than events come loses events, " +
			"never delays the server: a `dropped` message then says how many. The stream ends when " +
			"the server stops, and at a keep-alive after its token is revoked or its user disabled. Topics:" + lines.String() +
			"\n- `dropped`: events this stream lost (always sent).",
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
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		w, ok := hctx.BodyWriter().(http.ResponseWriter)
		if !ok {
			a.opts.Logger.Error("event stream needs a net/http response writer")
			hctx.SetStatus(http.StatusInternalServerError)
			return
		}
		a.stream(hctx.Context(), w, events.Filter{Endpoint: in.Endpoint, Topics: topics})
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
// stillAuthorized). Messages
// are numbered (`id:`) in the stream from 1, dropped notices included.
func (a *API) stream(ctx context.Context, w http.ResponseWriter, filter events.Filter) {
	rd := a.feed.Open(filter)
	defer rd.Close()
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
	var id, reported uint64
	var line [32]byte
	message := func(b []byte) {
		id++
		write(append(strconv.AppendUint(append(line[:0], "id: "...), id, 10), '\n'))
		write(b)
	}
	noteDropped := func() {
		if d := rd.Dropped(); d > reported {
			if b := a.encodeEvent(events.Event{Topic: TopicDropped, Time: a.opts.Now(),
				Data: Dropped{Count: d - reported, Total: d}}); b != nil {
				message(b)
			}
			reported = d
		}
	}
	keepAlive := time.NewTicker(a.opts.KeepAlive)
	defer keepAlive.Stop()
	var msgs []*events.Message
	scope := userFrom(ctx).Subject.Scope(auth.ViewData)
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
			noteDropped()
			write(keepAliveComment)
		case <-rd.Ready:
			deadline()
			msgs = rd.Take(msgs[:0])
			for _, m := range msgs {
				if a.inScope(ctx, scope, m.Endpoint) {
					message(m.Bytes)
				}
			}
			clear(msgs) // the messages are the feed's to free
			noteDropped()
		}
		if !flush() {
			return
		}
	}
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
