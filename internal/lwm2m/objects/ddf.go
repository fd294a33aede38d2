package objects

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Limits on DDF input. A file above MaxFileSize is refused before it is
// parsed; MaxObjects and MaxResources bound what one file may define (the
// largest registry object has fewer than 100 resources).
const (
	MaxFileSize  = 4 << 20
	MaxObjects   = 256
	MaxResources = 4096
)

// ParseError reports why a DDF file cannot be loaded: the file as named to
// the loader, the line of the offending element (0 when no line applies, as
// for an oversized file) and what is wrong. Err is the underlying error, if
// any (an *xml.SyntaxError, a data type error).
type ParseError struct {
	File string
	Line int
	Msg  string
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return "objects: " + e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return "objects: " + e.File + ": " + e.Msg
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads the object definitions of one OMA DDF document: an <LWM2M>
// root holding one or more <Object> elements, as in the OMA registry's
// <id>.xml files. name is the file name used in errors. The definitions come
// back in document order, each with resources sorted by ID.
//
// Parse is strict about what identifies and types a definition and lenient
// about descriptive text:
//   - required: <ObjectID> (0..65534), a non-empty object and resource
//     <Name>, <MultipleInstances> (Multiple or Single) and <Mandatory>
//     (Mandatory or Optional) on objects and resources, <Resources>, each
//     <Item ID> (0..65534, unique in its object), and on each item
//     <Operations> (R, W, RW, E or empty) and <Type> (a name
//     lwm2m.ParseType accepts, or empty);
//   - optional, empty when absent: <Description1>, <ObjectURN>,
//     <RangeEnumeration>, <Units>, <Description>; <ObjectVersion> defaults
//     to "1.0" and must read MAJOR.MINOR when given;
//   - ignored: <LWM2MVersion>, unknown elements and attributes, namespaces,
//     comments.
//
// Names have white space runs collapsed to one space ("LWM2M  Server URI"
// reads "LWM2M Server URI"); other text is trimmed. Input above MaxFileSize,
// more than MaxObjects objects or MaxResources resources, and an object ID
// given twice are errors. Every error is a *ParseError.
func Parse(name string, data []byte) ([]ObjectDef, error) {
	defs, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	out := make([]ObjectDef, len(defs))
	for i, d := range defs {
		out[i] = *d
	}
	return out, nil
}

func parse(name string, data []byte) ([]*ObjectDef, error) {
	if len(data) > MaxFileSize {
		return nil, &ParseError{File: name, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	p := &parser{file: name, d: xml.NewDecoder(bytes.NewReader(data))}
	return p.document()
}

// parser reads one DDF document token by token, so that every error can
// name the line of the element it concerns.
type parser struct {
	file string
	d    *xml.Decoder
	nres int // resources read so far, all objects together
}

func (p *parser) line() int {
	l, _ := p.d.InputPos()
	return l
}

func (p *parser) errAt(line int, err error, format string, args ...any) *ParseError {
	return &ParseError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// token returns the next token; io.EOF passes through, every other error
// becomes a *ParseError.
func (p *parser) token() (xml.Token, error) {
	t, err := p.d.Token()
	if err == nil || err == io.EOF {
		return t, err
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return nil, p.errAt(se.Line, err, "XML syntax error: %s", se.Msg)
	}
	return nil, p.errAt(p.line(), err, "%v", err)
}

// mustToken is token for places where the end of input is premature.
func (p *parser) mustToken() (xml.Token, error) {
	t, err := p.token()
	if err == io.EOF {
		return nil, p.errAt(p.line(), err, "XML syntax error: unexpected end of input")
	}
	return t, err
}

// text returns the character data of the element just opened, up to its
// end tag; the text of nested elements is included.
func (p *parser) text() (string, error) {
	var b strings.Builder
	for depth := 1; ; {
		t, err := p.mustToken()
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				return b.String(), nil
			}
		case xml.CharData:
			b.Write(t)
		}
	}
}

// skip consumes the element just opened, without recursion.
func (p *parser) skip() error {
	for depth := 1; depth > 0; {
		t, err := p.mustToken()
		if err != nil {
			return err
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

func (p *parser) document() ([]*ObjectDef, error) {
	var defs []*ObjectDef
	seenRoot := false
	for {
		before := p.line()
		t, err := p.token()
		if err == io.EOF {
			if !seenRoot {
				return nil, p.errAt(p.line(), nil, "not an LwM2M DDF file: no <LWM2M> element")
			}
			return defs, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if seenRoot {
				return nil, p.errAt(p.line(), nil, "element <%s> after the <LWM2M> element", t.Name.Local)
			}
			if t.Name.Local != "LWM2M" {
				return nil, p.errAt(p.line(), nil, "not an LwM2M DDF file: root element <%s>, want <LWM2M>", t.Name.Local)
			}
			seenRoot = true
			if defs, err = p.root(); err != nil {
				return nil, err
			}
		case xml.CharData:
			if text := bytes.TrimLeft(t, " \t\r\n"); len(text) > 0 {
				// Report the line where the text starts, not where it ends.
				line := before + bytes.Count(t[:len(t)-len(text)], []byte("\n"))
				return nil, p.errAt(line, nil, "not an LwM2M DDF file: text outside the root element")
			}
		}
	}
}

// root reads the children of <LWM2M>.
func (p *parser) root() ([]*ObjectDef, error) {
	start := p.line()
	var defs []*ObjectDef
	ids := make(map[uint16]bool)
	for {
		t, err := p.mustToken()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if t.Name.Local != "Object" {
				if err := p.skip(); err != nil {
					return nil, err
				}
				continue
			}
			if len(defs) == MaxObjects {
				return nil, p.errAt(p.line(), nil, "more than %d objects in the file", MaxObjects)
			}
			d, idLine, err := p.object()
			if err != nil {
				return nil, err
			}
			if ids[d.ID] {
				return nil, p.errAt(idLine, nil, "object %d defined twice", d.ID)
			}
			ids[d.ID] = true
			defs = append(defs, d)
		case xml.EndElement:
			if len(defs) == 0 {
				return nil, p.errAt(start, nil, "no <Object> in <LWM2M>")
			}
			return defs, nil
		}
	}
}

// field is a leaf element's text and the line of its start tag.
type field struct {
	text string
	line int
	set  bool
}

// leaves reads the children of the element just opened: the text of the
// named leaf elements into fields, nested elements through nested, which
// must consume them; anything else is skipped.
func (p *parser) leaves(fields map[string]*field, nested func(xml.StartElement) (bool, error)) error {
	for {
		t, err := p.mustToken()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if f, ok := fields[name]; ok {
				if f.set {
					return p.errAt(p.line(), nil, "<%s> given twice", name)
				}
				f.line = p.line()
				if f.text, err = p.text(); err != nil {
					return err
				}
				f.set = true
				continue
			}
			if nested != nil {
				done, err := nested(t)
				if err != nil {
					return err
				}
				if done {
					continue
				}
			}
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// object reads an <Object> element; it also returns the line of <ObjectID>.
func (p *parser) object() (*ObjectDef, int, error) {
	start := p.line()
	var (
		name, desc, id, urn, ver, multi, mand field
		resources                             []ResourceDef
		haveResources                         bool
		resIDs                                = make(map[uint16]bool)
	)
	fields := map[string]*field{
		"Name": &name, "Description1": &desc, "ObjectID": &id, "ObjectURN": &urn,
		"ObjectVersion": &ver, "MultipleInstances": &multi, "Mandatory": &mand,
	}
	err := p.leaves(fields, func(se xml.StartElement) (bool, error) {
		if se.Name.Local != "Resources" {
			return false, nil
		}
		if haveResources {
			return false, p.errAt(p.line(), nil, "<Resources> given twice")
		}
		haveResources = true
		return true, p.leaves(nil, func(se xml.StartElement) (bool, error) {
			if se.Name.Local != "Item" {
				return false, nil
			}
			r, err := p.item(se, resIDs)
			if err != nil {
				return false, err
			}
			resources = append(resources, r)
			return true, nil
		})
	})
	if err != nil {
		return nil, 0, err
	}

	d := &ObjectDef{
		Name:        collapse(name.text),
		Description: strings.TrimSpace(desc.text),
		URN:         strings.TrimSpace(urn.text),
		Version:     strings.TrimSpace(ver.text),
		Resources:   resources,
	}
	if !id.set {
		return nil, 0, p.errAt(start, nil, "object without <ObjectID>")
	}
	n, ok := parseID(id.text)
	if !ok {
		return nil, 0, p.errAt(id.line, nil, "object ID %q is not a number in 0..%d", strings.TrimSpace(id.text), lwm2m.MaxID)
	}
	d.ID = n
	prefix := fmt.Sprintf("object %d: ", d.ID)
	if d.Name == "" {
		return nil, 0, p.errAt(lineOr(name, start), nil, "%smissing or empty <Name>", prefix)
	}
	if d.Multiple, err = p.choice(multi, start, prefix, "MultipleInstances", "Multiple", "Single"); err != nil {
		return nil, 0, err
	}
	if d.Mandatory, err = p.choice(mand, start, prefix, "Mandatory", "Mandatory", "Optional"); err != nil {
		return nil, 0, err
	}
	if d.Version == "" {
		d.Version = "1.0"
	} else if !validVersion(d.Version) {
		return nil, 0, p.errAt(ver.line, nil, "%sObjectVersion %q: want MAJOR.MINOR", prefix, d.Version)
	}
	if !haveResources {
		return nil, 0, p.errAt(start, nil, "%smissing <Resources>", prefix)
	}
	nd, err := normalize(*d)
	if err != nil { // unreachable: IDs were checked as they were read
		return nil, 0, p.errAt(start, err, "%v", err)
	}
	return nd, id.line, nil
}

// item reads a resource <Item ID="..."> element; ids holds the resource IDs
// of the object read so far.
func (p *parser) item(se xml.StartElement, ids map[uint16]bool) (ResourceDef, error) {
	start := p.line()
	p.nres++
	if p.nres > MaxResources {
		return ResourceDef{}, p.errAt(start, nil, "more than %d resources in the file", MaxResources)
	}
	var (
		r                                             ResourceDef
		ok                                            bool
		err                                           error
		idAttr                                        string
		hasID                                         bool
		name, ops, multi, mand, typ, rng, units, desc field
	)
	fields := map[string]*field{
		"Name": &name, "Operations": &ops, "MultipleInstances": &multi, "Mandatory": &mand,
		"Type": &typ, "RangeEnumeration": &rng, "Units": &units, "Description": &desc,
	}
	for _, a := range se.Attr {
		if a.Name.Local == "ID" {
			idAttr, hasID = a.Value, true
		}
	}
	if !hasID {
		return r, p.errAt(start, nil, "<Item> without an ID attribute")
	}
	if r.ID, ok = parseID(idAttr); !ok {
		return r, p.errAt(start, nil, "resource ID %q is not a number in 0..%d", strings.TrimSpace(idAttr), lwm2m.MaxID)
	}
	if ids[r.ID] {
		return r, p.errAt(start, nil, "resource %d defined twice", r.ID)
	}
	ids[r.ID] = true
	if err := p.leaves(fields, nil); err != nil {
		return r, err
	}

	prefix := fmt.Sprintf("resource %d: ", r.ID)
	if r.Name = collapse(name.text); r.Name == "" {
		return r, p.errAt(lineOr(name, start), nil, "%smissing or empty <Name>", prefix)
	}
	if !ops.set {
		return r, p.errAt(start, nil, "%smissing <Operations>", prefix)
	}
	if r.Operations, err = ParseOps(ops.text); err != nil {
		return r, p.errAt(ops.line, err, "%sunknown operations %q (want R, W, RW, E or empty)", prefix, strings.TrimSpace(ops.text))
	}
	if !typ.set {
		return r, p.errAt(start, nil, "%smissing <Type>", prefix)
	}
	if r.Type, err = lwm2m.ParseType(typ.text); err != nil {
		return r, p.errAt(typ.line, err, "%sunknown type %q", prefix, strings.TrimSpace(typ.text))
	}
	if r.Multiple, err = p.choice(multi, start, prefix, "MultipleInstances", "Multiple", "Single"); err != nil {
		return r, err
	}
	if r.Mandatory, err = p.choice(mand, start, prefix, "Mandatory", "Mandatory", "Optional"); err != nil {
		return r, err
	}
	r.RangeEnumeration = strings.TrimSpace(rng.text)
	r.Units = strings.TrimSpace(units.text)
	r.Description = strings.TrimSpace(desc.text)
	return r, nil
}

// choice reads a two-valued element such as <MultipleInstances>: true for
// yes, false for no (compared ignoring case and surrounding space). A missing
// element is reported at line start; prefix ("resource 5: " or "") starts
// the message.
func (p *parser) choice(f field, start int, prefix, elem, yes, no string) (bool, error) {
	if !f.set {
		return false, p.errAt(start, nil, "%smissing <%s>", prefix, elem)
	}
	v := strings.TrimSpace(f.text)
	switch {
	case strings.EqualFold(v, yes):
		return true, nil
	case strings.EqualFold(v, no):
		return false, nil
	}
	return false, p.errAt(f.line, nil, "%s%s %q: want %s or %s", prefix, elem, v, yes, no)
}

// parseID parses a decimal object or resource ID in 0..lwm2m.MaxID.
func parseID(s string) (uint16, bool) {
	s = strings.TrimSpace(s)
	if !isDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n > lwm2m.MaxID {
		return 0, false
	}
	return uint16(n), true
}

// collapse trims s and replaces each run of white space with one space.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// lineOr returns the line of f when it was given, else start.
func lineOr(f field, start int) int {
	if f.set {
		return f.line
	}
	return start
}

// validVersion reports whether v reads MAJOR.MINOR.
func validVersion(v string) bool {
	ma, mi, ok := strings.Cut(v, ".")
	return ok && isDigits(ma) && isDigits(mi) && len(ma) <= 9 && len(mi) <= 9
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
