package lwm2m

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxID is the largest object, instance or resource ID a path may carry.
// 65535 is reserved by the LwM2M specification (MAX_ID) and is refused.
const MaxID = 65534

// Path addresses a node in the LwM2M data tree: the root "/", an object
// "/3", an object instance "/3/0", a resource "/3/0/1" or a resource
// instance "/3/0/7/1". The zero Path is the root. Paths are comparable
// values and may be used as map keys.
type Path struct {
	ids   [4]uint16
	depth uint8
}

// Root is the path "/".
var Root = Path{}

// NewPath builds a path from its IDs (at most four). It panics on more than
// four IDs or an ID above MaxID; use ParsePath for untrusted input.
func NewPath(ids ...uint16) Path {
	if len(ids) > 4 {
		panic("lwm2m: path deeper than 4")
	}
	var p Path
	for i, id := range ids {
		if id > MaxID {
			panic("lwm2m: path ID above MaxID")
		}
		p.ids[i] = id
	}
	p.depth = uint8(len(ids))
	return p
}

// ParsePath parses "/obj/inst/res/resinst" with one to four IDs, or "/" for
// the root. A trailing slash is tolerated ("/3/0/"); empty segments,
// non-decimal IDs, IDs above MaxID and more than four IDs are errors.
func ParsePath(s string) (Path, error) {
	if s == "" || s[0] != '/' {
		return Path{}, fmt.Errorf("lwm2m: path %q: must start with '/'", s)
	}
	if s == "/" {
		return Root, nil
	}
	rest := strings.TrimSuffix(s[1:], "/")
	var p Path
	for seg := range strings.SplitSeq(rest, "/") {
		if p.depth == 4 {
			return Path{}, fmt.Errorf("lwm2m: path %q: more than 4 IDs", s)
		}
		id, err := parseID(seg)
		if err != nil {
			return Path{}, fmt.Errorf("lwm2m: path %q: %w", s, err)
		}
		p.ids[p.depth] = id
		p.depth++
	}
	return p, nil
}

func parseID(seg string) (uint16, error) {
	if seg == "" {
		return 0, fmt.Errorf("empty segment")
	}
	if len(seg) > 1 && seg[0] == '0' {
		return 0, fmt.Errorf("ID %q has a leading zero", seg)
	}
	n, err := strconv.ParseUint(seg, 10, 32)
	if err != nil || n > MaxID {
		return 0, fmt.Errorf("ID %q is not a number in 0..%d", seg, MaxID)
	}
	return uint16(n), nil
}

// MustParsePath is ParsePath for constants in code and tests; it panics on error.
func MustParsePath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Depth is the number of IDs: 0 root, 1 object, 2 instance, 3 resource,
// 4 resource instance.
func (p Path) Depth() int { return int(p.depth) }

// IsRoot, IsObject, IsInstance, IsResource and IsResourceInstance report the
// kind of node the path addresses.
func (p Path) IsRoot() bool             { return p.depth == 0 }
func (p Path) IsObject() bool           { return p.depth == 1 }
func (p Path) IsInstance() bool         { return p.depth == 2 }
func (p Path) IsResource() bool         { return p.depth == 3 }
func (p Path) IsResourceInstance() bool { return p.depth == 4 }

// Object, Instance, Resource and ResourceInstance return the ID at that
// level; they are 0 when the path is not that deep.
func (p Path) Object() uint16           { return p.ids[0] }
func (p Path) Instance() uint16         { return p.ids[1] }
func (p Path) Resource() uint16         { return p.ids[2] }
func (p Path) ResourceInstance() uint16 { return p.ids[3] }

// ID returns the ID at level i (0-based); it panics when i >= Depth().
func (p Path) ID(i int) uint16 {
	if i >= int(p.depth) {
		panic("lwm2m: path level out of range")
	}
	return p.ids[i]
}

// IDs returns the path's IDs in a new slice.
func (p Path) IDs() []uint16 { return append([]uint16(nil), p.ids[:p.depth]...) }

// Child returns the path one level deeper; it panics on a depth-4 path or an
// ID above MaxID.
func (p Path) Child(id uint16) Path {
	if p.depth == 4 {
		panic("lwm2m: child of a resource instance path")
	}
	if id > MaxID {
		panic("lwm2m: path ID above MaxID")
	}
	p.ids[p.depth] = id
	p.depth++
	return p
}

// Parent returns the path one level up; the parent of the root is the root.
func (p Path) Parent() Path { return p.Truncate(int(p.depth) - 1) }

// Truncate returns the first n levels of p (n is clamped to 0..Depth()).
func (p Path) Truncate(n int) Path {
	if n < 0 {
		n = 0
	}
	if n >= int(p.depth) {
		return p
	}
	q := Path{depth: uint8(n)}
	copy(q.ids[:n], p.ids[:n])
	return q
}

// HasPrefix reports whether q is p or an ancestor of p ("/3/0/1" has the
// prefixes "/", "/3", "/3/0" and "/3/0/1").
func (p Path) HasPrefix(q Path) bool {
	if q.depth > p.depth {
		return false
	}
	for i := range q.depth {
		if p.ids[i] != q.ids[i] {
			return false
		}
	}
	return true
}

// Compare orders paths depth-first: by IDs level by level, a parent before
// its children. It returns -1, 0 or +1.
func (p Path) Compare(q Path) int {
	n := min(p.depth, q.depth)
	for i := range n {
		switch {
		case p.ids[i] < q.ids[i]:
			return -1
		case p.ids[i] > q.ids[i]:
			return 1
		}
	}
	switch {
	case p.depth < q.depth:
		return -1
	case p.depth > q.depth:
		return 1
	}
	return 0
}

// String formats the path as "/3/0/1", or "/" for the root.
func (p Path) String() string {
	if p.depth == 0 {
		return "/"
	}
	b := make([]byte, 0, 24)
	for _, id := range p.ids[:p.depth] {
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(b)
}

// MarshalText and UnmarshalText make Path usable in JSON and flags.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p *Path) UnmarshalText(b []byte) error {
	q, err := ParsePath(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}
