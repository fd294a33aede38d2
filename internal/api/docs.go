package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/problem"
)

// The API reference page: the OpenAPI document rendered on the server as
// one static HTML page (no script at all), served at DocsPath and written
// by `flownexus openapi --html`. Its stylesheet is served at a URL named
// by its checksum (cached for good); the standalone file carries it in a
// <style> element instead.

// DocsPath is where the API reference page is served.
const DocsPath = Prefix + "/docs"

// DocsCSP is the Content-Security-Policy of the reference page: its own
// stylesheet, nothing else; no script.
const DocsCSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var (
	//go:embed docs/docs.html
	docsTemplateText string
	//go:embed docs/docs.css
	docsCSS []byte

	docsTemplate = template.Must(template.New("docs").Parse(docsTemplateText))
	docsCSSSum   = func() string { s := sha256.Sum256(docsCSS); return hex.EncodeToString(s[:8]) }()
	// DocsStylesheetPath is the URL path of the reference page's
	// stylesheet, named by its checksum.
	DocsStylesheetPath = DocsPath + "/docs." + docsCSSSum + ".css"
)

type docsPage struct {
	Title, Version, Description, OpenAPI, Prefix string
	Standalone                                   bool
	CSS                                          template.CSS
	CSSURL                                       string
	Tags                                         []docsTag
}

type docsTag struct {
	Name string
	Ops  []docsOp
}

type docsOp struct {
	ID, Method, MethodClass, Path, Summary, Permission string
	Desc                                               template.HTML
	Params                                             []docsParam
	Body                                               *docsSchema
	Responses                                          []docsSchema
}

type docsParam struct {
	Name, In, Type string
	Required       bool
	Desc           template.HTML
}

// docsSchema is a request body or a response in brief: the schema's type
// and, for an object, its fields one level deep.
type docsSchema struct {
	Status, ContentType, Schema string
	Desc                        template.HTML
	Fields                      []docsField
}

type docsField struct {
	Name, Type string
	Required   bool
	Desc       template.HTML
}

// RenderDocs renders doc as the API reference page. standalone embeds
// the stylesheet, for a file read without the server.
func RenderDocs(doc *huma.OpenAPI, standalone bool) ([]byte, error) {
	p := docsPage{OpenAPI: doc.OpenAPI, Prefix: Prefix, Standalone: standalone, CSSURL: DocsStylesheetPath}
	if doc.Info != nil {
		p.Title, p.Version, p.Description = doc.Info.Title, doc.Info.Version, doc.Info.Description
	}
	if standalone {
		p.CSS = template.CSS(docsCSS)
	}
	var schemas map[string]*huma.Schema
	if doc.Components != nil && doc.Components.Schemas != nil {
		schemas = doc.Components.Schemas.Map()
	}
	byTag := map[string][]docsOp{}
	for path, item := range doc.Paths {
		for _, mo := range []struct {
			method string
			op     *huma.Operation
		}{{"GET", item.Get}, {"POST", item.Post}, {"PUT", item.Put}, {"PATCH", item.Patch}, {"DELETE", item.Delete}} {
			if mo.op == nil || mo.op.Hidden {
				continue
			}
			o := docsOperation(mo.method, path, mo.op, schemas)
			tag := "other"
			if len(mo.op.Tags) > 0 {
				tag = mo.op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], o)
		}
	}
	order := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	for name, ops := range byTag {
		slices.SortFunc(ops, func(a, b docsOp) int {
			return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(order[a.Method], order[b.Method]))
		})
		p.Tags = append(p.Tags, docsTag{Name: name, Ops: ops})
	}
	slices.SortFunc(p.Tags, func(a, b docsTag) int { return cmp.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	if err := docsTemplate.Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("api reference page: %w", err)
	}
	return buf.Bytes(), nil
}

func docsOperation(method, path string, op *huma.Operation, schemas map[string]*huma.Schema) docsOp {
	o := docsOp{ID: op.OperationID, Method: method, MethodClass: strings.ToLower(method), Path: path,
		Summary: op.Summary, Desc: docsText(op.Description)}
	if p, ok := op.Extensions["x-permission"].(string); ok {
		o.Permission = p
	}
	for _, prm := range op.Parameters {
		if prm == nil {
			continue
		}
		o.Params = append(o.Params, docsParam{Name: prm.Name, In: prm.In, Required: prm.Required,
			Type: schemaType(prm.Schema), Desc: docsText(prm.Description)})
	}
	if rb := op.RequestBody; rb != nil {
		b := docsSchema{Desc: docsText(rb.Description)}
		for _, ct := range sortedKeys(rb.Content) {
			if b.ContentType != "" {
				b.ContentType += ", "
			}
			b.ContentType += ct
			if b.Schema == "" && rb.Content[ct] != nil {
				b.Schema, b.Fields = schemaBrief(rb.Content[ct].Schema, schemas)
			}
		}
		o.Body = &b
	}
	for _, status := range sortedKeys(op.Responses) {
		r := op.Responses[status]
		if r == nil {
			continue
		}
		d := docsSchema{Status: status, Desc: docsText(r.Description)}
		for _, ct := range sortedKeys(r.Content) {
			if d.ContentType != "" {
				d.ContentType += ", "
			}
			d.ContentType += ct
			if d.Schema == "" && r.Content[ct] != nil {
				d.Schema, d.Fields = schemaBrief(r.Content[ct].Schema, schemas)
			}
		}
		if status >= "400" {
			d.Fields = nil // the one problem shape, named only
		}
		o.Responses = append(o.Responses, d)
	}
	return o
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// refName is the schema name a $ref points to.
func refName(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }

// schemaType names the type of s in a few words.
func schemaType(s *huma.Schema) string {
	switch {
	case s == nil:
		return ""
	case s.Ref != "":
		return refName(s.Ref)
	case len(s.OneOf) > 0 || len(s.AnyOf) > 0:
		var parts []string
		for _, o := range append(slices.Clone(s.OneOf), s.AnyOf...) {
			parts = append(parts, schemaType(o))
		}
		return strings.Join(parts, " | ")
	case len(s.AllOf) > 0:
		var parts []string
		for _, o := range s.AllOf {
			parts = append(parts, schemaType(o))
		}
		return strings.Join(parts, " & ")
	case s.Type == huma.TypeArray:
		return "[]" + schemaType(s.Items)
	}
	t := cmp.Or(s.Type, "any")
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		t += ": " + strings.Join(vals, ", ")
	}
	return t
}

// schemaBrief is the type of s and, when it is an object (or a list of
// objects), its fields.
func schemaBrief(s *huma.Schema, schemas map[string]*huma.Schema) (string, []docsField) {
	name := schemaType(s)
	obj := s
	for range 3 { // resolve a reference, an array's items, an allOf's first part
		switch {
		case obj == nil:
			return name, nil
		case obj.Ref != "":
			obj = schemas[refName(obj.Ref)]
		case obj.Type == huma.TypeArray:
			obj = obj.Items
		case len(obj.AllOf) > 0 && len(obj.Properties) == 0:
			obj = obj.AllOf[0]
		}
	}
	if obj == nil || len(obj.Properties) == 0 {
		return name, nil
	}
	var fields []docsField
	for _, n := range sortedKeys(obj.Properties) {
		if n == "$schema" {
			continue
		}
		f := obj.Properties[n]
		fields = append(fields, docsField{Name: n, Type: schemaType(f), Required: slices.Contains(obj.Required, n),
			Desc: docsText(f.Description)})
	}
	return name, fields
}

// docsText renders the light Markdown of the document's descriptions:
// paragraphs (blank lines), "- " list items and `code` spans; everything
// else is text.
func docsText(s string) template.HTML {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var b strings.Builder
	inList := false
	for _, para := range strings.Split(s, "\n\n") {
		var text []string
		flush := func() {
			if len(text) > 0 {
				b.WriteString("<p>" + inline(strings.Join(text, " ")) + "</p>")
				text = nil
			}
		}
		for _, line := range strings.Split(para, "\n") {
			line = strings.TrimSpace(line)
			if item, ok := strings.CutPrefix(line, "- "); ok {
				flush()
				if !inList {
					b.WriteString("<ul>")
					inList = true
				}
				b.WriteString("<li>" + inline(item) + "</li>")
				continue
			}
			if inList {
				b.WriteString("</ul>")
				inList = false
			}
			text = append(text, line)
		}
		flush()
		if inList {
			b.WriteString("</ul>")
			inList = false
		}
	}
	return template.HTML(b.String())
}

// inline escapes s and marks its `code` spans.
func inline(s string) string {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		p = template.HTMLEscapeString(p)
		if i%2 == 1 && i < len(parts)-1 {
			b.WriteString("<code>" + p + "</code>")
		} else {
			if i%2 == 1 {
				b.WriteString("`")
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

type docsInput struct{}

type docsAssetInput struct {
	Asset string `path:"asset" doc:"The stylesheet's name, with its checksum"`
}

type docsOutput struct {
	ContentType  string `header:"Content-Type"`
	CSP          string `header:"Content-Security-Policy"`
	CacheControl string `header:"Cache-Control"`
	Body         []byte
}

// docsRoutes serves the reference page of the API's own document, built
// at its first request (once every route is registered).
func (a *API) docsRoutes(h huma.API) {
	var (
		once sync.Once
		page []byte
		err  error
	)
	html := func(desc string) map[string]*huma.Response {
		return map[string]*huma.Response{"200": {Description: desc,
			Content: map[string]*huma.MediaType{"text/html": {Schema: &huma.Schema{Type: huma.TypeString}}}}}
	}
	register(h, auth.Public, huma.Operation{
		OperationID: "api-docs", Method: http.MethodGet, Path: DocsPath, Tags: []string{"docs"},
		Summary:     "This API reference as a web page",
		Description: "The OpenAPI document rendered as one HTML page: operations by tag, with their permission, parameters, request and response schemas. No script; `flownexus openapi --html` writes the same page.",
		Responses:   html("The page"),
	}, func(context.Context, *docsInput) (*docsOutput, error) {
		once.Do(func() { page, err = RenderDocs(a.doc, false) })
		if err != nil {
			return nil, err
		}
		return &docsOutput{ContentType: "text/html; charset=utf-8", CSP: DocsCSP, CacheControl: "no-cache", Body: page}, nil
	})
	register(h, auth.Public, huma.Operation{
		OperationID: "api-docs-asset", Method: http.MethodGet, Path: DocsPath + "/{asset}", Tags: []string{"docs"},
		Summary: "The reference page's stylesheet",
		Responses: map[string]*huma.Response{"200": {Description: "The stylesheet",
			Content: map[string]*huma.MediaType{"text/css": {Schema: &huma.Schema{Type: huma.TypeString}}}}},
		Errors: []int{http.StatusNotFound},
	}, func(_ context.Context, in *docsAssetInput) (*docsOutput, error) {
		if DocsPath+"/"+in.Asset != DocsStylesheetPath {
			return nil, problem.New(http.StatusNotFound, "not_found", "no such asset: "+in.Asset)
		}
		return &docsOutput{ContentType: "text/css; charset=utf-8", CSP: APICSP,
			CacheControl: "public, max-age=31536000, immutable", Body: docsCSS}, nil
	})
}
