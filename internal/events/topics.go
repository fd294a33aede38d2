package events

import "github.com/flownexus/flownexus/internal/render"

// The topics of the server's events. Each event's Endpoint is the endpoint
// name of the device it concerns. Producers publish these topics with
// these payload types as Data and nothing else; the event stream serves
// them as Topics describes.
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
	// TopicOperation: a queued operation changed status; Data is an
	// OperationEvent.
	TopicOperation = "operation"
	// TopicFirmware: a firmware update changed state; Data is a
	// FirmwareEvent.
	TopicFirmware = "firmware"
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

// OperationEvent is the Data of TopicOperation, published on every status
// change of a queued operation: QUEUED when queued (and again after a
// failed attempt that will be retried), SENDING when an attempt starts,
// CONFIRMED, FAILED or CANCELLED when it ends.
type OperationEvent struct {
	ID          int64  `json:"id"`
	Kind        string `json:"kind"`
	Status      string `json:"status"`
	Attempts    int    `json:"attempts"`
	ResultCode  string `json:"result_code,omitempty"`
	ResultError string `json:"result_error,omitempty"`
}

// FirmwareEvent is the Data of TopicFirmware, published on every state
// change of a firmware update (package fwupdate): pending when started,
// downloading, updating, then succeeded, failed or cancelled.
type FirmwareEvent struct {
	ID         int64  `json:"id" doc:"The update's id (GET /api/v1/firmware/updates/{id})"`
	Version    string `json:"version" doc:"The image's version"`
	State      string `json:"state" enum:"pending,downloading,updating,succeeded,failed,cancelled"`
	Method     string `json:"method,omitempty" enum:"pull,push,"`
	Protocol   string `json:"protocol,omitempty"`
	ResultCode int    `json:"result_code,omitempty" doc:"The device's Update Result (5/0/5), when it reported one"`
	Result     string `json:"result,omitempty" doc:"The outcome in words"`
	Error      string `json:"error,omitempty" doc:"Why it failed"`
}

// Topic describes one topic for those who offer it, such as the API's
// event stream: Name is the Event Topic, Doc one line saying what happened,
// Data a value of the type of the topic's Event Data (for its schema).
type Topic struct {
	Name string
	Doc  string
	Data any
}

// Topics are the topics above, in the order the event stream documents
// them.
var Topics = []Topic{
	{Name: TopicRegistered, Doc: "a device registered", Data: RegistrationEvent{}},
	{Name: TopicUpdated, Doc: "a device updated its registration", Data: RegistrationEvent{}},
	{Name: TopicDeregistered, Doc: "a device de-registered", Data: RegistrationEvent{}},
	{Name: TopicExpired, Doc: "a registration's lifetime ran out; the device is offline", Data: RegistrationEvent{}},
	{Name: TopicValues, Doc: "a device reported values (a notification or a Send), now stored", Data: ValuesEvent{}},
	{Name: TopicOperation, Doc: "a queued operation changed status", Data: OperationEvent{}},
	{Name: TopicFirmware, Doc: "a firmware update changed state", Data: FirmwareEvent{}},
}
