package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/flownexus/flownexus/internal/auth"
)

// panics returns the panic message of f, "" when it does not panic.
func panics(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg, _ = p.(string)
			if msg == "" {
				msg = "panic"
			}
		}
	}()
	f()
	return ""
}

func TestRouteTableRefusesRoutesWithoutPermission(t *testing.T) {
	cfg := huma.DefaultConfig("test", "0")
	cfg.OpenAPIPath, cfg.SchemasPath, cfg.DocsPath = Prefix+"/openapi", Prefix+"/schemas", ""
	table := &routeTable{Adapter: humago.NewAdapter(http.NewServeMux(), ""), docs: map[string]bool{
		cfg.OpenAPIPath + ".json": true, cfg.OpenAPIPath + "-3.0.json": true,
		cfg.OpenAPIPath + ".yaml": true, cfg.OpenAPIPath + "-3.0.yaml": true, cfg.SchemasPath + "/{schema}": true,
	}}
	h := huma.NewAPI(cfg, table)
	handler := func(context.Context, *struct{}) (*struct{}, error) { return nil, nil }

	if msg := panics(func() {
		huma.Register(h, huma.Operation{OperationID: "raw", Method: http.MethodGet, Path: Prefix + "/raw"}, handler)
	}); !strings.Contains(msg, "GET /api/v1/raw has no permission") {
		t.Errorf("route registered without a permission: panic %q", msg)
	}
	if msg := panics(func() {
		register(h, "be_root", huma.Operation{OperationID: "odd", Method: http.MethodGet, Path: Prefix + "/odd"}, handler)
	}); !strings.Contains(msg, `unknown permission "be_root"`) {
		t.Errorf("route with an unknown permission: panic %q", msg)
	}
	// A document path is public only for huma's own GET routes.
	if msg := panics(func() {
		huma.Register(h, huma.Operation{OperationID: "sneaky", Method: http.MethodPost, Path: Prefix + "/openapi.json"}, handler)
	}); msg == "" {
		t.Error("POST on a document path registered without a permission")
	}
	register(h, auth.ManageUsers, huma.Operation{OperationID: "fine", Method: http.MethodGet, Path: Prefix + "/fine"}, handler)

	var got []string
	for _, r := range table.routes {
		got = append(got, r.Method+" "+r.Path+" "+r.OperationID+" "+string(r.Permission))
	}
	want := []string{
		"GET /api/v1/openapi.json  public", "GET /api/v1/openapi-3.0.json  public",
		"GET /api/v1/openapi.yaml  public", "GET /api/v1/openapi-3.0.yaml  public",
		"GET /api/v1/schemas/{schema}  public", "GET /api/v1/fine fine manage_users",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	op := h.OpenAPI().Paths[Prefix+"/fine"].Get
	if op.Extensions["x-permission"] != "manage_users" || !strings.Contains(op.Description, "administrators only") {
		t.Errorf("OpenAPI operation: extensions %v, description %q", op.Extensions, op.Description)
	}
}
