package coapd_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsPointDown: the CoAP server does not reach up to the device
// manager or down past the registry, ingest and credential services to
// the store, and the DTLS plumbing under it imports no package of the
// module (see the package docs).
func TestImportsPointDown(t *testing.T) {
	const module = "github.com/flownexus/flownexus/internal/"
	for dir, forbidden := range map[string][]string{
		".":          {module + "devmgmt", module + "store", module + "jobs", module + "api", module + "app"},
		"../dtlsmux": {module},
	} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					if path == bad || strings.HasPrefix(path, bad+"/") || strings.HasSuffix(bad, "/") && strings.HasPrefix(path, bad) {
						t.Errorf("%s imports %s", filepath.Join(dir, name), path)
					}
				}
			}
		}
	}
}
