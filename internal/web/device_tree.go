package web

import (
	"slices"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// treeObject is one object of a device page's object tree: the
// instances the device registered or reported values of.
type treeObject struct {
	ID        uint16
	Name      string
	Instances []treeInstance
	Values    bool // some resource has a value: shown open
}

type treeInstance struct {
	Path      string // "/3303/0"
	Resources []treeResource
}

// treeResource is one resource (or resource instance) row: its
// definition, when the catalog has one, and its latest value, if any.
type treeResource struct {
	Path       string
	Name       string
	Units      string
	Type       string
	Value      *render.Value
	Readable   bool
	Writable   bool
	Executable bool
	Numeric    bool   // has a history chart
	Input      string // the HTML input type of a write: number, text, datetime-local, checkbox
	Step       string // the number input's step: "1" or "any"
}

// objectTree groups the latest values under the objects and instances
// of the device's registration (objectLinks) and those it reported: each
// instance lists the resources its object's definition has (those with a
// value first in path order with the rest) and any other resource it has
// a value of.
func objectTree(cat *objects.Catalog, objectLinks string, vals []store.ResourceValue) []treeObject {
	type key struct{ obj, inst uint16 }
	byInst := map[key][]store.ResourceValue{}
	var order []key
	seen := map[key]bool{}
	add := func(k key) {
		if !seen[k] {
			seen[k] = true
			order = append(order, k)
		}
	}
	if reg, err := linkformat.ParseRegistration([]byte(objectLinks)); err == nil {
		for _, o := range reg.Objects {
			for _, i := range o.Instances {
				add(key{o.ID, i})
			}
		}
	}
	for _, v := range vals {
		k := key{v.Path.Object(), v.Path.Instance()}
		add(k)
		byInst[k] = append(byInst[k], v)
	}
	sortKeys := func(a, b key) int {
		if a.obj != b.obj {
			return int(a.obj) - int(b.obj)
		}
		return int(a.inst) - int(b.inst)
	}
	slices.SortFunc(order, sortKeys)
	var out []treeObject
	for _, k := range order {
		if len(out) == 0 || out[len(out)-1].ID != k.obj {
			o := treeObject{ID: k.obj}
			if cat != nil {
				if def, ok := cat.Object(k.obj); ok {
					o.Name = def.Name
				}
			}
			out = append(out, o)
		}
		base := lwm2m.Root.Child(k.obj).Child(k.inst)
		ti := treeInstance{Path: base.String()}
		have := map[uint16]bool{}
		var def *objects.ObjectDef
		if cat != nil {
			def, _ = cat.Object(k.obj)
		}
		for _, v := range byInst[k] {
			have[v.Path.Resource()] = true
		}
		i := 0
		vs := byInst[k]
		emit := func(p lwm2m.Path, rd *objects.ResourceDef, v *store.ResourceValue) {
			r := treeResource{Path: p.String()}
			if rd != nil {
				r.Name, r.Units, r.Type = rd.Name, rd.Units, rd.Type.String()
				r.Readable, r.Writable, r.Executable = rd.Operations.Has(objects.R), rd.Operations.Has(objects.W), rd.Operations.Has(objects.E)
				if rd.Type == lwm2m.TypeNone {
					r.Type = ""
				}
				r.Input, r.Step = inputOf(rd.Type)
			} else {
				r.Readable = true
			}
			if v != nil {
				out[len(out)-1].Values = true
				rv := render.ValueOf(cat, v.Path, v.Value, v.DeviceTime, v.ReceivedAt)
				r.Value = &rv
				if r.Type == "" {
					r.Type = rv.Type
				}
				if r.Name == "" {
					r.Name = rv.Name
				}
			}
			r.Numeric = numericType(r.Type)
			ti.Resources = append(ti.Resources, r)
		}
		var defs []objects.ResourceDef
		if def != nil {
			defs = def.Resources
		}
		for _, rd := range defs {
			for i < len(vs) && vs[i].Path.Resource() < rd.ID {
				emit(vs[i].Path, nil, &vs[i])
				i++
			}
			if !have[rd.ID] {
				emit(base.Child(rd.ID), &rd, nil)
				continue
			}
			for i < len(vs) && vs[i].Path.Resource() == rd.ID {
				emit(vs[i].Path, &rd, &vs[i])
				i++
			}
		}
		for ; i < len(vs); i++ {
			emit(vs[i].Path, nil, &vs[i])
		}
		out[len(out)-1].Instances = append(out[len(out)-1].Instances, ti)
	}
	return out
}

// numericType reports whether values of the type named t can be charted.
func numericType(t string) bool {
	switch t {
	case "integer", "unsigned", "float", "boolean", "time":
		return true
	}
	return false
}

// inputOf is the HTML input of a write of a resource of type t.
func inputOf(t lwm2m.Type) (input, step string) {
	switch t {
	case lwm2m.TypeInteger, lwm2m.TypeUnsigned:
		return "number", "1"
	case lwm2m.TypeFloat:
		return "number", "any"
	case lwm2m.TypeBoolean:
		return "bool", ""
	case lwm2m.TypeTime:
		return "text", "" // RFC 3339 or unix seconds
	}
	return "text", ""
}
