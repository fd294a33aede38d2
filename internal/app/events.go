package app

import (
	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/render"
)

var registrationTopics = map[registry.ChangeKind]string{
	registry.Registered:   events.TopicRegistered,
	registry.Updated:      events.TopicUpdated,
	registry.Deregistered: events.TopicDeregistered,
	registry.Expired:      events.TopicExpired,
}

// publishRegistration publishes a registry change on the bus. It is a
// registry listener: it runs on the goroutine that made the change, and
// Publish does not block.
func (a *App) publishRegistration(ev registry.Change) {
	topic, ok := registrationTopics[ev.Kind]
	if !ok {
		return
	}
	r := ev.Registration
	data := events.RegistrationEvent{RegistrationID: r.ID}
	if ev.Kind == registry.Registered || ev.Kind == registry.Updated {
		data.Address, data.Transport = r.Addr.String(), r.Transport.String()
		data.LifetimeSeconds, data.Binding = r.Lifetime, r.Binding
		data.LwM2MVersion, data.QueueMode = string(r.Version), r.Queue
	}
	a.Events.Publish(events.Event{Topic: topic, Time: a.Registry.Now(), Endpoint: r.Endpoint, Data: data})
}

// publishValues publishes the values of a Send or notification on the bus;
// other activity has none. It is a CoAP server subscriber.
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
	a.Events.Publish(events.Event{Topic: events.TopicValues, Time: a.Registry.Now(), Endpoint: act.Registration.Endpoint,
		Data: events.ValuesEvent{Kind: kind, Values: render.Records(a.Objects, act.Records)}})
}
