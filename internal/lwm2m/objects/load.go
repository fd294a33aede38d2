package objects

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadFile parses the DDF file at path and adds its objects to r, replacing
// definitions with the same IDs. It returns the number of objects added; on
// any error it adds nothing. Errors name the file as path and the line.
func (r *Catalog) LoadFile(path string) (int, error) {
	defs, err := readFile(path)
	if err != nil {
		return 0, err
	}
	r.store(defs)
	return len(defs), nil
}

// LoadDir parses every *.xml file in dir (not its subdirectories) and adds
// the objects of the files that parse, replacing definitions with the same
// IDs; a file with an error contributes nothing. When several files in dir
// define the same object, the highest ObjectVersion wins, then the file
// that sorts last by name. It returns the number of objects added and all
// errors joined (errors.Join), one per bad file.
func (r *Catalog) LoadDir(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("objects: %w", err)
	}
	var errs []error
	chosen := make(map[uint16]*ObjectDef)
	var order []uint16
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			continue
		}
		defs, err := readFile(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range defs {
			old, ok := chosen[d.ID]
			if !ok {
				order = append(order, d.ID)
			}
			if !ok || compareVersions(d.Version, old.Version) >= 0 {
				chosen[d.ID] = d
			}
		}
	}
	defs := make([]*ObjectDef, 0, len(order))
	for _, id := range order {
		defs = append(defs, chosen[id])
	}
	if len(defs) > 0 {
		r.store(defs)
	}
	return len(defs), errors.Join(errs...)
}

func readFile(path string) ([]*ObjectDef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	return parse(path, data)
}

// compareVersions orders "MAJOR.MINOR" versions numerically; Parse has
// checked their form.
func compareVersions(a, b string) int {
	am, an := splitVersion(a)
	bm, bn := splitVersion(b)
	return cmp.Or(cmp.Compare(am, bm), cmp.Compare(an, bn))
}

func splitVersion(v string) (major, minor uint64) {
	ma, mi, _ := strings.Cut(v, ".")
	major, _ = strconv.ParseUint(ma, 10, 32)
	minor, _ = strconv.ParseUint(mi, 10, 32)
	return major, minor
}
