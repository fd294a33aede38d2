package linkformat

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Registration is the object list of a Register or Update payload (LwM2M
// 1.1 §6.2.1, 1.2 §6.2.1).
type Registration struct {
	// RootPath is the path under which the client's objects live: "/" or
	// an alternate path such as "/lwm2m" (no trailing slash).
	RootPath string
	// ContentFormats are the formats announced with ct on the root link,
	// in the order given; nil when none were announced.
	ContentFormats []lwm2m.MediaType
	// Objects are the supported objects, sorted by ID.
	Objects []ObjectLink
}

// ObjectLink is one supported object with its instances.
type ObjectLink struct {
	ID uint16
	// Version is the object version given with ver ("1.1"), or "" when
	// the client gave none (the version the enabler version implies).
	Version string
	// Instances are the available instance IDs in ascending order, without
	// duplicates; empty when the object has none.
	Instances []uint16
}

// Object returns the object with the given ID.
func (r Registration) Object(id uint16) (ObjectLink, bool) {
	i, ok := slices.BinarySearchFunc(r.Objects, id, func(o ObjectLink, id uint16) int { return int(o.ID) - int(id) })
	if !ok {
		return ObjectLink{}, false
	}
	return r.Objects[i], true
}

// ParseRegistration parses the link-format payload of Register or Update.
//
// The root link is the link with rt="oma.lwm2m" (at most one may carry it)
// or, failing that, a link to "/" (some clients send "</>;ct=11543" without
// rt). Its target becomes RootPath and its ct parameter, a single number or
// a quoted space-separated list, the ContentFormats. Every other link must
// name an object ("</3>") or an object instance ("</3/0>") under the root
// path; a missing leading slash is read as relative to the root path. ver
// gives the object version ("major.minor"); it may be repeated on links of
// the same object only with the same value. Other parameters are ignored.
// An empty payload yields a Registration with RootPath "/" and no objects.
//
// Malformed input, paths deeper than an instance, IDs above lwm2m.MaxID,
// paths outside the root path, bad ct or ver values yield a
// *lwm2m.DecodeError.
func ParseRegistration(data []byte) (Registration, error) {
	reg := Registration{RootPath: "/"}

	// One scan finds the root link, which may appear anywhere, and keeps
	// every link's target and ver; the object links are resolved against
	// the root path afterwards.
	type rootLink struct {
		found     bool
		off       int
		target    []byte
		targetOff int
		ct        rawParam
		hasCT     bool
	}
	type objLink struct {
		off, targetOff, verOff int
		target, ver            []byte // alias data (ver may be unescaped)
		hasVer                 bool
	}
	var rt, slash rootLink
	links := make([]objLink, 0, 32)
	err := scan(data, func(r *rawLink) error {
		l := objLink{off: r.off, target: r.target, targetOff: r.targetOff}
		if v, ok := r.param("ver"); ok {
			l.ver, l.verOff, l.hasVer = v.val, v.valOff, true
		}
		links = append(links, l)
		var dst *rootLink
		if p, ok := r.param("rt"); ok && hasField(p.val, "oma.lwm2m") {
			if rt.found {
				return errAt(p.off, "rt", `more than one link with rt="oma.lwm2m"`)
			}
			dst = &rt
		} else if !slash.found && string(r.target) == "/" {
			dst = &slash
		} else {
			return nil
		}
		*dst = rootLink{found: true, off: r.off, target: r.target, targetOff: r.targetOff}
		dst.ct, dst.hasCT = r.param("ct")
		return nil
	})
	if err != nil {
		return Registration{}, err
	}
	rl := rt
	if !rl.found {
		rl = slash
	}
	rootOff := -1
	var root []byte
	if rl.found {
		rootOff = rl.off
		if root, err = rootPath(rl.target, rl.targetOff); err != nil {
			return Registration{}, err
		}
		if len(root) > 1 {
			reg.RootPath = string(root)
		}
		if rl.hasCT {
			if reg.ContentFormats, err = parseCT(rl.ct); err != nil {
				return Registration{}, err
			}
		}
	}

	type entry struct {
		obj    uint16
		inst   int32 // -1 for an object link
		ver    string
		verOff int
	}
	entries := make([]entry, 0, len(links))
	for i := range links {
		l := &links[i]
		if l.off == rootOff {
			continue
		}
		t, toff := l.target, l.targetOff
		if len(root) > 1 && len(t) > 0 && t[0] == '/' {
			if !bytes.HasPrefix(t, root) || (len(t) > len(root) && t[len(root)] != '/') {
				return Registration{}, errAt(toff, "path", "link %q is outside the root path %q", t, root)
			}
			t, toff = t[len(root):], toff+len(root)
		}
		p, err := parsePath(t, toff)
		if err != nil {
			return Registration{}, err
		}
		switch {
		case p.IsRoot():
			return Registration{}, errAt(toff, "path", "second link to the root path")
		case p.Depth() > 2:
			return Registration{}, errAt(toff, "path", "link %q is deeper than an object instance", l.target)
		}
		e := entry{obj: p.Object(), inst: -1}
		if p.IsInstance() {
			e.inst = int32(p.Instance())
		}
		if l.hasVer {
			if !validVersion(l.ver) {
				return Registration{}, errAt(l.verOff, "ver", "version %q is not major.minor", l.ver)
			}
			e.ver, e.verOff = internVersion(l.ver), l.verOff
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return reg, nil
	}

	slices.SortStableFunc(entries, func(a, b entry) int {
		if a.obj != b.obj {
			return int(a.obj) - int(b.obj)
		}
		return int(a.inst) - int(b.inst)
	})
	nobj, ninst := 0, 0
	for i, e := range entries {
		if i == 0 || e.obj != entries[i-1].obj {
			nobj++
		}
		if e.inst >= 0 {
			ninst++
		}
	}
	reg.Objects = make([]ObjectLink, 0, nobj)
	insts := make([]uint16, 0, ninst) // one backing array for all objects
	for i := 0; i < len(entries); {
		o := ObjectLink{ID: entries[i].obj}
		start := len(insts)
		verOff := 0
		for ; i < len(entries) && entries[i].obj == o.ID; i++ {
			e := entries[i]
			if e.ver != "" {
				if o.Version != "" && o.Version != e.ver {
					return Registration{}, errAt(max(e.verOff, verOff), "ver",
						"object %d has versions %q and %q", o.ID, o.Version, e.ver)
				}
				o.Version, verOff = e.ver, e.verOff
			}
			if e.inst >= 0 && (len(insts) == start || insts[len(insts)-1] != uint16(e.inst)) {
				insts = append(insts, uint16(e.inst))
			}
		}
		if len(insts) > start {
			o.Instances = insts[start:len(insts):len(insts)]
		}
		reg.Objects = append(reg.Objects, o)
	}
	return reg, nil
}

// rootPath normalizes the root link's target: a leading slash, no trailing
// slash (except for "/" itself), no query or fragment.
func rootPath(t []byte, off int) ([]byte, error) {
	if len(t) == 0 {
		return nil, errAt(off, "path", "empty root path")
	}
	if i := bytes.IndexAny(t, "?#"); i >= 0 {
		return nil, errAt(off+i, "path", "root path %q has a query or fragment", t)
	}
	if t[0] != '/' {
		t = append([]byte{'/'}, t...)
	}
	for len(t) > 1 && t[len(t)-1] == '/' {
		t = t[:len(t)-1]
	}
	return t, nil
}

// parseCT parses the ct parameter of the root link: one number or a
// space-separated list (commas are tolerated as separators too).
func parseCT(p rawParam) ([]lwm2m.MediaType, error) {
	if !p.hasValue {
		return nil, errAt(p.off, "ct", "ct has no value")
	}
	var out []lwm2m.MediaType
	v := p.val
	for i := 0; i < len(v); {
		if v[i] == ' ' || v[i] == ',' {
			i++
			continue
		}
		start := i
		for i < len(v) && v[i] != ' ' && v[i] != ',' {
			i++
		}
		n, err := strconv.ParseUint(string(v[start:i]), 10, 16)
		if err != nil {
			return nil, errAt(p.valOff, "ct", "content format %q is not a number in 0..65535", v[start:i])
		}
		out = append(out, lwm2m.MediaType(n))
	}
	if len(out) == 0 {
		return nil, errAt(p.valOff, "ct", "ct is empty")
	}
	return out, nil
}

// hasField reports whether the space-separated list v contains s.
func hasField(v []byte, s string) bool {
	for f := range bytes.FieldsSeq(v) {
		if string(f) == s {
			return true
		}
	}
	return false
}

// validVersion reports whether v has the form major.minor, both decimal.
func validVersion(v []byte) bool {
	dot := bytes.IndexByte(v, '.')
	if dot <= 0 || dot == len(v)-1 || dot > 5 || len(v)-dot-1 > 5 {
		return false
	}
	for i, c := range v {
		if i != dot && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// internVersion returns v as a string, without allocating for the common
// versions.
func internVersion(v []byte) string {
	switch string(v) {
	case "1.0":
		return "1.0"
	case "1.1":
		return "1.1"
	case "1.2":
		return "1.2"
	case "2.0":
		return "2.0"
	}
	return string(v)
}

// FormatRegistration writes reg as a Register payload, the inverse of
// ParseRegistration: a root link `<root>;rt="oma.lwm2m"` with ct (when
// RootPath is not "/" or ContentFormats is set), then for each object a
// `</id>;ver=x` link when it has a version or no instances, followed by its
// instance links. RootPath "" is read as "/". Objects and instances are
// written in the order given.
func FormatRegistration(reg Registration) []byte {
	root := reg.RootPath
	if root == "" {
		root = "/"
	}
	b := make([]byte, 0, 32+12*len(reg.Objects))
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	if root != "/" || len(reg.ContentFormats) > 0 {
		sep()
		b = append(b, '<')
		b = append(b, root...)
		b = append(b, `>;rt="oma.lwm2m"`...)
		switch len(reg.ContentFormats) {
		case 0:
		case 1:
			b = append(b, ";ct="...)
			b = strconv.AppendUint(b, uint64(reg.ContentFormats[0]), 10)
		default:
			b = append(b, `;ct="`...)
			for i, f := range reg.ContentFormats {
				if i > 0 {
					b = append(b, ' ')
				}
				b = strconv.AppendUint(b, uint64(f), 10)
			}
			b = append(b, '"')
		}
	}
	for _, o := range reg.Objects {
		if o.Version != "" || len(o.Instances) == 0 {
			sep()
			b = append(b, '<')
			b = appendPath(b, root, lwm2m.NewPath(o.ID))
			b = append(b, '>')
			if o.Version != "" {
				b = appendParam(b, "ver", o.Version, true)
			}
		}
		for _, inst := range o.Instances {
			sep()
			b = append(b, '<')
			b = appendPath(b, root, lwm2m.NewPath(o.ID, inst))
			b = append(b, '>')
		}
	}
	return b
}
