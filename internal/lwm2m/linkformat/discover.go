package linkformat

import (
	"strconv"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// DiscoverLink is one link of a Discover response (LwM2M 1.1 §5.4.2): an
// object, instance, resource or resource instance with the attributes
// attached to it, the number of instances of a multiple-instance resource
// (dim) and the object version (ver).
type DiscoverLink struct {
	Path  lwm2m.Path
	Attrs Attributes // Unset is always empty
	Dim   *int       // nil when not given
	Ver   string     // "" when not given
}

// ParseDiscover parses a Discover response such as
// `</3/0>;pmin=10,</3/0/1>,</3/0/7>;dim=8`. Targets must be LwM2M paths
// ("/" included); the attributes of Attributes, dim (0..65535) and ver
// (major.minor) are interpreted, other parameters are ignored. Malformed
// input, bad paths, repeated or malformed attributes yield a
// *lwm2m.DecodeError with the offset of the offending element and Field
// "path", "dim", "ver" or the attribute name. Cross-attribute rules are not
// checked: a client reports what it holds.
func ParseDiscover(data []byte) ([]DiscoverLink, error) {
	var out []DiscoverLink
	err := scan(data, func(r *rawLink) error {
		p, err := parsePath(r.target, r.targetOff)
		if err != nil {
			return err
		}
		dl := DiscoverLink{Path: p}
		var seen AttrSet
		hasDim, hasVer := false, false
		for _, prm := range r.params {
			name := prm.name
			switch {
			case equalFold(name, "dim"):
				if hasDim {
					return errAt(prm.off, "dim", "dim given twice")
				}
				hasDim = true
				n, ok := parseInt(prm.val, lwm2m.MaxID+1)
				if !prm.hasValue || !ok {
					return errAt(prm.valOff, "dim", "dim %q is not a count in 0..%d", prm.val, lwm2m.MaxID+1)
				}
				d := int(n)
				dl.Dim = &d
			case equalFold(name, "ver"):
				if hasVer {
					return errAt(prm.off, "ver", "ver given twice")
				}
				hasVer = true
				if !prm.hasValue || !validVersion(prm.val) {
					return errAt(prm.valOff, "ver", "version %q is not major.minor", prm.val)
				}
				dl.Ver = internVersion(prm.val)
			default:
				at, ok := parseAttrBytes(name)
				if !ok {
					continue
				}
				if seen.Has(at) {
					return errAt(prm.off, at.String(), "attribute given twice")
				}
				seen = seen.With(at)
				if !prm.hasValue {
					return errAt(prm.off, at.String(), "attribute has no value")
				}
				if verr := dl.Attrs.parseValue(at, prm.val); verr != nil {
					return errAt(prm.valOff, at.String(), "%s", verr.Msg)
				}
			}
		}
		out = append(out, dl)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FormatDiscover writes a Discover response, the inverse of ParseDiscover:
// for each link `<path>`, then ver, dim and the attributes set, in canonical
// order. Attrs.Unset is ignored.
func FormatDiscover(links []DiscoverLink) []byte {
	b := make([]byte, 0, 16*len(links))
	for i, l := range links {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '<')
		b = appendPath(b, "/", l.Path)
		b = append(b, '>')
		if l.Ver != "" {
			b = appendParam(b, "ver", l.Ver, true)
		}
		if l.Dim != nil {
			b = append(b, ";dim="...)
			b = strconv.AppendInt(b, int64(*l.Dim), 10)
		}
		b = l.Attrs.appendParams(b)
	}
	return b
}
