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
// timestamps, all received at recv. A report of several values (a
// composite notification, a read of an instance) is stored as one event
// of the given kind linking them, and so is every Send (KindSend), even
// of one value: the device grouped its values itself. Another report of
// one value is stored as a loose value. An event is timed by the latest
// device timestamp among its values (recv when none has one).
func Report(endpointID int64, kind string, recs []lwm2m.Record, recv time.Time) Item {
	return report(endpointID, kind, recs, recv, kind == KindSend)
}

// ReportGroup is Report for values that are one event whatever their
// number: the notification of a composite observation, whose paths the
// server asked for together, is an event even with one value.
func ReportGroup(endpointID int64, kind string, recs []lwm2m.Record, recv time.Time) Item {
	return report(endpointID, kind, recs, recv, true)
}

// report is Report; group makes a report of one value an event too.
func report(endpointID int64, kind string, recs []lwm2m.Record, recv time.Time, group bool) Item {
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
	if len(recs) > 1 || group && len(recs) == 1 {
		if latest.IsZero() {
			latest = recv
		}
		it.Event = store.Event{EndpointID: endpointID, Kind: kind, Time: latest, ReceivedAt: recv}
	}
	return it
}
