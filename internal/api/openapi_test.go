package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/flownexus/flownexus/internal/firmware"
)

// documentRoutes returns "METHOD path operationId" of every operation
// of doc.
func documentRoutes(doc *huma.OpenAPI) []string {
	var out []string
	for path, item := range doc.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPut: item.Put, http.MethodPost: item.Post, http.MethodDelete: item.Delete,
			http.MethodOptions: item.Options, http.MethodHead: item.Head, http.MethodPatch: item.Patch, http.MethodTrace: item.Trace,
		} {
			if op != nil {
				out = append(out, method+" "+path+" "+op.OperationID)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIDocumentMatchesRoutes: the document names every operation
// the API serves and nothing else, each with its permission; only huma's
// document routes stay out of it.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	a := build(Config{Version: "test", Firmware: &firmware.Images{}}, true)
	var served []string
	perms := map[string]string{}
	for _, r := range a.Routes() {
		if r.OperationID == "" {
			if r.Method != http.MethodGet || !a.table.docs[r.Path] {
				t.Errorf("route %s %s has no operation id", r.Method, r.Path)
			}
			continue
		}
		served = append(served, r.Method+" "+r.Path+" "+r.OperationID)
		perms[r.OperationID] = string(r.Permission)
	}
	slices.Sort(served)
	documented := documentRoutes(a.OpenAPI())
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not in the document: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("in the document but not served: %s", r)
		}
	}
	if len(served) < 40 {
		t.Errorf("only %d routes: %v", len(served), served)
	}
	for _, item := range a.OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op != nil && op.Extensions["x-permission"] != perms[op.OperationID] {
				t.Errorf("%s: x-permission %v, route needs %q", op.OperationID, op.Extensions["x-permission"], perms[op.OperationID])
			}
		}
	}
	// Document is the same document.
	want, _ := json.Marshal(a.OpenAPI())
	got, _ := json.Marshal(Document("test"))
	if string(got) != string(want) {
		t.Error("Document differs from the API's document")
	}
}

// TestOpenAPIDocumentValid: the document is valid OpenAPI 3.1 to an
// independent validator (kin-openapi).
func TestOpenAPIDocumentValid(t *testing.T) {
	b, err := json.Marshal(Document("test"))
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	ctx := openapi3.WithValidationOptions(context.Background(), openapi3.EnableMultiError())
	if err := doc.Validate(ctx); err != nil {
		t.Errorf("the OpenAPI document is not valid:\n%v", err)
	}
}

// TestDocsPage: the reference page is served without a token, with its
// own CSP, no script and no inline style, and names every operation with
// its permission; its stylesheet is at its checksum URL.
func TestDocsPage(t *testing.T) {
	a := build(Config{Version: "test", Firmware: &firmware.Images{}}, true)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	rec := get(DocsPath)
	body := rec.Body.String()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" || rec.Header().Get("Content-Security-Policy") != DocsCSP {
		t.Fatalf("docs: %d %v", rec.Code, rec.Header())
	}
	for _, bad := range []string{"<script", "style=", "<style", "src=", `href="http`, `href="//`} {
		if strings.Contains(body, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	for _, r := range a.Routes() {
		if r.OperationID == "" {
			continue
		}
		if !strings.Contains(body, `id="`+r.OperationID+`"`) {
			t.Errorf("the page lacks operation %s", r.OperationID)
		}
	}
	for _, want := range []string{`<span class="path">/api/v1/events/stream</span>`, `Permission <code>view_data</code>`,
		`<td class="name">Last-Event-ID</td><td>header</td>`, `href="` + DocsStylesheetPath + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	css := get(DocsStylesheetPath)
	if css.Code != 200 || css.Header().Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(css.Header().Get("Cache-Control"), "immutable") ||
		css.Body.String() != string(docsCSS) {
		t.Errorf("stylesheet: %d %v", css.Code, css.Header())
	}
	if rec := get(DocsPath + "/docs.0000.css"); rec.Code != 404 {
		t.Errorf("another stylesheet name: %d", rec.Code)
	}
	// The standalone page carries its stylesheet.
	page, err := RenderDocs(a.OpenAPI(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "<style>") || strings.Contains(string(page), DocsStylesheetPath) {
		t.Error("the standalone page does not embed its stylesheet")
	}
}

func TestDocsText(t *testing.T) {
	got := string(docsText("One `<a>` line\nwraps.\n\nTopics:\n- `x`: first\n- y <b>\n\nEnd `open"))
	want := "<p>One <code>&lt;a&gt;</code> line wraps.</p><p>Topics:</p><ul><li><code>x</code>: first</li><li>y &lt;b&gt;</li></ul><p>End `open</p>"
	if got != want {
		t.Errorf("docsText:\n%s\nwant\n%s", got, want)
	}
}
