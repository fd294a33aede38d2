package app

import (
	"github.com/flownexus/flownexus/internal/api"
	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/render"
)

// The events topics of devices, published on App.Events. Each event's
// Endpoint is the device's endpoint name.
const (
	// TopicRegistered: a device registered (a new registration, also one
	// that replaces an earlier one of the same endpoint); Data is a
	// RegistrationEvent.
	TopicRegistered = "registered"
	// TopicUpdated: a device updated its registration; Data is a
	// RegistrationEvent.
	TopicUpdated = "updated"
	// TopicDeregistered: a device de-registered; Data is a
	// RegistrationEvent with only RegistrationID set.
	TopicDeregistered = "deregistered"
	// TopicExpired: a registration's lifetime ran out and the endpoint is
	// offline; Data is a RegistrationEvent with only RegistrationID set.
	TopicExpired = "expired"
	// TopicValues: a device reported values, by a notification or a Send,
	// and they are stored; Data is a ValuesEvent, one per report.
	TopicValues = "values"
)

// RegistrationEvent is the Data of the registration topics: the
// registration after the change.
type RegistrationEvent struct {
	RegistrationID  string `json:"registration_id"`
	Address         string `json:"address,omitempty"`
	Transport       string `json:"transport,omitempty" enum:"udp,dtls"`
	LifetimeSeconds uint32 `json:"lifetime_seconds,omitempty"`
	Binding         string `json:"binding,omitempty"`
	LwM2MVersion    string `json:"lwm2m_version,omitempty"`
	QueueMode       bool   `json:"queue_mode,omitempty"`
}

// ValuesEvent is the Data of TopicValues: the values of one report.
type ValuesEvent struct {
	Kind   string         `json:"kind" enum:"notify,send" doc:"notify: a notification of an observation; send: a Send"`
	Values []render.Value `json:"values"`
}

// streamTopics are the topics GET /api/v1/events/stream offers.
var streamTopics = []api.StreamTopic{
	{Name: TopicRegistered, Doc: "a device registered", Data: RegistrationEvent{}},
	{Name: TopicUpdated, Doc: "a device updated its registration", Data: RegistrationEvent{}},
	{Name: TopicDeregistered, Doc: "a device de-registered", Data: RegistrationEvent{}},
	{Name: TopicExpired, Doc: "a registration's lifetime ran out; the device is offline", Data: RegistrationEvent{}},
	{Name: TopicValues, Doc: "a device reported values (a notification or a Send), now stored", Data: ValuesEvent{}},
	{Name: jobs.TopicOperation, Doc: "a queued operation changed status", Data: jobs.OperationEvent{}},
}

var registrationTopics = map[registry.EventKind]string{
	registry.Registered:   TopicRegistered,
	registry.Updated:      TopicUpdated,
	registry.Deregistered: TopicDeregistered,
	registry.Expired:      TopicExpired,
}

// publishRegistration publishes a registry change on the bus. It is a
// registry listener: it runs on the goroutine that made the change, and
// Publish does not block.
func (a *App) publishRegistration(ev registry.Event) {
	topic, ok := registrationTopics[ev.Kind]
	if !ok {
		return
	}
	r := ev.Registration
	data := RegistrationEvent{RegistrationID: r.ID}
	if ev.Kind == registry.Registered || ev.Kind == registry.Updated {
		data.Address, data.Transport = r.Addr.String(), r.Transport.String()
		data.LifetimeSeconds, data.Binding = r.Lifetime, r.Binding
		data.LwM2MVersion, data.QueueMode = string(r.Version), r.Queue
	}
	a.Events.Publish(events.Event{Topic: topic, Time: a.Registry.Now(), Endpoint: r.Endpoint, Data: data})
}

// publishValues publishes the values of a Send or notification on the bus;
// other activity has none.
func (a *App) publishValues(act coapd.Activity) {
	if len(act.Records) == 0 {
		return
	}
	var kind string
	switch act.Kind {
	case coapd.ActivitySend:
		kind = ingest.KindSend
	case coapd.ActivityNotify:
		kind = ingest.KindNotify
	default:
		return
	}
	a.Events.Publish(events.Event{Topic: TopicValues, Time: a.Registry.Now(), Endpoint: act.Registration.Endpoint,
		Data: ValuesEvent{Kind: kind, Values: render.Records(a.Objects, act.Records)}})
}
