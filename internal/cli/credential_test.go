package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredential(t *testing.T) {
	env := dataEnv(t)
	const key = "000102030405060708090a0b0c0d0e0f"
	if r := runCLI(t, env, "", "credential", "add", "urn:imei:1", "--psk-identity", "dev-1", "--psk-key", key); r.code != 0 ||
		!strings.Contains(r.stdout, `added psk credential for "urn:imei:1"`) {
		t.Fatalf("add psk: %+v", r)
	}
	if r := runCLI(t, env, key+"\n", "credential", "add", "urn:imei:2", "--psk-identity", "dev-2", "--psk-key-stdin"); r.code != 0 {
		t.Fatalf("add psk from stdin: %+v", r)
	}
	if r := runCLI(t, env, "", "credential", "add", "urn:imei:3", "--cert-cn", "urn:imei:3"); r.code != 0 {
		t.Fatalf("add cert: %+v", r)
	}
	r := runCLI(t, env, "", "credential", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "dev-1") ||
		!strings.Contains(r.stdout, "x509") {
		t.Fatalf("list: %+v", r)
	}
	if strings.Contains(r.stdout, key) || strings.Contains(r.stdout, "0102030405") {
		t.Fatalf("list shows the key:\n%s", r.stdout)
	}
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"same endpoint":  {[]string{"add", "urn:imei:1", "--cert-cn", "x"}, 1, "already has a credential"},
		"same identity":  {[]string{"add", "urn:imei:9", "--psk-identity", "dev-1", "--psk-key", key}, 1, "in use"},
		"bad hex":        {[]string{"add", "urn:imei:9", "--psk-identity", "x", "--psk-key", "xyz"}, 1, "not hex"},
		"short key":      {[]string{"add", "urn:imei:9", "--psk-identity", "x", "--psk-key", "0102"}, 1, "PSK key is 2 bytes"},
		"no binding":     {[]string{"add", "urn:imei:9"}, 1, "give a PSK identity"},
		"no endpoint":    {[]string{"add", "--cert-cn", "x"}, 2, "credential add ENDPOINT"},
		"unknown":        {[]string{"rotate"}, 2, "unknown credential command"},
		"remove missing": {[]string{"remove", "urn:imei:9"}, 1, "has no credential"},
	} {
		r := runCLI(t, env, "", append([]string{"credential"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want code %d and %q", name, r, c.code, c.want)
		}
	}
	if r := runCLI(t, env, "", "credential", "remove", "urn:imei:1"); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
	if r := runCLI(t, env, "", "credential", "list"); strings.Contains(r.stdout, "urn:imei:1") {
		t.Fatalf("removed credential still listed:\n%s", r.stdout)
	}
}

// TestCredentialImport imports PSK files from a file and from stdin; a
// file with bad lines is reported line by line and adds nothing.
func TestCredentialImport(t *testing.T) {
	env := dataEnv(t)
	const key = "000102030405060708090a0b0c0d0e0f"
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte("# endpoint,psk-identity,psk-hex-key\nurn:imei:1,dev-1,"+key+"\nurn:imei:2,dev-2,"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, "", "credential", "import", good); r.code != 0 || !strings.Contains(r.stdout, "imported 2 PSK credentials from "+good) {
		t.Fatalf("import: %+v", r)
	}
	if r := runCLI(t, env, "urn:imei:3,dev-3,"+key+"\n", "credential", "import", "-"); r.code != 0 || !strings.Contains(r.stdout, "imported 1 PSK credentials from stdin") {
		t.Fatalf("import from stdin: %+v", r)
	}
	bad := "urn:imei:4,dev-4," + key + "\n" + // good
		"urn:imei:1,dev-5," + key + "\n" + // endpoint already stored
		"urn:imei:6,dev-6,feedfacecafe\n" + // short key
		"urn:imei:7,dev-2," + key + "\n" + // identity already stored
		"urn:imei:8,dev-8\n" // too few fields
	r := runCLI(t, env, bad, "credential", "import", "-")
	want := []string{
		"flownexus: stdin: nothing imported: 4 bad lines",
		`flownexus: line 2: endpoint "urn:imei:1" already has a credential`,
		"flownexus: line 3: invalid credential: PSK key is 6 bytes, want 8 to 64",
		`flownexus: line 4: PSK identity "dev-2" is in use`,
		"flownexus: line 5: 2 fields, want 3: endpoint,psk-identity,psk-hex-key",
	}
	if r.code != 1 || strings.TrimSpace(r.stderr) != strings.Join(want, "\n") {
		t.Fatalf("bad import: code %d, stderr\n%s\nwant\n%s", r.code, r.stderr, strings.Join(want, "\n"))
	}
	if strings.Contains(r.stderr+r.stdout, key) || strings.Contains(r.stderr, "feedface") {
		t.Fatalf("the errors show key material:\n%s", r.stderr)
	}
	r = runCLI(t, env, "", "credential", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || strings.Contains(r.stdout, "urn:imei:4") || strings.Contains(r.stdout, key) {
		t.Fatalf("list after the imports: %+v", r)
	}
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"missing file": {[]string{"import", filepath.Join(dir, "none.csv")}, 1, "no such file"},
		"no file":      {[]string{"import"}, 2, "credential import FILE"},
		"empty":        {[]string{"import", "-"}, 1, "lists no credentials"},
	} {
		r := runCLI(t, env, "", append([]string{"credential"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want code %d and %q", name, r, c.code, c.want)
		}
	}
}
