package devmgmt

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
)

// badRequest is an error matching ErrInvalid with msg, for a person.
func badRequest(msg string) error { return invalid("%s", msg) }

// Request is an operation as a client states it (a JSON body of the REST
// API, a form of the dashboard), before it is an Operation: each kind
// uses some of its fields.
type Request struct {
	Path       string
	Paths      []string
	Value      json.RawMessage
	Values     map[string]json.RawMessage
	Mode       string
	Args       string
	Attributes map[string]json.RawMessage
	Instance   *uint16
}

// Operation turns request b into the Operation of kind on the endpoint
// whose registration's object links are objectLinks (for the instance a
// create makes when b names none) and checks it with Check: the one place
// where a request becomes an operation, for every surface that runs
// operations now or queues them. kind is a route's name ("read" with paths is
// read-composite, "write" without path write-composite) or a queued
// operation's kind ("cancel" is cancel-observe). Values are read
// by their JSON type; what the operation means is checked by Check. Every
// error matches ErrInvalid (or is Check's).
func (m *Manager) Operation(kind string, b Request, objectLinks string) (Operation, error) {
	k := Kind(kind)
	if kind == "cancel" {
		k = KindCancelObserve
	}
	op := Operation{Kind: k}
	var err error
	switch k {
	case KindRead, KindObserve, KindCancelObserve, KindDiscover,
		KindReadComposite, KindObserveComposite, KindCancelObserveComposite:
		if op.Paths, err = parsePaths(b.Path, b.Paths); err != nil {
			return op, err
		}
		if len(b.Paths) > 0 {
			switch k {
			case KindRead:
				op.Kind = KindReadComposite
			case KindObserve:
				op.Kind = KindObserveComposite
			case KindCancelObserve:
				op.Kind = KindCancelObserveComposite
			}
		}
	case KindWrite, KindWriteComposite:
		if k == KindWriteComposite && b.Path != "" {
			return op, badRequest("a composite write takes values keyed by absolute paths, not path")
		}
		target, rs, composite, err := writeRecords(b.Path, b.Value, b.Values)
		if err != nil {
			return op, err
		}
		op.Values = rs
		if composite {
			op.Kind = KindWriteComposite
		} else {
			op.Kind, op.Paths = KindWrite, []lwm2m.Path{target}
			if op.Mode, err = writeMode(b.Mode, target); err != nil {
				return op, err
			}
		}
	case KindExecute, KindDelete, KindWriteAttributes:
		p, err := lwm2m.ParsePath(b.Path)
		if err != nil {
			return op, badRequest(err.Error())
		}
		op.Paths = []lwm2m.Path{p}
		switch k {
		case KindExecute:
			op.Args = b.Args
		case KindWriteAttributes:
			if op.Attributes, err = attributeQuery(b.Attributes); err != nil {
				return op, err
			}
		}
	case KindCreate:
		p, err := lwm2m.ParsePath(b.Path)
		if err != nil {
			return op, badRequest(err.Error())
		}
		op.Paths = []lwm2m.Path{p}
		if p.IsObject() {
			inst := nextInstance(objectLinks, p.Object())
			if b.Instance != nil {
				if *b.Instance > lwm2m.MaxID {
					return op, badRequest("instance must be at most 65534")
				}
				inst = *b.Instance
			}
			if op.Values, err = relativeRecords(p.Child(inst), b.Values); err != nil {
				return op, err
			}
		}
	default:
		return op, badRequest(fmt.Sprintf("unknown kind %q", kind))
	}
	return m.Check(op)
}

func parsePaths(path string, paths []string) ([]lwm2m.Path, error) {
	raw := paths
	if path != "" {
		if len(raw) > 0 {
			return nil, badRequest("give path or paths, not both")
		}
		raw = []string{path}
	}
	if len(raw) == 0 {
		return nil, badRequest("path is required")
	}
	out := make([]lwm2m.Path, 0, len(raw))
	for _, s := range raw {
		p, err := lwm2m.ParsePath(s)
		if err != nil {
			return nil, badRequest(err.Error())
		}
		out = append(out, p)
	}
	return out, nil
}

// requestValue reads a value from a request body by its JSON type: a string,
// a boolean, an integer (unsigned above the int64 range) or a float;
// null is a value of type none. Operation.Check converts it to
// the type of its resource.
func requestValue(p lwm2m.Path, raw json.RawMessage) (lwm2m.Value, error) {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return lwm2m.Value{}, badRequest(fmt.Sprintf("value for %s is not JSON", p))
	}
	switch v := x.(type) {
	case string:
		return lwm2m.String(v), nil
	case bool:
		return lwm2m.Bool(v), nil
	case float64:
		text := strings.TrimSpace(string(raw))
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return lwm2m.Int(n), nil
		}
		if n, err := strconv.ParseUint(text, 10, 64); err == nil {
			return lwm2m.Uint(n), nil
		}
		return lwm2m.Float(v), nil
	case nil:
		return lwm2m.None(), nil
	}
	return lwm2m.Value{}, badRequest(fmt.Sprintf("value for %s must be a string, number or boolean", p))
}

// relativeRecords turns {"5700": 20, "7/0": 1} under base into records.
func relativeRecords(base lwm2m.Path, vals map[string]json.RawMessage) ([]lwm2m.Record, error) {
	rs := make([]lwm2m.Record, 0, len(vals))
	for k, raw := range vals {
		p, err := lwm2m.ParsePath(strings.TrimRight(base.String(), "/") + "/" + strings.TrimPrefix(k, "/"))
		if err != nil || p.Depth() < 3 {
			return nil, badRequest(fmt.Sprintf("values key %q under %s: want a resource ID or resource/instance", k, base))
		}
		v, err := requestValue(p, raw)
		if err != nil {
			return nil, err
		}
		rs = append(rs, lwm2m.Record{Path: p, Value: v})
	}
	lwm2m.SortRecords(rs)
	return rs, nil
}

// writeRecords reads the values of a write: value for the resource at
// path, values keyed by paths relative to path, or, without path (a
// composite write), values keyed by absolute resource paths. It returns
// the target (zero when composite) and the records in path order.
func writeRecords(path string, value json.RawMessage, values map[string]json.RawMessage) (target lwm2m.Path, rs []lwm2m.Record, composite bool, err error) {
	if path == "" {
		if len(values) == 0 || value != nil {
			return target, nil, true, badRequest("a write needs path with value or values, or values keyed by absolute paths (composite)")
		}
		for k, raw := range values {
			p, err := lwm2m.ParsePath(k)
			if err != nil || p.Depth() < 3 {
				return target, nil, true, badRequest(fmt.Sprintf("composite write key %q: want an absolute resource path", k))
			}
			v, err := requestValue(p, raw)
			if err != nil {
				return target, nil, true, err
			}
			rs = append(rs, lwm2m.Record{Path: p, Value: v})
		}
		lwm2m.SortRecords(rs)
		return target, rs, true, nil
	}
	target, err = lwm2m.ParsePath(path)
	if err != nil {
		return target, nil, false, badRequest(err.Error())
	}
	switch {
	case value != nil && len(values) == 0:
		v, err := requestValue(target, value)
		if err != nil {
			return target, nil, false, err
		}
		rs = []lwm2m.Record{{Path: target, Value: v}}
	case value == nil && len(values) > 0:
		if rs, err = relativeRecords(target, values); err != nil {
			return target, nil, false, err
		}
	default:
		return target, nil, false, badRequest("give value or values")
	}
	return target, rs, false, nil
}

// writeMode is the write mode a request asks for: replace or update, or
// DefaultWriteMode when it names none.
func writeMode(mode string, target lwm2m.Path) (WriteMode, error) {
	switch mode {
	case "":
		return DefaultWriteMode(target), nil
	case "replace":
		return Replace, nil
	case "update":
		return Update, nil
	}
	return Replace, badRequest(fmt.Sprintf("mode %q: want replace or update", mode))
}

// attributeQuery turns {"pmin": 10, "gt": null} into attributes; null
// removes an attribute.
func attributeQuery(in map[string]json.RawMessage) (linkformat.Attributes, error) {
	var q []string
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		raw := strings.TrimSpace(string(in[k]))
		if raw == "null" {
			q = append(q, k)
			continue
		}
		if _, err := strconv.ParseFloat(raw, 64); err != nil {
			return linkformat.Attributes{}, badRequest(fmt.Sprintf("attribute %s: want a number or null", k))
		}
		q = append(q, k+"="+raw)
	}
	attrs, err := linkformat.ParseQuery(q)
	if err != nil {
		return linkformat.Attributes{}, badRequest(err.Error())
	}
	return attrs, nil
}

// nextInstance picks a free instance ID of object obj from the endpoint's
// registered object links: one above the highest in use, or 0.
func nextInstance(objectLinks string, obj uint16) uint16 {
	reg, err := linkformat.ParseRegistration([]byte(objectLinks))
	if err != nil {
		return 0
	}
	if o, ok := reg.Object(obj); ok && len(o.Instances) > 0 {
		if last := o.Instances[len(o.Instances)-1]; last < lwm2m.MaxID {
			return last + 1
		}
	}
	return 0
}
