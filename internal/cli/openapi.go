package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flownexus/flownexus/internal/api"
	"github.com/flownexus/flownexus/internal/version"
)

const openapiUsage = "openapi [--yaml | --html]"

// runOpenAPI prints the API's OpenAPI document, as a server of this
// version serves it at /api/v1/openapi.json, without a server or a
// database: JSON, YAML (--yaml), or the API reference page as a
// standalone HTML file (--html, as /api/v1/docs shows it).
func runOpenAPI(_ context.Context, iox IO, args []string) error {
	fs := flagSet(iox, "openapi")
	asYAML := fs.Bool("yaml", false, "print the document as YAML")
	asHTML := fs.Bool("html", false, "print the API reference page (standalone HTML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *asYAML && *asHTML {
		return fmt.Errorf("%w: %s", errUsage, openapiUsage)
	}
	doc := api.Document(version.Version)
	var out []byte
	var err error
	switch {
	case *asYAML:
		out, err = doc.YAML()
	case *asHTML:
		out, err = api.RenderDocs(doc, true)
	default:
		if out, err = json.MarshalIndent(doc, "", "  "); err == nil {
			out = append(out, '\n')
		}
	}
	if err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	_, err = iox.Stdout.Write(out)
	return err
}
