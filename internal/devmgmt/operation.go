package devmgmt

import (
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
)

// Kind is what an Operation does on the device. Its string is the name
// the REST API takes and the job queue stores.
type Kind string

// The operation kinds.
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

// Composite reports whether k addresses several paths in one request on
// the root path (LwM2M 1.1+).
func (k Kind) Composite() bool {
	switch k {
	case KindReadComposite, KindWriteComposite, KindObserveComposite, KindCancelObserveComposite:
		return true
	}
	return false
}

// WriteMode selects replace or partial update.
type WriteMode uint8

const (
	// Replace (CoAP PUT) replaces the instance or resource at the path
	// with the values given: resources or resource instances not given
	// are removed where the object allows it.
	Replace WriteMode = iota
	// Update (CoAP POST, partial update) changes only the values given.
	Update
)

// DefaultWriteMode is the mode of a write to target that names none:
// Update for an object instance (so that resources not given are kept),
// Replace for a resource or resource instance.
func DefaultWriteMode(target lwm2m.Path) WriteMode {
	if target.Depth() < 3 {
		return Update
	}
	return Replace
}

// Operation is one device-management operation: what to do and its
// arguments, whoever asks (the REST API now or queued, the job worker,
// firmware updates). Check says which fields each Kind takes; the zero
// value of a field is "none".
type Operation struct {
	Kind Kind
	// Paths is the target of a single-path kind (exactly one), or the
	// paths of read-, observe- and cancel-observe-composite (at least
	// one). Write-composite takes its paths from Values and has none.
	Paths []lwm2m.Path
	// Values are what write, write-composite and create send: for a write,
	// on or under its path; for create, the resources of one new instance
	// of its object.
	Values []lwm2m.Record
	// Mode is Replace or Update, for a write.
	Mode WriteMode
	// Format, when set, is the content format the values are sent in
	// (write, write-composite, create) or asked for (read, observe and
	// their composite forms); nil lets the Manager choose from the
	// device's registration (lwm2m.ReadFormat, WriteFormat,
	// CompositeFormat). Composite kinds take SenML-JSON or SenML-CBOR.
	Format *lwm2m.MediaType
	// Attributes are the notification attributes of write-attributes.
	Attributes linkformat.Attributes
	// Args are the execute arguments (`0='v1',1`); "" sends none.
	Args string
}

// Targets returns the paths op addresses: Paths, or for write-composite
// the paths of its values.
func (op Operation) Targets() []lwm2m.Path {
	if op.Kind != KindWriteComposite {
		return op.Paths
	}
	out := make([]lwm2m.Path, len(op.Values))
	for i, r := range op.Values {
		out[i] = r.Path
	}
	return out
}

// Result is what a successful operation brought back.
type Result struct {
	// Values are the values of a read, observe and their composite forms.
	Values []lwm2m.Record
	// Links are the answer of a discover.
	Links []linkformat.DiscoverLink
	// Location is the instance a create made (zero for other kinds).
	Location lwm2m.Path
	// Observation is the observation an observe made or renewed (zero for
	// other kinds).
	Observation registry.Observation
}

// invalid is the error of an operation Check refuses.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Check validates op and returns it with each value converted to the
// type types gives its resource (nil types converts nothing): the one
// validation of an operation, made by Do before anything is sent and by
// every caller that keeps an operation to run later, so that an
// operation that cannot be sent is refused with the same error text
// wherever it is given. Errors match ErrInvalid.
//
// A value converts to its resource's type when lwm2m.Value.Convert allows
// it exactly (the integer 20 to the float 20, the string "3:0" to an
// objlnk), and a string to a time also in RFC 3339; a value of type none
// is refused unless its resource has no value.
func (op Operation) Check(types lwm2m.TypeFunc) (Operation, error) {
	if err := op.checkShape(); err != nil {
		return Operation{}, err
	}
	if len(op.Values) == 0 {
		return op, nil
	}
	typed := make([]lwm2m.Record, len(op.Values))
	for i, r := range op.Values {
		v, err := typeValue(r, types)
		if err != nil {
			return Operation{}, invalid("%s: %v", op.what(), err)
		}
		typed[i] = lwm2m.Record{Path: r.Path, Value: v}
	}
	op.Values = typed
	return op, nil
}

// what names op in error messages: its kind and target.
func (op Operation) what() string {
	switch {
	case op.Kind == KindWriteComposite || len(op.Paths) == 0:
		return string(op.Kind)
	case op.Kind == KindWrite:
		return "write to " + op.Paths[0].String()
	case op.Kind == KindCreate:
		return "create under " + op.Paths[0].String()
	case len(op.Paths) == 1:
		return string(op.Kind) + " " + op.Paths[0].String()
	}
	return string(op.Kind)
}

// checkShape checks that op has the fields its Kind takes, and only those.
func (op Operation) checkShape() error {
	k := op.Kind
	takesValues := k == KindWrite || k == KindWriteComposite || k == KindCreate
	switch {
	case len(op.Values) > 0 && !takesValues:
		return invalid("%s takes no values", k)
	case op.Mode != Replace && k != KindWrite:
		return invalid("%s takes no write mode", k)
	case op.Mode != Replace && op.Mode != Update:
		return invalid("write mode %d: want replace or update", op.Mode)
	case op.Args != "" && k != KindExecute:
		return invalid("%s takes no arguments", k)
	case !op.Attributes.IsZero() && k != KindWriteAttributes:
		return invalid("%s takes no attributes", k)
	}
	if err := op.checkFormat(); err != nil {
		return err
	}
	one := func() (lwm2m.Path, error) {
		if len(op.Paths) != 1 {
			return lwm2m.Path{}, invalid("%s takes exactly one path, got %d", k, len(op.Paths))
		}
		return op.Paths[0], nil
	}
	switch k {
	case KindRead, KindObserve, KindCancelObserve:
		p, err := one()
		if err != nil {
			return err
		}
		if p.IsRoot() {
			return invalid("%s of the root path", k)
		}
	case KindDiscover:
		p, err := one()
		if err != nil {
			return err
		}
		if p.IsRoot() || p.IsResourceInstance() {
			return invalid("discover %s: want an object, object instance or resource", p)
		}
	case KindWriteAttributes:
		p, err := one()
		if err != nil {
			return err
		}
		if p.IsRoot() {
			return invalid("write-attributes on the root path")
		}
		if op.Attributes.IsZero() {
			return invalid("write-attributes on %s: no attributes", p)
		}
		if err := op.Attributes.Validate(); err != nil {
			return invalid("write-attributes on %s: %v", p, err)
		}
	case KindWrite:
		p, err := one()
		if err != nil {
			return err
		}
		if p.Depth() < 2 {
			return invalid("write to %s: want an object instance, resource or resource instance", p)
		}
		if len(op.Values) == 0 {
			return invalid("write to %s: no values", p)
		}
		for _, r := range op.Values {
			if !r.Path.HasPrefix(p) || r.Path.Depth() < 3 {
				return invalid("write to %s: value for %s: want a resource or resource instance on or under %s", p, r.Path, p)
			}
		}
	case KindWriteComposite:
		if len(op.Paths) > 0 {
			return invalid("write-composite takes its paths from its values, not paths")
		}
		if len(op.Values) == 0 {
			return invalid("write-composite: no values")
		}
		for _, r := range op.Values {
			if r.Path.Depth() < 3 {
				return invalid("write-composite: value for %s: want a resource or resource instance", r.Path)
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
		if len(op.Values) == 0 {
			return invalid("create under %s: no values", p)
		}
		inst := op.Values[0].Path.Truncate(2)
		for _, r := range op.Values {
			if r.Path.Depth() < 3 || r.Path.Truncate(2) != inst || !r.Path.HasPrefix(p) {
				return invalid("create under %s: value for %s: want the resources of one instance of %s", p, r.Path, p)
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
		if len(op.Paths) == 0 {
			return invalid("%s: no paths", k)
		}
		for _, p := range op.Paths {
			if p.IsRoot() {
				return invalid("%s of the root path", k)
			}
		}
	default:
		return invalid("unknown kind %q", k)
	}
	return nil
}

// checkFormat checks op.Format against the kind.
func (op Operation) checkFormat() error {
	if op.Format == nil {
		return nil
	}
	f := *op.Format
	switch op.Kind {
	case KindRead, KindObserve, KindWrite, KindCreate:
		if !codec.Supported(f) {
			return invalid("%s: format %s is not supported", op.Kind, f)
		}
	case KindReadComposite, KindObserveComposite, KindWriteComposite:
		if f != lwm2m.FormatSenMLJSON && f != lwm2m.FormatSenMLCBOR {
			return invalid("%s: format %s: want %s or %s", op.Kind, f, lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR)
		}
	default:
		return invalid("%s takes no format", op.Kind)
	}
	return nil
}

// typeValue converts r's value to the type of its resource.
func typeValue(r lwm2m.Record, types lwm2m.TypeFunc) (lwm2m.Value, error) {
	v := r.Value
	var t lwm2m.Type
	known := false
	if types != nil {
		t, known = types(r.Path)
	}
	switch {
	case !known:
		if v.Type() == lwm2m.TypeNone {
			return v, fmt.Errorf("value for %s: no value", r.Path)
		}
		return v, nil
	case v.Type() == t:
		return v, nil
	case t == lwm2m.TypeTime && v.Type() == lwm2m.TypeString:
		if ts, err := time.Parse(time.RFC3339, v.StringValue()); err == nil {
			return lwm2m.Time(ts), nil
		}
	}
	w, err := v.Convert(t)
	if err != nil {
		return v, fmt.Errorf("value for %s: want %s, got %s %q", r.Path, t, v.Type(), v.String())
	}
	return w, nil
}
