package jobs

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// Kind is what a queued operation does on the device. It is stored as
// the operation's kind.
type Kind string

// The operation kinds, one per devmgmt.Manager method.
const (
	KindRead                   Kind = "read"
	KindDiscover               Kind = "discover"
	KindWrite                  Kind = "write"
	KindWriteComposite         Kind = "write-composite"
	KindExecute                Kind = "execute"
	KindWriteAttributes        Kind = "write-attributes"
	KindCreate                 Kind = "create"
	KindDelete                 Kind = "delete"
	KindObserve                Kind = "observe"
	KindCancelObserve          Kind = "cancel-observe"
	KindReadComposite          Kind = "read-composite"
	KindObserveComposite       Kind = "observe-composite"
	KindCancelObserveComposite Kind = "cancel-observe-composite"
)

// Kinds lists every Kind.
var Kinds = []Kind{KindRead, KindDiscover, KindWrite, KindWriteComposite, KindExecute, KindWriteAttributes,
	KindCreate, KindDelete, KindObserve, KindCancelObserve, KindReadComposite, KindObserveComposite,
	KindCancelObserveComposite}

// ErrInvalid is matched by the errors of a Request that cannot be queued
// and of a stored operation whose payload cannot be decoded.
var ErrInvalid = errors.New("jobs: invalid operation")

// Request is an operation to queue: what to do and its arguments. Which
// fields are used depends on Kind (see Validate).
type Request struct {
	Kind Kind
	// Paths: the target of single-path kinds (exactly one), the paths of
	// read-, observe- and cancel-observe-composite (at least one).
	// write-composite takes its paths from Records and ignores Paths.
	Paths []lwm2m.Path
	// Records are the values of write, write-composite and create.
	Records []lwm2m.Record
	// Update makes a write a partial update (CoAP POST) instead of a
	// replace (PUT).
	Update bool
	// Args are the execute arguments ("" for none).
	Args string
	// Attributes are the notification attributes of write-attributes.
	Attributes linkformat.Attributes
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks that r has the shape its Kind needs, with the same rules
// devmgmt.Manager applies when sending, so that a request that would be
// refused without reaching the device is refused when queued.
func (r Request) Validate() error {
	one := func() (lwm2m.Path, error) {
		if len(r.Paths) != 1 {
			return lwm2m.Path{}, invalid("%s takes exactly one path, got %d", r.Kind, len(r.Paths))
		}
		return r.Paths[0], nil
	}
	switch r.Kind {
	case KindRead, KindObserve, KindCancelObserve, KindDiscover, KindWriteAttributes:
		p, err := one()
		if err != nil {
			return err
		}
		if p.IsRoot() {
			return invalid("%s of the root path", r.Kind)
		}
		if r.Kind == KindDiscover && p.IsResourceInstance() {
			return invalid("discover of a resource instance")
		}
		if r.Kind == KindWriteAttributes {
			if len(r.Attributes.Query()) == 0 {
				return invalid("write-attributes without attributes")
			}
			if err := r.Attributes.Validate(); err != nil {
				return invalid("write-attributes: %v", err)
			}
		}
	case KindWrite:
		p, err := one()
		if err != nil {
			return err
		}
		if p.Depth() < 2 {
			return invalid("write to %s: want an instance, resource or resource instance", p)
		}
		if len(r.Records) == 0 {
			return invalid("write to %s without values", p)
		}
		for _, rec := range r.Records {
			if !rec.Path.HasPrefix(p) || rec.Path.Depth() < 3 {
				return invalid("write to %s: value for %s", p, rec.Path)
			}
		}
	case KindWriteComposite:
		if len(r.Records) == 0 {
			return invalid("write-composite without values")
		}
		for _, rec := range r.Records {
			if rec.Path.Depth() < 3 {
				return invalid("write-composite: value for %s: want a resource or resource instance", rec.Path)
			}
		}
	case KindExecute:
		p, err := one()
		if err != nil {
			return err
		}
		if !p.IsResource() {
			return invalid("execute %s: want a resource", p)
		}
	case KindCreate:
		p, err := one()
		if err != nil {
			return err
		}
		if !p.IsObject() {
			return invalid("create under %s: want an object", p)
		}
		if len(r.Records) == 0 {
			return invalid("create under %s without values", p)
		}
		inst := r.Records[0].Path.Truncate(2)
		for _, rec := range r.Records {
			if rec.Path.Depth() < 3 || rec.Path.Truncate(2) != inst || !rec.Path.HasPrefix(p) {
				return invalid("create under %s: value for %s", p, rec.Path)
			}
		}
	case KindDelete:
		p, err := one()
		if err != nil {
			return err
		}
		if !p.IsInstance() && !p.IsResourceInstance() {
			return invalid("delete %s: want an object instance or resource instance", p)
		}
	case KindReadComposite, KindObserveComposite, KindCancelObserveComposite:
		if len(r.Paths) == 0 {
			return invalid("%s without paths", r.Kind)
		}
		for _, p := range r.Paths {
			if p.IsRoot() {
				return invalid("%s of the root path", r.Kind)
			}
		}
	default:
		return invalid("unknown kind %q", r.Kind)
	}
	return nil
}

// targetPaths are the paths stored with the operation.
func (r Request) targetPaths() []lwm2m.Path {
	if r.Kind != KindWriteComposite {
		return r.Paths
	}
	out := make([]lwm2m.Path, len(r.Records))
	for i, rec := range r.Records {
		out[i] = rec.Path
	}
	return out
}

// recordJSON is a typed value as stored: its text/plain form
// (lwm2m.Value.String) with its type, so it reads back exactly.
type recordJSON struct {
	Path  lwm2m.Path `json:"path"`
	Type  string     `json:"type"`
	Value string     `json:"value"`
}

func encodeRecords(rs []lwm2m.Record) []recordJSON {
	out := make([]recordJSON, len(rs))
	for i, r := range rs {
		out[i] = recordJSON{Path: r.Path, Type: r.Value.Type().String(), Value: r.Value.String()}
	}
	return out
}

func decodeRecords(in []recordJSON) ([]lwm2m.Record, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]lwm2m.Record, len(in))
	for i, r := range in {
		t, err := lwm2m.ParseType(r.Type)
		if err != nil {
			return nil, fmt.Errorf("value for %s: %w", r.Path, err)
		}
		v, err := lwm2m.ParseText(t, r.Value)
		if err != nil {
			return nil, fmt.Errorf("value for %s: %w", r.Path, err)
		}
		out[i] = lwm2m.Record{Path: r.Path, Value: v}
	}
	return out, nil
}

// payloadJSON is the stored payload of an operation.
type payloadJSON struct {
	Records    []recordJSON `json:"records,omitempty"`
	Update     bool         `json:"update,omitempty"`
	Args       string       `json:"args,omitempty"`
	Attributes []string     `json:"attributes,omitempty"`
}

func (r Request) payload() (json.RawMessage, error) {
	p := payloadJSON{Records: encodeRecords(r.Records), Update: r.Update, Args: r.Args, Attributes: r.Attributes.Query()}
	if len(p.Records) == 0 && !p.Update && p.Args == "" && len(p.Attributes) == 0 {
		return nil, nil
	}
	return json.Marshal(p)
}

// DecodeRequest reads the Request back from a stored operation. It fails
// (matching ErrInvalid) for an operation not made by this package.
func DecodeRequest(op store.Operation) (Request, error) {
	r := Request{Kind: Kind(op.Kind)}
	if r.Kind != KindWriteComposite {
		r.Paths = op.Paths
	}
	if len(op.Payload) > 0 {
		var p payloadJSON
		if err := json.Unmarshal(op.Payload, &p); err != nil {
			return Request{}, invalid("operation %d: payload: %v", op.ID, err)
		}
		var err error
		if r.Records, err = decodeRecords(p.Records); err != nil {
			return Request{}, invalid("operation %d: %v", op.ID, err)
		}
		r.Update, r.Args = p.Update, p.Args
		if len(p.Attributes) > 0 {
			if r.Attributes, err = linkformat.ParseQuery(p.Attributes); err != nil {
				return Request{}, invalid("operation %d: attributes: %v", op.ID, err)
			}
		}
	}
	if err := r.Validate(); err != nil {
		return Request{}, fmt.Errorf("operation %d: %w", op.ID, err)
	}
	return r, nil
}

// Result is what a confirmed operation brought back from the device.
type Result struct {
	// Records are the values of a read, observe or read-composite.
	Records []lwm2m.Record
	// Links are the answer of a discover.
	Links []linkformat.DiscoverLink
	// Location is the instance a create made (zero for other kinds).
	Location lwm2m.Path
	// Observation is the token of the observation an observe made.
	Observation []byte
}

type linkJSON struct {
	Path       lwm2m.Path `json:"path"`
	Attributes []string   `json:"attributes,omitempty"`
	Dim        *int       `json:"dim,omitempty"`
	Version    string     `json:"version,omitempty"`
}

type resultJSON struct {
	Records     []recordJSON `json:"records,omitempty"`
	Links       []linkJSON   `json:"links,omitempty"`
	Location    string       `json:"location,omitempty"`
	Observation string       `json:"observation,omitempty"`
}

func (r Result) encode() (json.RawMessage, error) {
	out := resultJSON{Records: encodeRecords(r.Records), Observation: hex.EncodeToString(r.Observation)}
	if r.Location.Depth() > 0 {
		out.Location = r.Location.String()
	}
	for _, l := range r.Links {
		out.Links = append(out.Links, linkJSON{Path: l.Path, Attributes: l.Attrs.Query(), Dim: l.Dim, Version: l.Ver})
	}
	if len(out.Records) == 0 && len(out.Links) == 0 && out.Location == "" && out.Observation == "" {
		return nil, nil
	}
	return json.Marshal(out)
}

// DecodeResult reads a Result from a stored operation's Response (nil
// gives the zero Result).
func DecodeResult(raw json.RawMessage) (Result, error) {
	if len(raw) == 0 {
		return Result{}, nil
	}
	var in resultJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return Result{}, fmt.Errorf("jobs: response: %w", err)
	}
	recs, err := decodeRecords(in.Records)
	if err != nil {
		return Result{}, fmt.Errorf("jobs: response: %w", err)
	}
	res := Result{Records: recs}
	if in.Location != "" {
		if res.Location, err = lwm2m.ParsePath(in.Location); err != nil {
			return Result{}, fmt.Errorf("jobs: response: location: %w", err)
		}
	}
	if in.Observation != "" {
		if res.Observation, err = hex.DecodeString(in.Observation); err != nil {
			return Result{}, fmt.Errorf("jobs: response: observation: %w", err)
		}
	}
	for _, l := range in.Links {
		attrs, err := linkformat.ParseQuery(l.Attributes)
		if err != nil {
			return Result{}, fmt.Errorf("jobs: response: link %s: %w", l.Path, err)
		}
		res.Links = append(res.Links, linkformat.DiscoverLink{Path: l.Path, Attrs: attrs, Dim: l.Dim, Ver: l.Version})
	}
	return res, nil
}
