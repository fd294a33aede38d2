package web

import (
	"net/http"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// RecentEventCount is how many events the overview shows.
const RecentEventCount = 20

type overviewData struct {
	Counts  store.FleetCounts
	Offline int
	Queued  int
	Events  []store.NamedEvent
}

// overview is GET /: device counts, queue depth, recent events.
func (w *Web) overview(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	c, err := w.cfg.Store.CountFleet(ctx, s.scope(auth.ViewOverview))
	if err != nil {
		return err
	}
	queued, err := w.cfg.Store.CountQueuedOperations(ctx, s.scope(auth.ViewOverview))
	if err != nil {
		return err
	}
	evs, err := w.cfg.Store.RecentEvents(ctx, s.scope(auth.ViewData), RecentEventCount)
	if err != nil {
		return err
	}
	w.render(rw, r, http.StatusOK, "overview", s, overviewData{Counts: c, Offline: c.Total - c.Online,
		Queued: queued, Events: evs})
	return nil
}
