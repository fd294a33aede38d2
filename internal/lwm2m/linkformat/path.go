package linkformat

import (
	"strconv"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// parsePath parses an LwM2M path target ("/3/0", "3/0", "/3/0/" or "/")
// without allocating. off is the offset of b[0] in the input, used for
// errors. The rules are those of lwm2m.ParsePath, except that the leading
// slash may be missing (a relative reference, as some clients send).
func parsePath(b []byte, off int) (lwm2m.Path, error) {
	if len(b) == 0 {
		return lwm2m.Root, errAt(off, "path", "empty target")
	}
	i := 0
	if b[0] == '/' {
		i = 1
	}
	end := len(b)
	if end > i && b[end-1] == '/' {
		end--
	}
	var ids [4]uint16
	depth := 0
	for i < end {
		if depth == 4 {
			return lwm2m.Root, errAt(off+i, "path", "path %q has more than 4 IDs", b)
		}
		start := i
		var n uint32
		for i < end && b[i] != '/' {
			c := b[i]
			if c < '0' || c > '9' {
				return lwm2m.Root, errAt(off+start, "path", "path %q: ID is not a decimal number", b)
			}
			if n <= lwm2m.MaxID {
				n = n*10 + uint32(c-'0')
			}
			i++
		}
		switch {
		case i == start:
			return lwm2m.Root, errAt(off+start, "path", "path %q has an empty segment", b)
		case i-start > 1 && b[start] == '0':
			return lwm2m.Root, errAt(off+start, "path", "path %q: ID has a leading zero", b)
		case n > lwm2m.MaxID:
			return lwm2m.Root, errAt(off+start, "path", "path %q: ID above %d", b, lwm2m.MaxID)
		}
		ids[depth] = uint16(n)
		depth++
		if i < end {
			i++ // '/'
			if i == end {
				return lwm2m.Root, errAt(off+i, "path", "path %q has an empty segment", b)
			}
		}
	}
	return lwm2m.NewPath(ids[:depth]...), nil
}

// appendPath appends p in the form "/3/0" ("/" for the root) under root,
// the registration's root path ("/" or an alternate path such as "/lwm2m").
func appendPath(b []byte, root string, p lwm2m.Path) []byte {
	if root != "" && root != "/" {
		b = append(b, root...)
		if p.IsRoot() {
			return b
		}
	}
	if p.IsRoot() {
		return append(b, '/')
	}
	for i := range p.Depth() {
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(p.ID(i)), 10)
	}
	return b
}
