package cli

import (
	"strings"
	"testing"
)

func TestSitesMembershipsAndAssignment(t *testing.T) {
	env := dataEnv(t)
	ok := func(want string, args ...string) run {
		t.Helper()
		r := runCLI(t, env, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("%v: %+v, want %q", args, r, want)
		}
		return r
	}
	fails := func(code int, want string, args ...string) {
		t.Helper()
		if r := runCLI(t, env, "", args...); r.code != code || !strings.Contains(r.stderr, want) {
			t.Fatalf("%v: %+v, want exit %d with %q", args, r, code, want)
		}
	}
	ok(`created site "north"`, "site", "add", "north")
	ok(`created site "south"`, "site", "add", "south")
	fails(1, "already exists", "site", "add", "north")
	fails(1, "letters", "site", "add", "no way")
	if r := runCLI(t, env, "a long password\n", "user", "create", "olive", "--password-stdin"); r.code != 0 {
		t.Fatalf("create user: %+v", r)
	}
	ok("provisioned 3", "endpoint", "add", "urn:n:1", "urn:n:2", "urn:s:1")
	ok("moved 2 endpoint(s) to site \"north\"", "endpoint", "assign", "north", "--prefix", "urn:n:")
	ok("moved 1 endpoint(s) to site \"south\"", "endpoint", "assign", "south", "urn:s:1")
	fails(2, "endpoint assign", "endpoint", "assign", "north")
	fails(1, `no site "west"`, "endpoint", "assign", "west", "urn:s:1")
	ok(`Site User of "north" with [view_overview view_data]`, "user", "grant", "olive", "north", "--role", "user", "--flags", "view_overview,view_data")
	ok(`Site Admin of "south"`, "user", "grant", "olive", "south", "--role", "admin")
	fails(2, "not a site permission", "user", "grant", "olive", "north", "--role", "user", "--flags", "manage_users")
	fails(2, "--role", "user", "grant", "olive", "north", "--role", "owner")
	r := ok("north", "site", "list")
	if !strings.Contains(r.stdout, "north  2        1") && !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "north 2 1") {
		t.Errorf("site list: %s", r.stdout)
	}
	ok(`no longer a member of "north"`, "user", "revoke", "olive", "north")
	fails(1, "no member", "user", "revoke", "olive", "north")
	ok("moved 1 endpoint(s) to no site", "endpoint", "assign", "-", "urn:s:1")
	ok(`removed site "north"`, "site", "remove", "north")
	fails(1, `no site "north"`, "site", "remove", "north")
}
