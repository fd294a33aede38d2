package linkformat

import (
	"bytes"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// MaxLinks is the largest number of links a parser accepts in one payload.
const MaxLinks = 65536

// Link is one link-value: a target URI reference (the text between '<' and
// '>') and its parameters in the order they appeared. Repeated parameters
// are kept.
type Link struct {
	Target string
	Params []Param
}

// Param is one link parameter. HasValue is false for a bare flag (";obs");
// Value is then empty. Quoted values are stored unquoted and unescaped.
type Param struct {
	Name     string
	Value    string
	HasValue bool
}

// Get returns the value of the first parameter named name (compared without
// regard to case) and whether such a parameter exists. A flag parameter
// yields "" and true.
func (l Link) Get(name string) (string, bool) {
	for _, p := range l.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// Parse parses a link-format document (RFC 6690 §2). An empty document, or
// one of only whitespace, yields no links and no error. Whitespace (space,
// tab, CR, LF) is tolerated around links, separators and '='. Malformed
// input yields a *lwm2m.DecodeError.
func Parse(data []byte) ([]Link, error) {
	var links []Link
	err := scan(data, func(r *rawLink) error {
		l := Link{Target: string(r.target)}
		if len(r.params) > 0 {
			l.Params = make([]Param, len(r.params))
			for i, p := range r.params {
				l.Params[i] = Param{Name: string(p.name), Value: p.value(), HasValue: p.hasValue}
			}
		}
		links = append(links, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return links, nil
}

// Format writes links as a link-format document, links separated by ",".
// A parameter value is quoted when it is empty, contains characters outside
// the RFC 6690 ptoken set, or belongs to a parameter RFC 6690 defines as a
// quoted string (rt, if, title, anchor, rel, rev, type); quotes and
// backslashes in quoted values are escaped. Targets and names are written as
// given. Format(links) parses back to links when every target is free of '>'
// and whitespace and every name is a valid parameter name.
func Format(links []Link) []byte {
	var b []byte
	for i, l := range links {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLink(b, l.Target, l.Params)
	}
	return b
}

func appendLink(b []byte, target string, params []Param) []byte {
	b = append(b, '<')
	b = append(b, target...)
	b = append(b, '>')
	for _, p := range params {
		b = appendParam(b, p.Name, p.Value, p.HasValue)
	}
	return b
}

func appendParam(b []byte, name, value string, hasValue bool) []byte {
	b = append(b, ';')
	b = append(b, name...)
	if !hasValue {
		return b
	}
	b = append(b, '=')
	if !mustQuote(name, value) {
		return append(b, value...)
	}
	b = append(b, '"')
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

func mustQuote(name, value string) bool {
	switch strings.ToLower(name) {
	case "rt", "if", "title", "anchor", "rel", "rev", "type":
		return true
	}
	if value == "" {
		return true
	}
	for i := 0; i < len(value); i++ {
		if !isPtoken(value[i]) {
			return true
		}
	}
	return false
}

// Character classes of RFC 6690 §2 and RFC 5988 §5.
const (
	classPtoken   = 1 << iota // ptokenchar
	classParmname             // parmname character, plus '*' for extended names such as title*
)

var charClass = func() (t [256]uint8) {
	for c := range 256 {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum || strings.IndexByte("!#$%&'()*+-./:<=>?@[]^_`{|}~", byte(c)) >= 0 {
			t[c] |= classPtoken
		}
		if alnum || strings.IndexByte("!#$&+-.^_`|~*", byte(c)) >= 0 {
			t[c] |= classParmname
		}
	}
	return t
}()

// isPtoken reports whether c is a ptokenchar of RFC 6690 §2.
func isPtoken(c byte) bool { return charClass[c]&classPtoken != 0 }

// isParmname reports whether c may appear in a parameter name.
func isParmname(c byte) bool { return charClass[c]&classParmname != 0 }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// rawLink is one link as the scanner sees it: slices into the input (or, for
// quoted values with escapes, into a fresh buffer) and offsets for errors.
// The slices and the params array are reused for the next link.
type rawLink struct {
	off       int // offset of '<'
	target    []byte
	targetOff int // offset of the first target byte
	params    []rawParam
}

type rawParam struct {
	name     []byte
	val      []byte
	hasValue bool
	off      int // offset of the name
	valOff   int // offset of the value (of its opening quote when quoted)
}

// value returns the parameter value as a string.
func (p rawParam) value() string { return string(p.val) }

// param returns the first parameter named name (case-insensitive).
func (r *rawLink) param(name string) (rawParam, bool) {
	for _, p := range r.params {
		if equalFold(p.name, name) {
			return p, true
		}
	}
	return rawParam{}, false
}

// equalFold compares an ASCII name without regard to case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func errAt(off int, field, format string, args ...any) error {
	return lwm2m.Errorf(lwm2m.FormatLinkFormat, off, field, format, args...)
}

// scan walks data link by link and calls fn with each. fn must not keep r or
// its slices beyond the call. The first error, from the syntax or from fn,
// ends the scan.
func scan(data []byte, fn func(r *rawLink) error) error {
	n := len(data)
	i := skipSpace(data, 0)
	if i == n {
		return nil
	}
	var r rawLink
	count := 0
	for {
		if count == MaxLinks {
			return errAt(i, "link", "more than %d links", MaxLinks)
		}
		count++
		if i == n || data[i] != '<' {
			return errAt(i, "<", "link must start with '<'")
		}
		r.off = i
		r.targetOff = i + 1
		end := bytes.IndexByte(data[i+1:], '>')
		if end < 0 {
			return errAt(i, ">", "target is not terminated by '>'")
		}
		r.target = data[i+1 : i+1+end]
		for k, c := range r.target {
			if c <= ' ' || c == 0x7f || c == '<' || c == '"' {
				return errAt(r.targetOff+k, "target", "invalid character %q in target", c)
			}
		}
		i += end + 2
		r.params = r.params[:0]
		for {
			i = skipSpace(data, i)
			if i == n || data[i] != ';' {
				break
			}
			i = skipSpace(data, i+1)
			p := rawParam{off: i}
			start := i
			for i < n && isParmname(data[i]) {
				i++
			}
			if i == start {
				return errAt(i, "param", "parameter name expected")
			}
			p.name = data[start:i]
			i = skipSpace(data, i)
			if i < n && data[i] == '=' {
				p.hasValue = true
				i = skipSpace(data, i+1)
				p.valOff = i
				if i < n && data[i] == '"' {
					v, next, err := quoted(data, i)
					if err != nil {
						return err
					}
					p.val, i = v, next
				} else {
					start := i
					for i < n && data[i] != ';' && data[i] != ',' && !isSpace(data[i]) {
						c := data[i]
						if c < ' ' || c == 0x7f || c == '"' {
							return errAt(i, string(p.name), "invalid character %q in value", c)
						}
						i++
					}
					p.val = data[start:i]
				}
			}
			r.params = append(r.params, p)
		}
		if err := fn(&r); err != nil {
			return err
		}
		if i == n {
			return nil
		}
		if data[i] != ',' {
			return errAt(i, ",", "expected ',' or ';' after link, found %q", data[i])
		}
		i = skipSpace(data, i+1)
	}
}

// quoted reads the quoted-string starting at data[i] == '"' and returns its
// unescaped content and the offset after the closing quote. The content
// aliases data unless it contained escapes.
func quoted(data []byte, i int) ([]byte, int, error) {
	open := i
	i++
	start := i
	escaped := false
	for ; i < len(data); i++ {
		switch data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			v := data[start:i]
			if escaped {
				v = unescape(v)
			}
			return v, i + 1, nil
		}
	}
	return nil, 0, errAt(open, `"`, "quoted value is not terminated")
}

func unescape(v []byte) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		out = append(out, v[i])
	}
	return out
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}
