package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirmwareCommands(t *testing.T) {
	env := dataEnv(t)
	env["FLOWNEXUS_FW_MAX_SIZE"] = "5000"
	dir := t.TempDir()
	image := filepath.Join(dir, "app.bin")
	if err := os.WriteFile(image, []byte(strings.Repeat("firmware", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Configuration flags after the file are honoured too.
	other := t.TempDir()
	if r := runCLI(t, env, "", "fw", "upload", image, "--version", "0.1", "--data-dir", other, "--fw-max-size", "3999"); r.code != 1 ||
		!strings.Contains(r.stderr, "larger than 3999 bytes") {
		t.Fatalf("upload with flags after the file: %+v", r)
	}
	if r := runCLI(t, env, "", "fw", "upload", image, "--version", "0.1", "--data-dir", other); r.code != 0 {
		t.Fatalf("upload to --data-dir: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(other, "firmware", "0.1.bin")); err != nil {
		t.Fatalf("--data-dir after the file was not used: %v", err)
	}
	r := runCLI(t, env, "", "fw", "upload", image, "--version", "1.2.3")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || lines[len(lines)-1] != "/binaries/1.2.3.bin" || !strings.Contains(r.stdout, "4000 bytes") {
		t.Fatalf("upload: %+v", r)
	}
	if r := runCLI(t, env, "tiny image", "fw", "upload", "-", "--version", "1.2.4"); r.code != 0 || !strings.HasSuffix(r.stdout, "\n/binaries/1.2.4.bin\n") {
		t.Fatalf("upload from stdin: %+v", r)
	}
	empty := filepath.Join(dir, "empty.bin")
	os.WriteFile(empty, nil, 0o644)
	big := filepath.Join(dir, "big.bin")
	os.WriteFile(big, make([]byte, 5001), 0o644)
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"duplicate":    {[]string{"upload", image, "--version", "1.2.3"}, 1, `version exists: "1.2.3"`},
		"empty":        {[]string{"upload", empty, "--version", "2.0"}, 1, "is empty"},
		"oversize":     {[]string{"upload", big, "--version", "2.0"}, 1, "larger than 5000 bytes"},
		"bad version":  {[]string{"upload", image, "--version", "../2.0"}, 1, "version"},
		"no version":   {[]string{"upload", image}, 2, "fw upload FILE --version V"},
		"no file":      {[]string{"upload", filepath.Join(dir, "none.bin"), "--version", "2.0"}, 1, "no such file"},
		"unknown":      {[]string{"flash"}, 2, "unknown fw command"},
		"remove none":  {[]string{"remove", "9.9"}, 1, `"9.9"`},
		"remove usage": {[]string{"remove"}, 2, "fw remove VERSION"},
	} {
		r := runCLI(t, env, "", append([]string{"fw"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want code %d and %q", name, r, c.code, c.want)
		}
	}
	r = runCLI(t, env, "", "fw", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "/binaries/1.2.4.bin") {
		t.Fatalf("list: %+v", r)
	}
	if r := runCLI(t, env, "", "fw", "remove", "1.2.3"); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
	ents, _ := os.ReadDir(filepath.Join(env["FLOWNEXUS_DATA_DIR"], "firmware"))
	if len(ents) != 1 || ents[0].Name() != "1.2.4.bin" {
		t.Fatalf("firmware directory after remove: %v", ents)
	}
}
