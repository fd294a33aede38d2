package web

import (
	"net/http"
	"time"

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
	// Charts are the values received: the last 6 hours by 5 minutes, the
	// last 48 hours by hour, the last 30 days by UTC day.
	Charts []chart
	// Versions counts the devices by their latest reported firmware
	// version; Unreported is the devices that reported none.
	Versions   []versionRow
	Unreported int
}

type versionRow struct {
	store.VersionCount
	Of int // the devices counted, for the meter
}

// overviewCharts are the overview's charts: span, bucket width, label
// spacing and layout.
var overviewCharts = []struct {
	id, title   string
	span, width time.Duration
	labelEvery  int
	layout      string
}{
	{"values-5m", "Values received, last 6 hours (5-minute buckets)", 6 * time.Hour, 5 * time.Minute, 12, "15:04"},
	{"values-1h", "Values received, last 48 hours (hourly buckets)", 48 * time.Hour, time.Hour, 6, "Jan 2 15h"},
	{"values-1d", "Values received, last 30 days (daily buckets)", 30 * 24 * time.Hour, 24 * time.Hour, 5, "Jan 2"},
}

// overview is GET /: device counts, queue depth, values received over
// time, firmware versions, recent events; all within the user's scope
// (values and events: ViewData; the rest: ViewOverview).
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
	d := overviewData{Counts: c, Offline: c.Total - c.Online, Queued: queued, Events: evs}
	now := w.cfg.Now()
	for _, ch := range overviewCharts {
		bs, err := w.cfg.Store.ValueCounts(ctx, s.scope(auth.ViewData), now.Add(-ch.span+ch.width), now, ch.width)
		if err != nil {
			return err
		}
		bc := barChart(ch.title, bs, ch.width, ch.labelEvery, ch.layout)
		bc.ID = ch.id
		d.Charts = append(d.Charts, bc)
	}
	vs, err := w.cfg.Store.FirmwareVersionCounts(ctx, s.scope(auth.ViewOverview))
	if err != nil {
		return err
	}
	d.Unreported = c.Total
	for _, v := range vs {
		d.Versions = append(d.Versions, versionRow{VersionCount: v, Of: c.Total})
		d.Unreported -= v.Devices
	}
	d.Unreported = max(d.Unreported, 0)
	w.render(rw, r, http.StatusOK, "overview", s, d)
	return nil
}
