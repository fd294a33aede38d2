package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/store"
)

// GET /live is the pages' live updates: a text/event-stream of the
// server's events (package events) of the devices the session may view
// (auth.ViewData), one message per event:
//
//	id: <n>
//	event: <topic>
//	data: {"endpoint":"...","time":"...","data":{...}}
//
// with data the topic's payload (events/topics.go). ?endpoint=NAME narrows
// the stream to one device (404 outside the session's scope), ?topic=a,b
// to some topics. Comment lines keep the connection alive; at each the
// session is checked again, and the stream ends once the session has ended
// (logout, timeout, a disabled user) or lost ViewData. It also ends when
// the server shuts down (CloseStreams). Nothing is replayed: static/live.js
// reconnects and the page shows what it rendered.

// liveKeepAlive is how often a live stream sends a keep-alive comment and
// checks its session again.
var liveKeepAlive = 15 * time.Second

// The live streams' share of the events.Feed, as the API's streams have.
const (
	liveInterval     = 50 * time.Millisecond
	liveWriteTimeout = 10 * time.Second
)

// liveHub is the dashboard's part of the event machinery: one Feed for
// all live streams (nil without an event bus), the endpoint-to-site
// answers their scope filters use, and the signal that ends them.
type liveHub struct {
	feed      *events.Feed
	sites     *store.SiteResolver
	closing   chan struct{}
	closeOnce sync.Once
}

func newLiveHub(bus *events.Bus, st *store.Store, log *slog.Logger) *liveHub {
	h := &liveHub{sites: st.SiteResolver(10 * time.Second), closing: make(chan struct{})}
	if bus != nil {
		h.feed = events.NewFeed(bus, events.FeedConfig{Interval: liveInterval, Encode: func(ev events.Event) []byte {
			b, err := encodeLive(ev)
			if err != nil {
				log.Error("event not encodable", "topic", ev.Topic, "endpoint", ev.Endpoint, "err", err)
			}
			return b
		}})
	}
	return h
}

// liveMessage is the data: line of a live message.
type liveMessage struct {
	Endpoint string    `json:"endpoint"`
	Time     time.Time `json:"time"`
	Data     any       `json:"data,omitempty"`
}

// encodeLive is the feed's encoder: the event: and data: lines and the
// blank line ending the message (each stream writes its own id: first).
func encodeLive(ev events.Event) ([]byte, error) {
	data, err := json.Marshal(liveMessage{Endpoint: ev.Endpoint, Time: ev.Time, Data: ev.Data})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len("event: \ndata: \n\n")+len(ev.Topic)+len(data))
	b = append(b, "event: "...)
	b = append(b, ev.Topic...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}

// CloseStreams ends every open live stream, each with a complete
// response, and makes streams opened later end at once. The server calls
// it when it begins to shut down. Calls after the first do nothing.
func (w *Web) CloseStreams() {
	if w.live != nil {
		w.live.closeOnce.Do(func() { close(w.live.closing) })
	}
}

var liveComment = []byte(": keep-alive\n\n")

func (w *Web) liveStream(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	q := r.URL.Query()
	filter := events.Filter{Endpoint: q.Get("endpoint")}
	if filter.Endpoint != "" {
		if _, err := w.endpoint(ctx, s, auth.ViewData, filter.Endpoint); err != nil {
			return err
		}
	}
	for v := range strings.SplitSeq(q.Get("topic"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !slices.ContainsFunc(events.Topics, func(t events.Topic) bool { return t.Name == v }) {
			return badRequest("unknown topic " + strconv.Quote(v))
		}
		filter.Topics = append(filter.Topics, v)
	}
	// Subscribed before the headers go out: a client that has them gets
	// every event from then on.
	var ready <-chan struct{}
	var rd *events.Reader
	if w.live.feed != nil {
		rd = w.live.feed.Open(filter)
		defer rd.Close()
		ready = rd.Ready
	}
	h := rw.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	rw.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(rw)
	var werr error
	write := func(b []byte) {
		if werr == nil {
			_, werr = rw.Write(b)
		}
	}
	flush := func() bool {
		if werr == nil {
			_ = rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout))
			werr = rc.Flush()
		}
		return werr == nil
	}
	write([]byte("retry: 3000\n\n"))
	if !flush() {
		return nil
	}
	scope := s.subj.Scope(auth.ViewData)
	visible := func(endpoint string) bool {
		if scope.All {
			return true
		}
		site, known, err := w.live.sites.Site(ctx, endpoint)
		return err == nil && known && scope.Contains(site)
	}
	keepAlive := time.NewTicker(liveKeepAlive)
	defer keepAlive.Stop()
	var id uint64
	var line [32]byte
	var msgs []*events.Message
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.live.closing:
			return nil
		case <-keepAlive.C:
			subj, ok := w.sessionLive(ctx, s)
			if !ok {
				return nil
			}
			scope = subj.Scope(auth.ViewData)
			write(liveComment)
		case <-ready:
			msgs = rd.Take(msgs[:0])
			for _, m := range msgs {
				if visible(m.Endpoint) {
					id++
					write(append(strconv.AppendUint(append(line[:0], "id: "...), id, 10), '\n'))
					write(m.Bytes)
				}
			}
			clear(msgs)
		}
		if !flush() {
			return nil
		}
	}
}

// sessionLive reports whether the stream's session is still live: stored,
// within its idle and absolute timeouts, of an enabled user still granted
// ViewData; it returns the user's current subject. Unlike a request it
// does not record activity: an open page alone does not keep a session.
func (w *Web) sessionLive(ctx context.Context, s *session) (auth.Subject, bool) {
	ss, u, err := w.cfg.Store.GetSession(ctx, s.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			w.log.Warn("live stream ended: its session could not be checked", "user", s.user.Username, "err", err)
		}
		return auth.Subject{}, false
	}
	now := w.cfg.Now()
	if !now.Before(ss.ExpiresAt) || now.Sub(ss.LastSeenAt) >= w.cfg.IdleTimeout || u.Disabled() {
		return auth.Subject{}, false
	}
	subj, err := w.cfg.Store.Subject(ctx, u)
	if err != nil || auth.Authorize(subj, auth.ViewData) != nil {
		return auth.Subject{}, false
	}
	return subj, true
}
