package plaintext

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// ErrType is returned by Decode for a type argument outside the LwM2M data
// types; it signals a caller bug, not bad input.
var ErrType = errors.New("plaintext: unknown data type")

// Decode parses data as the text/plain form of a value of type t.
//
//   - string and corelnk take the bytes as they are (invalid UTF-8 is kept);
//   - integer and time accept an optional sign and decimal digits, unsigned
//     an optional '+' and decimal digits, each within 64 bits;
//   - float accepts a decimal number with optional fraction and exponent
//     ("-12", "0.5", "1.5e3"), not "NaN", "Inf" or hexadecimal forms;
//   - boolean accepts "1" and "0", and "true" and "false" from lenient
//     clients;
//   - objlnk accepts "object:instance" with both IDs in 0..65535;
//   - opaque accepts standard base64, with or without padding (line
//     breaks inside it are skipped);
//   - TypeNone, used for executable resources and resources of unknown
//     type, gives lwm2m.None for empty data and a string otherwise.
//
// No whitespace is allowed around numbers. Bad input yields a
// *lwm2m.DecodeError whose Offset is the byte at fault and whose Field is
// "value"; an unknown t yields ErrType.
func Decode(data []byte, t lwm2m.Type) (lwm2m.Value, error) {
	s := string(data)
	switch t {
	case lwm2m.TypeString:
		return lwm2m.String(s), nil
	case lwm2m.TypeCorelnk:
		return lwm2m.Corelnk(s), nil
	case lwm2m.TypeNone:
		if s == "" {
			return lwm2m.None(), nil
		}
		return lwm2m.String(s), nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		n, err := parseInt(s, t)
		if err != nil {
			return lwm2m.Value{}, err
		}
		if t == lwm2m.TypeTime {
			return lwm2m.TimeUnix(n), nil
		}
		return lwm2m.Int(n), nil
	case lwm2m.TypeUnsigned:
		n, err := parseUint(s, 0, len(s), t, true)
		if err != nil {
			return lwm2m.Value{}, err
		}
		return lwm2m.Uint(n), nil
	case lwm2m.TypeFloat:
		return parseFloat(s)
	case lwm2m.TypeBoolean:
		switch s {
		case "1", "true":
			return lwm2m.Bool(true), nil
		case "0", "false":
			return lwm2m.Bool(false), nil
		}
		return lwm2m.Value{}, bad(0, t, "%q is not 0 or 1", clip(s))
	case lwm2m.TypeObjlnk:
		return parseObjlnk(s)
	case lwm2m.TypeOpaque:
		return parseBase64(s)
	}
	return lwm2m.Value{}, fmt.Errorf("%w %d", ErrType, t)
}

func bad(off int, t lwm2m.Type, format string, args ...any) *lwm2m.DecodeError {
	return lwm2m.Errorf(lwm2m.FormatText, off, "value", "%s: %s", t, fmt.Sprintf(format, args...))
}

// clip shortens s for error messages.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func parseInt(s string, t lwm2m.Type) (int64, error) {
	neg := false
	start := 0
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		start = 1
	}
	u, err := parseUint(s, start, len(s), t, false)
	if err != nil {
		return 0, err
	}
	switch {
	case !neg && u <= math.MaxInt64:
		return int64(u), nil
	case neg && u <= 1<<63:
		return -int64(u), nil // -(1<<63) wraps to MinInt64 as intended
	}
	return 0, bad(start, t, "%s does not fit in 64 bits", clip(s))
}

// parseUint parses the decimal digits s[start:end]; plus allows one leading
// '+'.
func parseUint(s string, start, end int, t lwm2m.Type, plus bool) (uint64, error) {
	if plus && start < end && s[start] == '+' {
		start++
	}
	if start == end {
		return 0, bad(start, t, "no digits")
	}
	var n uint64
	for i := start; i < end; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, bad(i, t, "unexpected %q", c)
		}
		if n > (math.MaxUint64-uint64(c-'0'))/10 {
			return 0, bad(start, t, "%s does not fit in 64 bits", clip(s[start:end]))
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// parseFloat accepts [+-] digits [. digits] [(e|E) [+-] digits] with at
// least one digit before the exponent.
func parseFloat(s string) (lwm2m.Value, error) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		if i < len(s) {
			return lwm2m.Value{}, bad(i, lwm2m.TypeFloat, "unexpected %q", s[i])
		}
		return lwm2m.Value{}, bad(i, lwm2m.TypeFloat, "no digits")
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
		if i == exp {
			if i < len(s) {
				return lwm2m.Value{}, bad(i, lwm2m.TypeFloat, "unexpected %q in exponent", s[i])
			}
			return lwm2m.Value{}, bad(i, lwm2m.TypeFloat, "exponent has no digits")
		}
	}
	if i < len(s) {
		return lwm2m.Value{}, bad(i, lwm2m.TypeFloat, "unexpected %q", s[i])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && math.IsInf(f, 0) {
		return lwm2m.Value{}, bad(0, lwm2m.TypeFloat, "%s is out of range", clip(s))
	}
	return lwm2m.Float(f), nil
}

func parseObjlnk(s string) (lwm2m.Value, error) {
	colon := -1
	for i := range len(s) {
		if s[i] == ':' {
			colon = i
			break
		}
	}
	if colon < 0 {
		return lwm2m.Value{}, bad(len(s), lwm2m.TypeObjlnk, "want object:instance")
	}
	var ids [2]uint16
	for k, r := range [2][2]int{{0, colon}, {colon + 1, len(s)}} {
		n, err := parseUint(s, r[0], r[1], lwm2m.TypeObjlnk, false)
		if err != nil {
			return lwm2m.Value{}, err
		}
		if n > math.MaxUint16 {
			return lwm2m.Value{}, bad(r[0], lwm2m.TypeObjlnk, "ID %d is above 65535", n)
		}
		ids[k] = uint16(n)
	}
	return lwm2m.Objlnk(lwm2m.ObjLink{Object: ids[0], Instance: ids[1]}), nil
}

func parseBase64(s string) (lwm2m.Value, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil && !strings.Contains(s, "=") {
		if raw, rawErr := base64.RawStdEncoding.DecodeString(s); rawErr == nil {
			b, err = raw, nil
		}
	}
	if err != nil {
		off := 0
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			off = min(int(ce), len(s))
		}
		return lwm2m.Value{}, bad(off, lwm2m.TypeOpaque, "invalid base64")
	}
	return lwm2m.Opaque(b), nil
}

// Encode returns the text/plain form of v: the bytes of strings and
// corelnks, decimal integers, unsigned integers and time, floats in the
// shortest decimal without exponent that reads back to the same float64,
// "1" or "0" for booleans, "object:instance" for objlnk, standard padded
// base64 for opaque and nothing for lwm2m.None. NaN and infinite floats have
// no text/plain form and are an error.
func Encode(v lwm2m.Value) ([]byte, error) {
	switch v.Type() {
	case lwm2m.TypeString, lwm2m.TypeCorelnk:
		return []byte(v.StringValue()), nil
	case lwm2m.TypeInteger, lwm2m.TypeTime:
		return strconv.AppendInt(nil, v.IntValue(), 10), nil
	case lwm2m.TypeUnsigned:
		return strconv.AppendUint(nil, v.UintValue(), 10), nil
	case lwm2m.TypeFloat:
		f := v.FloatValue()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("plaintext: float %v has no text/plain form", f)
		}
		return strconv.AppendFloat(nil, f, 'f', -1, 64), nil
	case lwm2m.TypeBoolean:
		if v.BoolValue() {
			return []byte{'1'}, nil
		}
		return []byte{'0'}, nil
	case lwm2m.TypeObjlnk:
		return []byte(v.ObjlnkValue().String()), nil
	case lwm2m.TypeOpaque:
		return base64.StdEncoding.AppendEncode(nil, v.Opaque()), nil
	case lwm2m.TypeNone:
		return []byte{}, nil
	}
	return nil, fmt.Errorf("%w %d", ErrType, v.Type())
}
