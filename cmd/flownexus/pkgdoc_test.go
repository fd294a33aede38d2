package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module states its
// contract in a package doc comment.
func TestPackageDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	dirs := map[string]bool{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if len(dirs) < 10 {
		t.Fatalf("found only %d package directories under %s", len(dirs), root)
	}
	for dir := range dirs {
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		for name, p := range pkgs {
			var docs []string
			for fname, f := range p.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
					docs = append(docs, filepath.Base(fname))
					// go doc shows the comment from its first words: a
					// blank line inside it would hide what comes before.
					want := "Package " + name + " "
					if name == "main" {
						want = "Command flownexus "
					}
					if !strings.HasPrefix(f.Doc.Text(), want) {
						t.Errorf("package %s (%s): doc comment of %s starts %q, want %q", name, dir,
							filepath.Base(fname), firstLine(f.Doc.Text()), want)
					}
				}
			}
			switch len(docs) {
			case 0:
				t.Errorf("package %s (%s) has no package doc comment", name, dir)
			case 1:
			default:
				t.Errorf("package %s (%s) has a package doc comment in several files: %v", name, dir, docs)
			}
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
