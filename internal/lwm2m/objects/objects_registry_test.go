package objects

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// registryDir returns the OMA LwM2M registry checkout that sits next to the
// module root (../shared/lwm2m-registry from the directory holding go.mod),
// skipping the test when it is absent.
func registryDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
	reg := filepath.Join(dir, "..", "shared", "lwm2m-registry")
	if fi, err := os.Stat(reg); err != nil || !fi.IsDir() {
		t.Skipf("LwM2M registry not found at %s; CI requires it", reg)
	}
	return reg
}

// registryFiles names the registry file each built-in definition follows.
// Every object follows the newest version, the file <id>.xml at the
// registry's root; an entry here would pin an older one from the
// registry's version_history folder ("version_history/3-1_1.xml").
var registryFiles = map[uint16]string{}

// TestBuiltinMatchesRegistry compares every built-in definition with the
// registry file it was written from, field by field, reporting each
// difference.
func TestBuiltinMatchesRegistry(t *testing.T) {
	dir := registryDir(t)
	for _, own := range Default().Objects() {
		if own.ID == RegistrationEventsID {
			continue // flownexus's own object, not in the registry
		}
		file := registryFiles[own.ID]
		if file == "" {
			file = strconv.Itoa(int(own.ID)) + ".xml"
		}
		var r Catalog
		if _, err := r.LoadFile(filepath.Join(dir, file)); err != nil {
			t.Errorf("object %d: %v", own.ID, err)
			continue
		}
		ref, ok := r.Object(own.ID)
		if !ok {
			t.Errorf("object %d: %s does not define it", own.ID, file)
			continue
		}
		obj := func(field string, got, want any) {
			if got != want {
				t.Errorf("object %d (%s): %s = %v, registry has %v", own.ID, file, field, got, want)
			}
		}
		obj("Name", own.Name, ref.Name)
		obj("Version", own.Version, ref.Version)
		obj("URN", own.URN, ref.URN)
		obj("Multiple", own.Multiple, ref.Multiple)
		obj("Mandatory", own.Mandatory, ref.Mandatory)

		for _, rr := range ref.Resources {
			or, ok := own.Resource(rr.ID)
			if !ok {
				t.Errorf("object %d resource %d (%s): missing from the built-in definition", own.ID, rr.ID, rr.Name)
				continue
			}
			res := func(field string, got, want any) {
				if got != want {
					t.Errorf("object %d resource %d (%s): %s = %v, registry has %v", own.ID, rr.ID, rr.Name, field, got, want)
				}
			}
			res("Name", or.Name, rr.Name)
			res("Operations", or.Operations.String(), rr.Operations.String())
			res("Multiple", or.Multiple, rr.Multiple)
			res("Mandatory", or.Mandatory, rr.Mandatory)
			res("Type", or.Type.String(), rr.Type.String())
			res("RangeEnumeration", or.RangeEnumeration, rr.RangeEnumeration)
			res("Units", or.Units, rr.Units)
		}
		for _, or := range own.Resources {
			if _, ok := ref.Resource(or.ID); !ok {
				t.Errorf("object %d resource %d (%s): not in %s", own.ID, or.ID, or.Name, file)
			}
		}
	}
}

// notDDF lists the *.xml files of the registry that are not object
// definitions, with the reason; the loader must refuse them and load every
// other file.
var notDDF = map[string]string{
	"LWM2M_senml_units.xml": "the registry's list of additional SenML units (root <units>), not an object definition",
}

// TestLoadWholeRegistry loads every XML file of the registry with LoadDir
// and each with LoadFile.
func TestLoadWholeRegistry(t *testing.T) {
	dir := registryDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no XML files in %s: %v", dir, err)
	}

	var r Catalog
	n, err := r.LoadDir(dir)
	if n != len(files)-len(notDDF) {
		t.Errorf("LoadDir loaded %d objects from %d files (%d excepted)", n, len(files), len(notDDF))
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	failed := make(map[string]bool)
	for _, e := range errs {
		var pe *ParseError
		if !errors.As(e, &pe) {
			t.Errorf("LoadDir: %v", e)
			continue
		}
		base := filepath.Base(pe.File)
		failed[base] = true
		if _, ok := notDDF[base]; !ok {
			t.Errorf("LoadDir: %v", e)
		}
	}
	for name, why := range notDDF {
		if !failed[name] {
			t.Errorf("%s was excepted (%s) but did not fail; remove the exception", name, why)
		}
	}

	for _, f := range files {
		base := filepath.Base(f)
		var one Catalog
		n, err := one.LoadFile(f)
		if _, excepted := notDDF[base]; excepted {
			if err == nil || !strings.Contains(err.Error(), "not an LwM2M DDF file") {
				t.Errorf("LoadFile(%s) = %d, %v; want a not-a-DDF error", base, n, err)
			}
			continue
		}
		if err != nil || n != 1 {
			t.Errorf("LoadFile(%s) = %d, %v", base, n, err)
			continue
		}
		d := one.Objects()[0]
		if want := strings.TrimSuffix(base, ".xml"); strconv.Itoa(int(d.ID)) != want {
			t.Errorf("%s defines object %d", base, d.ID)
		}
		if got, _ := r.Object(d.ID); got == nil || got.Name != d.Name {
			t.Errorf("%s: LoadDir and LoadFile disagree on object %d", base, d.ID)
		}
	}
}
