package api

import (
	"bytes"
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

// StreamTopic is one topic the event stream offers: Name is the
// events.Event Topic and the SSE event name, Doc one line for the OpenAPI
// description, Data a value of the type of the topic's event Data, whose
// schema the OpenAPI document shows.
type StreamTopic struct {
	Name string
	Doc  string
	Data any
}

// TopicDropped is the SSE event name of the stream's own notice that
// events were lost; its data's Data is a Dropped. It is always sent, not
// filtered by topic.
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

// streamBatch is how many bytes of queued messages are written with one
// flush.
const streamBatch = 32 << 10

type streamInput struct {
	Endpoint string   `query:"endpoint" doc:"Only events of this endpoint" example:"urn:imei:356938035643809"`
	Topic    []string `query:"topic,explode" doc:"Only these topics: repeat the parameter or separate topics by commas; all when absent"`
}

func (a *API) streamRoutes(h huma.API) {
	names := make([]string, 0, len(a.opts.Topics)+1)
	var lines strings.Builder
	var dataSchemas []*huma.Schema
	seen := map[reflect.Type]bool{}
	reg := h.OpenAPI().Components.Schemas
	for _, t := range a.opts.Topics {
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

// streamTopics parses the topic filter: nil for all topics, else the set
// named, each of which must be known.
func (a *API) streamTopics(in []string) (map[string]bool, error) {
	var set map[string]bool
	for _, v := range in {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.ContainsFunc(a.opts.Topics, func(st StreamTopic) bool { return st.Name == t }) {
				names := make([]string, len(a.opts.Topics))
				for i, st := range a.opts.Topics {
					names[i] = st.Name
				}
				return nil, badRequest("unknown topic " + strconv.Quote(t) + "; topics are " + strings.Join(names, ", "))
			}
			if set == nil {
				set = map[string]bool{}
			}
			set[t] = true
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
		a.stream(hctx.Context(), w, in.Endpoint, topics)
	}}, nil
}

// stream writes the events matching endpoint ("" for all) and topics (nil
// for all) to w until the client goes away, a write fails or times out,
// CloseStreams is called, or, checked at each keep-alive, the caller is no
// longer authorized (see stillAuthorized).
func (a *API) stream(ctx context.Context, w http.ResponseWriter, endpoint string, topics map[string]bool) {
	sub := a.opts.Events.Subscribe(events.DefaultBuffer, func(ev events.Event) bool {
		return (endpoint == "" || ev.Endpoint == endpoint) && (topics == nil || topics[ev.Topic])
	})
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front (nginx) must not hold messages back
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var buf bytes.Buffer
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // best effort: not every writer has deadlines
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		if err == nil {
			err = rc.Flush()
		}
		return err == nil
	}
	if !flush() { // the headers: the client now knows it is subscribed
		return
	}
	var id, reported uint64
	message := func(ev StreamEvent) {
		data, err := json.Marshal(ev)
		if err != nil {
			a.opts.Logger.Error("event not encodable", "topic", ev.Topic, "err", err)
			return
		}
		id++
		buf.WriteString("id: " + strconv.FormatUint(id, 10) + "\nevent: " + ev.Topic + "\ndata: ")
		buf.Write(data)
		buf.WriteString("\n\n")
	}
	noteDropped := func() {
		if d := sub.Dropped(); d > reported {
			message(StreamEvent{Topic: TopicDropped, Time: a.opts.Now(), Data: Dropped{Count: d - reported, Total: d}})
			reported = d
		}
	}
	keepAlive := time.NewTicker(a.opts.KeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.closing:
			return
		case <-keepAlive.C:
			if !a.stillAuthorized(ctx) {
				return
			}
			noteDropped()
			buf.WriteString(": keep-alive\n\n")
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			message(StreamEvent{Topic: ev.Topic, Time: ev.Time, Endpoint: ev.Endpoint, Data: ev.Data})
			// Send what else is queued with the same flush.
			for more := true; more && buf.Len() < streamBatch; {
				select {
				case ev := <-sub.C:
					message(StreamEvent{Topic: ev.Topic, Time: ev.Time, Endpoint: ev.Endpoint, Data: ev.Data})
				default:
					more = false
				}
			}
			noteDropped()
		}
		if !flush() {
			return
		}
	}
}

// CloseStreams ends every open event stream, each with a complete
// response, and makes streams opened later end at once. The server calls
// it when it begins to shut down, so that open streams do not hold the
// shutdown up. Calls after the first do nothing.
func (a *API) CloseStreams() { a.closeOnce.Do(func() { close(a.closing) }) }
