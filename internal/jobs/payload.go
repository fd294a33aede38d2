package jobs

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// The stored form of a queued devmgmt.Operation: its kind and target paths
// in the endpoint_operation columns, its other arguments in the payload
// (JSON), and what a confirmed operation brought back in the response
// (JSON). Values keep their type, so they read back exactly.

// recordJSON is a typed value as stored: its text/plain form
// (lwm2m.Value.String) with its type.
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
	Records    []recordJSON     `json:"records,omitempty"`
	Update     bool             `json:"update,omitempty"`
	Format     *lwm2m.MediaType `json:"format,omitempty"`
	Args       string           `json:"args,omitempty"`
	Attributes []string         `json:"attributes,omitempty"`
}

// encodePayload returns the stored payload of op: nil when it has no
// arguments besides its kind and paths.
func encodePayload(op devmgmt.Operation) (json.RawMessage, error) {
	p := payloadJSON{Records: encodeRecords(op.Values), Update: op.Mode == devmgmt.Update, Format: op.Format,
		Args: op.Args, Attributes: op.Attributes.Query()}
	if len(p.Records) == 0 && !p.Update && p.Format == nil && p.Args == "" && len(p.Attributes) == 0 {
		return nil, nil
	}
	return json.Marshal(p)
}

// DecodeOperation reads the devmgmt.Operation back from a stored
// operation and checks it (devmgmt.Operation.Check, without converting
// values, which were stored typed). It fails, matching devmgmt.ErrInvalid,
// for an operation this package did not store.
func DecodeOperation(o store.Operation) (devmgmt.Operation, error) {
	op := devmgmt.Operation{Kind: devmgmt.Kind(o.Kind)}
	if op.Kind != devmgmt.KindWriteComposite {
		op.Paths = o.Paths
	}
	bad := func(format string, args ...any) (devmgmt.Operation, error) {
		return devmgmt.Operation{}, fmt.Errorf("jobs: operation %d: %w: %s", o.ID, devmgmt.ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(o.Payload) > 0 {
		var p payloadJSON
		if err := json.Unmarshal(o.Payload, &p); err != nil {
			return bad("payload: %v", err)
		}
		var err error
		if op.Values, err = decodeRecords(p.Records); err != nil {
			return bad("%v", err)
		}
		if p.Update {
			op.Mode = devmgmt.Update
		}
		op.Format, op.Args = p.Format, p.Args
		if len(p.Attributes) > 0 {
			if op.Attributes, err = linkformat.ParseQuery(p.Attributes); err != nil {
				return bad("attributes: %v", err)
			}
		}
	}
	op, err := op.Check(nil)
	if err != nil {
		return devmgmt.Operation{}, fmt.Errorf("jobs: operation %d: %w", o.ID, err)
	}
	return op, nil
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

// encodeResult returns the stored response of a confirmed operation: nil
// when it brought nothing back. Of an observation only the token is kept.
func encodeResult(r devmgmt.Result) (json.RawMessage, error) {
	out := resultJSON{Records: encodeRecords(r.Values), Observation: hex.EncodeToString([]byte(r.Observation.Token))}
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

// DecodeResult reads what a confirmed operation brought back from its
// stored response (nil gives the zero Result). Of an observation only the
// token is kept.
func DecodeResult(raw json.RawMessage) (devmgmt.Result, error) {
	if len(raw) == 0 {
		return devmgmt.Result{}, nil
	}
	var in resultJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return devmgmt.Result{}, fmt.Errorf("jobs: response: %w", err)
	}
	recs, err := decodeRecords(in.Records)
	if err != nil {
		return devmgmt.Result{}, fmt.Errorf("jobs: response: %w", err)
	}
	res := devmgmt.Result{Values: recs}
	if in.Location != "" {
		if res.Location, err = lwm2m.ParsePath(in.Location); err != nil {
			return devmgmt.Result{}, fmt.Errorf("jobs: response: location: %w", err)
		}
	}
	if in.Observation != "" {
		tok, err := hex.DecodeString(in.Observation)
		if err != nil {
			return devmgmt.Result{}, fmt.Errorf("jobs: response: observation: %w", err)
		}
		res.Observation = registry.Observation{Token: string(tok)}
	}
	for _, l := range in.Links {
		attrs, err := linkformat.ParseQuery(l.Attributes)
		if err != nil {
			return devmgmt.Result{}, fmt.Errorf("jobs: response: link %s: %w", l.Path, err)
		}
		res.Links = append(res.Links, linkformat.DiscoverLink{Path: l.Path, Attrs: attrs, Dim: l.Dim, Ver: l.Version})
	}
	return res, nil
}
