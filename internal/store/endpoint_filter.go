package store

import (
	"strconv"
	"unicode/utf8"
)

// moreWhere is the condition of f's Prefix, Transport, FirmwareVersion
// and Object, with its arguments added by arg.
func (f EndpointFilter) moreWhere(arg func(any) string) []string {
	var where []string
	if f.Prefix != "" {
		where = append(where, "name >= "+arg(f.Prefix), "name < "+arg(f.Prefix+string(utf8.MaxRune)))
	}
	if f.Transport != "" {
		where = append(where, "transport = "+arg(f.Transport))
	}
	if f.FirmwareVersion != "" {
		where = append(where, "firmware_version = "+arg(f.FirmwareVersion))
	}
	if f.Object != nil {
		// The registration's links name the object as </id> or </id/i>
		// (object_links holds the Register payload).
		id := strconv.Itoa(int(*f.Object))
		where = append(where, "(object_links LIKE "+arg("%</"+id+">%")+" OR object_links LIKE "+arg("%</"+id+"/%")+")")
	}
	return where
}
