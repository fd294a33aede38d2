package cli

import (
	"strings"
	"testing"
)

func TestEndpointProvision(t *testing.T) {
	env := dataEnv(t)
	if r := runCLI(t, env, "", "endpoint", "add", "urn:imei:1", "urn:imei:2"); r.code != 0 ||
		!strings.Contains(r.stdout, "provisioned 2 endpoints (2 new)") {
		t.Fatalf("add: %+v", r)
	}
	in := "# fleet\nurn:imei:2\n\nurn:imei:3\n"
	if r := runCLI(t, env, in, "endpoint", "import", "-"); r.code != 0 ||
		!strings.Contains(r.stdout, "provisioned 2 endpoints (1 new)") {
		t.Fatalf("import: %+v", r)
	}
	r := runCLI(t, env, "urn:imei:4\nbad\x00name\nurn:imei:4\n", "endpoint", "import", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "line 3") ||
		!strings.Contains(r.stderr, "nothing imported") {
		t.Fatalf("import of bad lines: %+v", r)
	}
	if r := runCLI(t, env, "", "endpoint", "remove", "urn:imei:4"); r.code != 1 || !strings.Contains(r.stderr, `no endpoint "urn:imei:4"`) {
		t.Fatalf("urn:imei:4 was imported from a file with bad lines: %+v", r)
	}
	if r := runCLI(t, env, "", "endpoint", "add", "ok", "tab\there"); r.code != 1 || !strings.Contains(r.stderr, "control character") {
		t.Fatalf("add of a bad name: %+v", r)
	}
	if r := runCLI(t, env, "", "endpoint", "remove", "urn:imei:1"); r.code != 0 || !strings.Contains(r.stdout, "removed endpoint") {
		t.Fatalf("remove: %+v", r)
	}
	if r := runCLI(t, env, "", "endpoint", "frob"); r.code != 2 {
		t.Fatalf("unknown subcommand: %+v", r)
	}
}
