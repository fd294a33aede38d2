package simulator

import (
	"fmt"
	"maps"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// statusError is an operation failure with the CoAP code to answer.
type statusError struct {
	code codes.Code
	msg  string
}

func (e *statusError) Error() string { return e.code.String() + ": " + e.msg }

func statusf(code codes.Code, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// codeOf returns the CoAP code an error maps to (4.00 for errors that are
// not statusErrors: they come from decoding the request).
func codeOf(err error) codes.Code {
	if se, ok := err.(*statusError); ok {
		return se.code
	}
	return codes.BadRequest
}

// model is a device's object tree. It is not safe for concurrent use; the
// Device guards it with its mutex.
type model struct {
	reg  *objects.Catalog
	objs map[uint16]*object
	// dynamic resources compute their value on every read.
	dynamic map[lwm2m.Path]func() lwm2m.Value
	// check validates a value about to be written; nil accepts all.
	check func(p lwm2m.Path, v lwm2m.Value) error
	// newInstance fills a freshly created instance with its defaults.
	newInstance func(obj, id uint16) map[uint16]any
	// creatable are the objects whose instances Create and Delete manage.
	creatable map[uint16]bool
}

type object struct {
	def  *objects.ObjectDef
	inst map[uint16]*instance
}

type instance struct {
	res map[uint16]*resource
}

// resource holds a single value, or for a multiple-instance resource its
// instances sorted by ID. Executable resources hold nothing.
type resource struct {
	def   *objects.ResourceDef
	value lwm2m.Value
	multi []resInst
}

type resInst struct {
	id uint16
	v  lwm2m.Value
}

func newModel(reg *objects.Catalog) *model {
	return &model{reg: reg, objs: map[uint16]*object{}, dynamic: map[lwm2m.Path]func() lwm2m.Value{}, creatable: map[uint16]bool{}}
}

// addInstance adds (or replaces) instance id of object obj with the given
// values: a lwm2m.Value for single resources, a []lwm2m.Value (instances
// 0..n-1) for multiple ones, nil for executables. It panics on a resource
// the object does not define: the tables in this package are wrong then.
func (m *model) addInstance(obj, id uint16, vals map[uint16]any) {
	o := m.objs[obj]
	if o == nil {
		def, ok := m.reg.Object(obj)
		if !ok {
			panic(fmt.Sprintf("simulator: object %d not defined", obj))
		}
		o = &object{def: def, inst: map[uint16]*instance{}}
		m.objs[obj] = o
	}
	in := &instance{res: make(map[uint16]*resource, len(vals))}
	for rid, v := range vals {
		def, ok := o.def.Resource(rid)
		if !ok {
			panic(fmt.Sprintf("simulator: resource /%d/%d not defined", obj, rid))
		}
		r := &resource{def: def}
		switch v := v.(type) {
		case nil:
		case lwm2m.Value:
			r.value = v
		case []lwm2m.Value:
			for i, x := range v {
				r.multi = append(r.multi, resInst{uint16(i), x})
			}
		default:
			panic(fmt.Sprintf("simulator: bad initial value %T", v))
		}
		in.res[rid] = r
	}
	o.inst[id] = in
}

// set stores a value at a depth-3 or depth-4 path that exists; it is used
// by the device's own value changes, bypassing operation checks.
func (m *model) set(p lwm2m.Path, v lwm2m.Value) {
	_, _, r, err := m.lookup(p.Truncate(3))
	if err != nil {
		return
	}
	if p.IsResourceInstance() {
		r.setInstance(p.ResourceInstance(), v)
		return
	}
	r.value = v
}

// value returns the value at a depth-3 path (zero Value when absent).
func (m *model) value(p lwm2m.Path) lwm2m.Value {
	if f := m.dynamic[p]; f != nil {
		return f()
	}
	_, _, r, err := m.lookup(p)
	if err != nil {
		return lwm2m.Value{}
	}
	return r.value
}

// valueStored returns the stored value at a depth-3 path, ignoring a
// dynamic value.
func (m *model) valueStored(p lwm2m.Path) lwm2m.Value {
	_, _, r, err := m.lookup(p)
	if err != nil {
		return lwm2m.Value{}
	}
	return r.value
}

// sortedKeys returns the keys of an ID-keyed map in ascending order.
func sortedKeys[V any](m map[uint16]V) []uint16 { return slices.Sorted(maps.Keys(m)) }

func (r *resource) setInstance(id uint16, v lwm2m.Value) {
	i, found := slices.BinarySearchFunc(r.multi, id, func(ri resInst, id uint16) int { return int(ri.id) - int(id) })
	if found {
		r.multi[i].v = v
		return
	}
	r.multi = slices.Insert(r.multi, i, resInst{id, v})
}

// lookup resolves p level by level; missing levels are 4.04. Results for
// levels deeper than p are nil.
func (m *model) lookup(p lwm2m.Path) (*object, *instance, *resource, error) {
	if p.IsRoot() {
		return nil, nil, nil, nil
	}
	o := m.objs[p.Object()]
	if o == nil {
		return nil, nil, nil, statusf(codes.NotFound, "object %d not present", p.Object())
	}
	if p.Depth() < 2 {
		return o, nil, nil, nil
	}
	in := o.inst[p.Instance()]
	if in == nil {
		return nil, nil, nil, statusf(codes.NotFound, "instance %s not present", p.Truncate(2))
	}
	if p.Depth() < 3 {
		return o, in, nil, nil
	}
	r := in.res[p.Resource()]
	if r == nil {
		return nil, nil, nil, statusf(codes.NotFound, "resource %s not present", p.Truncate(3))
	}
	if p.Depth() == 4 {
		if !r.def.Multiple {
			return nil, nil, nil, statusf(codes.NotFound, "resource %s has no instances", p.Truncate(3))
		}
		if _, found := slices.BinarySearchFunc(r.multi, p.ResourceInstance(), func(ri resInst, id uint16) int { return int(ri.id) - int(id) }); !found {
			return nil, nil, nil, statusf(codes.NotFound, "resource instance %s not present", p)
		}
	}
	return o, in, r, nil
}

// read returns the records of the readable resources at or under p, in path
// order. The root is read as every object. Reading a resource that is not
// readable is 4.05.
func (m *model) read(p lwm2m.Path) ([]lwm2m.Record, error) {
	o, in, r, err := m.lookup(p)
	if err != nil {
		return nil, err
	}
	var out []lwm2m.Record
	switch p.Depth() {
	case 0:
		for _, id := range slices.Sorted(maps.Keys(m.objs)) {
			rs, _ := m.read(lwm2m.NewPath(id))
			out = append(out, rs...)
		}
	case 1:
		for _, id := range slices.Sorted(maps.Keys(o.inst)) {
			out = m.appendInstance(out, p.Child(id), o.inst[id])
		}
	case 2:
		out = m.appendInstance(out, p, in)
	case 3:
		if !r.def.Operations.Has(objects.R) {
			return nil, statusf(codes.MethodNotAllowed, "resource %s is not readable", p)
		}
		out = m.appendResource(out, p, r)
	case 4:
		if !r.def.Operations.Has(objects.R) {
			return nil, statusf(codes.MethodNotAllowed, "resource %s is not readable", p)
		}
		for _, ri := range r.multi {
			if ri.id == p.ResourceInstance() {
				out = append(out, lwm2m.Record{Path: p, Value: ri.v})
			}
		}
	}
	return out, nil
}

func (m *model) appendInstance(out []lwm2m.Record, p lwm2m.Path, in *instance) []lwm2m.Record {
	for _, rid := range slices.Sorted(maps.Keys(in.res)) {
		r := in.res[rid]
		if r.def.Operations.Has(objects.R) {
			out = m.appendResource(out, p.Child(rid), r)
		}
	}
	return out
}

func (m *model) appendResource(out []lwm2m.Record, p lwm2m.Path, r *resource) []lwm2m.Record {
	if !r.def.Multiple {
		v := r.value
		if f := m.dynamic[p]; f != nil {
			v = f()
		}
		return append(out, lwm2m.Record{Path: p, Value: v})
	}
	for _, ri := range r.multi {
		out = append(out, lwm2m.Record{Path: p.Child(ri.id), Value: ri.v})
	}
	return out
}

// writeMode says how Write treats what the payload does not mention.
type writeMode uint8

const (
	writeUpdate  writeMode = iota // partial update (POST): merge
	writeReplace                  // replace (PUT): multiple resources in the payload lose other instances
	writeCreate                   // Create: read-only resources may be set too
)

// write checks every record against target and the object definitions and
// applies them all, or none. It returns the depth-3 paths it changed.
func (m *model) write(target lwm2m.Path, rs []lwm2m.Record, mode writeMode) ([]lwm2m.Path, error) {
	type op struct {
		in  *instance
		def *objects.ResourceDef
		rec lwm2m.Record
	}
	ops := make([]op, 0, len(rs))
	for _, rec := range rs {
		p := rec.Path
		if p.Depth() < 3 || !p.HasPrefix(target) {
			return nil, statusf(codes.BadRequest, "record %s is not a resource under %s", p, target)
		}
		o, in, _, err := m.lookup(p.Truncate(2))
		if err != nil {
			return nil, err
		}
		def, ok := o.def.Resource(p.Resource())
		if !ok {
			return nil, statusf(codes.NotFound, "object %d has no resource %d", p.Object(), p.Resource())
		}
		allowed := def.Operations.Has(objects.W) || (mode == writeCreate && def.Operations.Has(objects.R))
		if !allowed {
			return nil, statusf(codes.MethodNotAllowed, "resource %s is not writable", p.Truncate(3))
		}
		if def.Multiple != (p.Depth() == 4) {
			return nil, statusf(codes.BadRequest, "record %s does not match the multiplicity of the resource", p)
		}
		v := rec.Value
		if v.Type() != def.Type {
			cv, err := v.Convert(def.Type)
			if err != nil {
				return nil, statusf(codes.BadRequest, "%s: %v is not a valid %s", p, v.GoString(), def.Type)
			}
			v = cv
		}
		if m.check != nil {
			if err := m.check(p, v); err != nil {
				return nil, err
			}
		}
		rec.Value = v
		ops = append(ops, op{in: in, def: def, rec: rec})
	}
	var changed []lwm2m.Path
	cleared := map[*resource]bool{}
	for _, o := range ops {
		p := o.rec.Path
		rp := p.Truncate(3)
		r := o.in.res[p.Resource()]
		if r == nil {
			r = &resource{def: o.def}
			o.in.res[p.Resource()] = r
		}
		if p.IsResourceInstance() {
			// A replace of a resource or an instance replaces the whole
			// set of resource instances; a replace aimed at one resource
			// instance only touches that one.
			if (mode != writeUpdate && target.Depth() < 4) && !cleared[r] {
				r.multi = nil
				cleared[r] = true
			}
			r.setInstance(p.ResourceInstance(), o.rec.Value)
		} else {
			r.value = o.rec.Value
		}
		if !slices.Contains(changed, rp) {
			changed = append(changed, rp)
		}
	}
	return changed, nil
}

// create adds an instance to object obj from records, all of which must
// name the same instance (or, with no records, the next free instance ID),
// and returns its ID.
func (m *model) create(obj uint16, rs []lwm2m.Record) (uint16, error) {
	o := m.objs[obj]
	if o == nil {
		return 0, statusf(codes.NotFound, "object %d not present", obj)
	}
	if !m.creatable[obj] {
		return 0, statusf(codes.MethodNotAllowed, "object %d does not allow Create", obj)
	}
	var id uint16
	if len(rs) > 0 {
		id = rs[0].Path.Instance()
		for _, r := range rs {
			if r.Path.Depth() < 3 || r.Path.Object() != obj || r.Path.Instance() != id {
				return 0, statusf(codes.BadRequest, "record %s is not in one new instance of object %d", r.Path, obj)
			}
		}
		if o.inst[id] != nil {
			return 0, statusf(codes.BadRequest, "instance /%d/%d already exists", obj, id)
		}
	} else {
		for o.inst[id] != nil {
			id++
		}
	}
	m.addInstance(obj, id, m.newInstance(obj, id))
	if _, err := m.write(lwm2m.NewPath(obj, id), rs, writeCreate); err != nil {
		delete(o.inst, id)
		return 0, err
	}
	return id, nil
}

// remove deletes an object instance of a creatable object.
func (m *model) remove(p lwm2m.Path) error {
	if !p.IsInstance() {
		return statusf(codes.MethodNotAllowed, "Delete applies to object instances, not %s", p)
	}
	o, _, _, err := m.lookup(p)
	if err != nil {
		return err
	}
	if !m.creatable[p.Object()] {
		return statusf(codes.MethodNotAllowed, "object %d does not allow Delete", p.Object())
	}
	delete(o.inst, p.Instance())
	return nil
}

// objectLinks lists the objects and instances for the registration
// payload; withVersion adds each object's version when it is not 1.0.
func (m *model) objectLinks(withVersion bool) []linkformat.ObjectLink {
	var out []linkformat.ObjectLink
	for _, id := range slices.Sorted(maps.Keys(m.objs)) {
		o := m.objs[id]
		l := linkformat.ObjectLink{ID: id, Instances: slices.Sorted(maps.Keys(o.inst))}
		if withVersion && o.def.Version != "1.0" {
			l.Version = o.def.Version
		}
		out = append(out, l)
	}
	return out
}

// typeOf types decoded values with the device's own definitions.
func (m *model) typeOf(p lwm2m.Path) (lwm2m.Type, bool) { return m.reg.TypeOf(p) }
