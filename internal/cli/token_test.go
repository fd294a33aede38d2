package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/store"
)

// openData opens the store of a data directory the commands wrote.
func openData(t *testing.T, env map[string]string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(env["FLOWNEXUS_DATA_DIR"], "flownexus.db"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// lastLine is the last line of out: where token create prints the token.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func TestTokenCreateRefusesNonPositiveExpiry(t *testing.T) {
	env := dataEnv(t)
	if r := runCLI(t, env, "a-password\n", "user", "create", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("create user: %+v", r)
	}
	for _, exp := range []string{"-1h", "0", "0s", "-720h", "soon", ""} {
		r := runCLI(t, env, "", "token", "create", "--user", "alice", "--expires", exp)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "-expires") {
			t.Errorf("--expires %q: %+v, want exit 2 naming the flag", exp, r)
		}
	}
	if r := runCLI(t, env, "", "token", "create", "--user", "alice", "--expires", "-1h"); !strings.Contains(r.stderr, "positive") {
		t.Errorf("--expires -1h: error %q does not say it must be positive", r.stderr)
	}
	st := openData(t, env)
	u, _ := st.GetUserByName(context.Background(), "alice")
	if toks, err := st.ListAPITokens(context.Background(), u.ID); err != nil || len(toks) != 0 {
		t.Fatalf("tokens made by refused commands: %+v %v", toks, err)
	}

	start := time.Now()
	r := runCLI(t, env, "", "token", "create", "--user", "alice", "--expires", "90m")
	if r.code != 0 {
		t.Fatalf("--expires 90m: %+v", r)
	}
	tok, _, err := st.GetAPITokenByHash(context.Background(), auth.HashToken(lastLine(r.stdout)))
	if err != nil {
		t.Fatal(err)
	}
	if d := tok.ExpiresAt.Sub(start); d < 89*time.Minute || d > 91*time.Minute {
		t.Errorf("expires %v after the command started, want 90m", d)
	}
	r = runCLI(t, env, "", "token", "create", "--user", "alice")
	if r.code != 0 {
		t.Fatalf("no --expires: %+v", r)
	}
	if tok, _, err := st.GetAPITokenByHash(context.Background(), auth.HashToken(lastLine(r.stdout))); err != nil || !tok.ExpiresAt.IsZero() {
		t.Errorf("token without --expires: %+v %v, want no expiry", tok, err)
	}
}

func TestTokenListAndRevoke(t *testing.T) {
	env := dataEnv(t)
	for _, u := range []string{"alice", "bob"} {
		if r := runCLI(t, env, "a-password\n", "user", "create", u, "--password-stdin"); r.code != 0 {
			t.Fatalf("create %s: %+v", u, r)
		}
	}
	var tokens []string
	for _, c := range [][]string{{"alice", "ci", "read-write"}, {"bob", "laptop", "read"}, {"alice", "old", "read-write"}} {
		r := runCLI(t, env, "", "token", "create", "--user", c[0], "--name", c[1], "--expires", "720h", "--scope", c[2])
		if r.code != 0 {
			t.Fatalf("token %v: %+v", c, r)
		}
		tokens = append(tokens, lastLine(r.stdout))
	}

	r := runCLI(t, env, "", "token", "list")
	if r.code != 0 {
		t.Fatalf("list: %+v", r)
	}
	for _, tok := range tokens {
		if strings.Contains(r.stdout, tok) || strings.Contains(r.stdout, auth.HashToken(tok)) {
			t.Fatalf("list shows a token or its hash:\n%s", r.stdout)
		}
	}
	header := regexp.MustCompile(`^ID\s+USER\s+NAME\s+PREFIX\s+SCOPE\s+CREATED\s+EXPIRES\s+LAST USED\n`)
	rows := regexp.MustCompile(`(?m)^(\d+)\s+(\S+)\s+(\S+)\s+fnx_\S+\s+(read|read-write)\s+\d{4}-\S+Z\s+\d{4}-\S+Z\s+never$`).FindAllStringSubmatch(r.stdout, -1)
	if !header.MatchString(r.stdout) || len(rows) != 3 {
		t.Fatalf("list:\n%s", r.stdout)
	}
	var got []string
	for _, row := range rows {
		got = append(got, row[2]+"/"+row[3])
	}
	if r := runCLI(t, env, "", "token", "create", "--user", "alice", "--scope", "write"); r.code == 0 {
		t.Errorf("--scope write: %+v, want a usage error", r)
	}
	if strings.Join(got, " ") != "alice/old bob/laptop alice/ci" || rows[1][4] != "read" || rows[0][4] != "read-write" {
		t.Errorf("list rows %v, want newest first", got)
	}
	r = runCLI(t, env, "", "token", "list", "--user", "alice")
	if r.code != 0 || strings.Contains(r.stdout, "bob") || strings.Count(r.stdout, "alice") != 2 {
		t.Errorf("list --user alice: %+v", r)
	}
	if r := runCLI(t, env, "", "token", "list", "--user", "nobody"); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
		t.Errorf("list --user nobody: %+v", r)
	}

	oldID := rows[0][1]
	r = runCLI(t, env, "", "token", "revoke", oldID)
	if r.code != 0 || !strings.Contains(r.stdout, `"old"`) || !strings.Contains(r.stdout, "alice") {
		t.Fatalf("revoke: %+v", r)
	}
	st := openData(t, env)
	if _, _, err := st.GetAPITokenByHash(context.Background(), auth.HashToken(tokens[2])); err == nil {
		t.Error("revoked token still stored")
	}
	if _, _, err := st.GetAPITokenByHash(context.Background(), auth.HashToken(tokens[0])); err != nil {
		t.Errorf("another token of the user went too: %v", err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"token", "revoke", oldID}, 1, "no API token " + oldID},
		{[]string{"token", "revoke", "x"}, 2, "token revoke ID"},
		{[]string{"token", "revoke"}, 2, "token revoke ID"},
		{[]string{"token", "revoke", "1", "2"}, 2, "token revoke ID"},
		{[]string{"token", "list", "extra"}, 2, "token list"},
		{[]string{"token", "frob"}, 2, `unknown token command "frob"`},
		{[]string{"token"}, 2, "token create"},
	} {
		if r := runCLI(t, env, "", c.args...); r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: %+v, want exit %d and %q", c.args, r, c.code, c.want)
		}
	}

	// Creating and revoking tokens is audited.
	entries, err := st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		var d struct{ Name string }
		json.Unmarshal(e.Detail, &d)
		if strings.HasPrefix(e.Action, "token.") {
			actions = append(actions, e.Action+" "+e.Target+" "+e.Actor+" "+d.Name)
		}
	}
	want := "token.revoke alice cli old,token.create alice cli old,token.create bob cli laptop,token.create alice cli ci"
	if strings.Join(actions, ",") != want {
		t.Errorf("audit: %v, want %s", actions, want)
	}
}
