package firmware_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImportsPointDown: package firmware reaches neither up to the
// surfaces and wiring (api, app, cli, web) nor to the job engine.
func TestImportsPointDown(t *testing.T) {
	const module = "github.com/flownexus/flownexus/internal/"
	forbidden := []string{"api", "app", "cli", "jobs", "web", "problem", "fwupdate"}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == module+bad || strings.HasPrefix(path, module+bad+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
