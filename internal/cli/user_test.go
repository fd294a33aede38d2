package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/store"
)

// startServe runs `flownexus serve` with env until the test ends and
// returns its HTTP address.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	env["FLOWNEXUS_LOG_FORMAT"] = "json"
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: pw, Env: config.MapEnv(env)}, []string{"serve"})
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "HTTP listening" {
			go io.Copy(io.Discard, pr)
			return rec["addr"].(string)
		}
	}
	t.Fatal("serve ended without listening")
	return ""
}

// get calls the API with token and returns the status.
func get(t *testing.T, addr, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUserDisableEnableDelete drives the commands against a running
// server: a disabled user's token is refused on its next request, an
// enabled one accepted again, a deleted user's tokens are gone, and the
// audit log keeps the deleted user's name.
func TestUserDisableEnableDelete(t *testing.T) {
	env := serverEnv(t)
	for _, c := range [][]string{{"bob"}, {"root", "--admin"}} {
		if r := runCLI(t, env, "a-password\n", append([]string{"user", "create", "--password-stdin"}, c...)...); r.code != 0 {
			t.Fatalf("create %v: %+v", c, r)
		}
	}
	// bob may see the devices of site home.
	for _, args := range [][]string{{"site", "add", "home"}, {"user", "grant", "bob", "home", "--role", "user", "--flags", "view_overview"}} {
		if r := runCLI(t, env, "", args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	r := runCLI(t, env, "", "token", "create", "--user", "bob")
	if r.code != 0 {
		t.Fatalf("token: %+v", r)
	}
	token := lastLine(r.stdout)
	addr := startServe(t, env)

	if code := get(t, addr, token, "/api/v1/endpoints"); code != http.StatusOK {
		t.Fatalf("bob enabled: %d", code)
	}
	if code := get(t, addr, token, "/api/v1/credentials"); code != http.StatusForbidden {
		t.Fatalf("bob lists credentials: %d, want 403", code)
	}

	if r := runCLI(t, env, "", "user", "disable", "bob"); r.code != 0 || !strings.Contains(r.stdout, `disabled user "bob"`) {
		t.Fatalf("disable: %+v", r)
	}
	if code := get(t, addr, token, "/api/v1/endpoints"); code != http.StatusUnauthorized {
		t.Fatalf("bob disabled: %d, want 401 at once", code)
	}
	r = runCLI(t, env, "", "user", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^bob\s+false\s+\S+\s+never\s+\d{4}-\S+Z$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^root\s+true\s+\S+\s+never\s+no$`).MatchString(r.stdout) {
		t.Errorf("list shows who is disabled:\n%s", r.stdout)
	}
	if r := runCLI(t, env, "", "user", "disable", "bob"); r.code != 0 || !strings.Contains(r.stdout, "already disabled") {
		t.Errorf("disable twice: %+v", r)
	}

	if r := runCLI(t, env, "", "user", "enable", "bob"); r.code != 0 || !strings.Contains(r.stdout, `enabled user "bob"`) {
		t.Fatalf("enable: %+v", r)
	}
	if code := get(t, addr, token, "/api/v1/endpoints"); code != http.StatusOK {
		t.Fatalf("bob enabled again: %d", code)
	}
	if r := runCLI(t, env, "", "user", "enable", "bob"); r.code != 0 || !strings.Contains(r.stdout, "not disabled") {
		t.Errorf("enable twice: %+v", r)
	}

	if r := runCLI(t, env, "", "user", "delete", "bob"); r.code != 0 || !strings.Contains(r.stdout, "1 API token") {
		t.Fatalf("delete: %+v", r)
	}
	if code := get(t, addr, token, "/api/v1/endpoints"); code != http.StatusUnauthorized {
		t.Fatalf("bob deleted: %d, want 401", code)
	}
	for _, cmd := range []string{"disable", "enable", "delete"} {
		if r := runCLI(t, env, "", "user", cmd, "bob"); r.code != 1 || !strings.Contains(r.stderr, `no user "bob"`) {
			t.Errorf("%s a deleted user: %+v", cmd, r)
		}
		if r := runCLI(t, env, "", "user", cmd); r.code != 2 {
			t.Errorf("%s without a name: %+v", cmd, r)
		}
	}
	if r := runCLI(t, env, "", "user", "frob", "x"); r.code != 2 || !strings.Contains(r.stderr, "user disable NAME") {
		t.Errorf("unknown command: %+v", r)
	}

	// bob's refusal is in the audit log under his name; the command line's
	// changes are there too.
	st := openData(t, env)
	entries, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.Target+" by "+e.Actor)
	}
	want := []string{
		"user.delete bob by cli", "user.enable bob by cli", "user.disable bob by cli",
		"access.denied GET /api/v1/credentials by bob",
		"token.create bob by cli", "membership.set bob@home by cli", "site.create home by cli",
		"user.create root by cli", "user.create bob by cli",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
