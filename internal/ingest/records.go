package ingest

import (
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// Event kinds of the items built by Report.
const (
	KindNotify = "notify"
	KindSend   = "send"
	KindRead   = "read"
)

// Report turns records a device reported into one Item for endpointID:
// values keep their paths (resource instances included), types and device
// timestamps, all received at recv. A report of one value is stored as a
// loose value; a report of several values (a composite notification, a
// Send, a read of an instance) as one event of the given kind linking them,
// timed by the latest device timestamp among them (recv when none has one).
func Report(endpointID int64, kind string, recs []lwm2m.Record, recv time.Time) Item {
	vals := make([]store.ResourceValue, len(recs))
	var latest time.Time
	for i, r := range recs {
		vals[i] = store.ResourceValue{
			EndpointID: endpointID,
			Path:       r.Path,
			Value:      r.Value,
			DeviceTime: r.Time,
			ReceivedAt: recv,
		}
		if r.Time.After(latest) {
			latest = r.Time
		}
	}
	it := Item{Values: vals}
	if len(recs) > 1 {
		if latest.IsZero() {
			latest = recv
		}
		it.Event = store.Event{EndpointID: endpointID, Kind: kind, Time: latest, ReceivedAt: recv}
	}
	return it
}
