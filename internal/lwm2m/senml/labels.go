package senml

import (
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// The SenML labels (RFC 8428 §4.3, §6) plus vlo (LwM2M 1.1), in the order
// a record's fields are processed.
const (
	lBN = iota
	lBT
	lBU
	lBV
	lBS
	lBVer
	lN
	lU
	lV
	lVS
	lVB
	lVD
	lVLO
	lS
	lT
	lUT
	nLabels
)

var labelNames = [nLabels]string{
	lBN: "bn", lBT: "bt", lBU: "bu", lBV: "bv", lBS: "bs", lBVer: "bver",
	lN: "n", lU: "u", lV: "v", lVS: "vs", lVB: "vb", lVD: "vd", lVLO: "vlo",
	lS: "s", lT: "t", lUT: "ut",
}

// jsonLabel returns the label index of a SenML-JSON key, or -1.
func jsonLabel(k string) int {
	switch k {
	case "bn":
		return lBN
	case "bt":
		return lBT
	case "bu":
		return lBU
	case "bv":
		return lBV
	case "bs":
		return lBS
	case "bver":
		return lBVer
	case "n":
		return lN
	case "u":
		return lU
	case "v":
		return lV
	case "vs":
		return lVS
	case "vb":
		return lVB
	case "vd":
		return lVD
	case "vlo":
		return lVLO
	case "s":
		return lS
	case "t":
		return lT
	case "ut":
		return lUT
	}
	return -1
}

// cborLabels maps the SenML-CBOR integer labels to label indexes; vlo has
// no integer label and is the text key "vlo".
var cborLabels = map[int64]int{
	-2: lBN, -3: lBT, -4: lBU, -5: lBV, -6: lBS, -1: lBVer,
	0: lN, 1: lU, 2: lV, 3: lVS, 4: lVB, 8: lVD, 5: lS, 6: lT, 7: lUT,
}

// mustUnderstand reports whether an unknown label must make the record be
// refused (RFC 8428 §4.4: labels ending in "_").
func mustUnderstand(k string) bool { return strings.HasSuffix(k, "_") }

// fieldReader converts one format's representation of a field value; each
// method returns a reason when the value has the wrong type.
type fieldReader[T any] interface {
	str(T) (string, string)
	num(T) (Number, string)
	boolean(T) (bool, string)
	bytes(T) ([]byte, string)
}

// fill sets r from the record's fields, present[l] telling which labels
// occur. Labels are processed in label order, so the error for a record
// with several problems does not depend on map order.
func fill[T any, R fieldReader[T]](r *rawRecord, f lwm2m.MediaType, i int, fields *[nLabels]T, present *[nLabels]bool, rd R) error {
	for l := range nLabels {
		if !present[l] {
			continue
		}
		v, label := fields[l], labelNames[l]
		var why string
		switch l {
		case lBN:
			r.bn, why = rd.str(v)
			r.hasBN = true
		case lN:
			r.n, why = rd.str(v)
		case lBU, lU:
			_, why = rd.str(v)
		case lBT:
			r.bt, why = rd.num(v)
			r.hasBT = true
		case lT:
			r.t, why = rd.num(v)
			r.hasT = true
		case lBV:
			r.bv, why = rd.num(v)
			r.hasBV = true
		case lBS, lS, lUT:
			_, why = rd.num(v)
		case lBVer:
			var n Number
			if n, why = rd.num(v); why == "" {
				if ver, ok := n.int64(); !ok || ver < 1 || ver > 10 {
					why = "unsupported SenML version " + n.String()
				}
			}
		case lV:
			if why = r.setValue(valNum, label); why == "" {
				r.num, why = rd.num(v)
			}
		case lVS:
			if why = r.setValue(valStr, label); why == "" {
				r.str, why = rd.str(v)
			}
		case lVB:
			if why = r.setValue(valBool, label); why == "" {
				r.b, why = rd.boolean(v)
			}
		case lVD:
			if why = r.setValue(valData, label); why == "" {
				r.data, why = rd.bytes(v)
			}
		case lVLO:
			if why = r.setValue(valObjlnk, label); why == "" {
				r.str, why = rd.str(v)
			}
		}
		if why != "" {
			return lwm2m.Errorf(f, i, label, "%s", why)
		}
	}
	return nil
}
