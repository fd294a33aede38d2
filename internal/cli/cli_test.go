package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/store"
)

// syncBuffer is a bytes.Buffer safe for a server goroutine writing logs
// while the test reads them.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type run struct {
	code           int
	stdout, stderr string
}

// runCLI runs one command with env (plus a data dir in t's temp dir unless
// set) and the given stdin.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) run {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	var out, errb syncBuffer
	iox := IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)}
	code := Main(context.Background(), iox, args)
	return run{code, out.String(), errb.String()}
}

func dataEnv(t *testing.T) map[string]string {
	return map[string]string{"FLOWNEXUS_DATA_DIR": t.TempDir()}
}

// serverEnv is dataEnv with every listener of a server on a free loopback
// port (the firmware download listener off).
func serverEnv(t *testing.T) map[string]string {
	env := dataEnv(t)
	env["FLOWNEXUS_HTTP_LISTEN"] = "127.0.0.1:0"
	env["FLOWNEXUS_COAP_LISTEN"] = "127.0.0.1:0"
	env["FLOWNEXUS_COAPS_LISTEN"] = "127.0.0.1:0"
	env["FLOWNEXUS_FW_LISTEN"] = ""
	return env
}

func TestVersionAndSecret(t *testing.T) {
	r := runCLI(t, nil, "", "version")
	if r.code != 0 || !regexp.MustCompile(`^flownexus \S+ \(commit \S+\)\n$`).MatchString(r.stdout) {
		t.Fatalf("version: %+v", r)
	}
	r = runCLI(t, nil, "", "secret")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) < config.MinSecretKeyLen {
		t.Fatalf("secret: %+v", r)
	}
	if r := runCLI(t, nil, "", "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %+v", r)
	}
}

func TestUserAndToken(t *testing.T) {
	env := dataEnv(t)
	if r := runCLI(t, env, "s3cret-password\n", "user", "create", "alice", "--admin", "--password-stdin"); r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if r := runCLI(t, env, "other-password\n", "user", "create", "alice", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, `user "alice" already exists`) {
		t.Fatalf("duplicate: %+v", r)
	}
	if r := runCLI(t, env, "short\n", "user", "create", "bob", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "at least 8") {
		t.Fatalf("short password: %+v", r)
	}
	if r := runCLI(t, env, "", "user", "create", "bob"); r.code != 1 || !strings.Contains(r.stderr, "--password-stdin") {
		t.Fatalf("no terminal: %+v", r)
	}
	if r := runCLI(t, env, "", "user", "create", "bad name!", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "user name") {
		t.Fatalf("bad name: %+v", r)
	}
	r := runCLI(t, env, "", "user", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^alice\s+true\s`).MatchString(r.stdout) {
		t.Fatalf("list: %+v", r)
	}
	if r := runCLI(t, env, "new-password-1\n", "user", "passwd", "alice", "--password-stdin"); r.code != 0 {
		t.Fatalf("passwd: %+v", r)
	}
	if r := runCLI(t, env, "new-password-1\n", "user", "passwd", "nobody", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
		t.Fatalf("passwd unknown: %+v", r)
	}

	r = runCLI(t, env, "", "token", "create", "--user", "alice", "--name", "ci")
	if r.code != 0 {
		t.Fatalf("token: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, auth.TokenPrefix) || strings.Contains(token, " ") {
		t.Fatalf("last line is not a token: %q", r.stdout)
	}
	if r := runCLI(t, env, "", "token", "create", "--user", "nobody"); r.code != 1 {
		t.Fatalf("token for unknown user: %+v", r)
	}

	// What the commands wrote is what the store holds.
	st, err := store.Open(context.Background(), filepath.Join(env["FLOWNEXUS_DATA_DIR"], "flownexus.db"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUserByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !u.IsAdmin || auth.VerifyPassword(u.PasswordHash, "new-password-1") != nil {
		t.Fatalf("alice: admin %v, new password verifies: %v", u.IsAdmin, auth.VerifyPassword(u.PasswordHash, "new-password-1"))
	}
	tok, owner, err := st.GetAPITokenByHash(context.Background(), auth.HashToken(token))
	if err != nil || owner.Username != "alice" || tok.Name != "ci" {
		t.Fatalf("token lookup: %+v %+v %v", tok, owner, err)
	}
}

// TestBadStartIsOneLine checks that broken set-ups give one line of error
// and exit 1, never a panic.
func TestBadStartIsOneLine(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, []byte("x"), 0o600)
	notSQLite := filepath.Join(dir, "junk")
	os.MkdirAll(notSQLite, 0o750)
	os.WriteFile(filepath.Join(notSQLite, "flownexus.db"), bytes.Repeat([]byte("not a database "), 400), 0o600)

	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"data dir is a file", map[string]string{"FLOWNEXUS_DATA_DIR": notDir}, "data directory"},
		{"database is not SQLite", map[string]string{"FLOWNEXUS_DATA_DIR": notSQLite}, "not a SQLite database"},
		{"PostgreSQL unreachable", map[string]string{"FLOWNEXUS_DATA_DIR": dir,
			"FLOWNEXUS_DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2"}, "PostgreSQL"},
		{"secret missing with debug off", map[string]string{"FLOWNEXUS_DATA_DIR": dir, "FLOWNEXUS_DEBUG": "false"}, "secret key is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runCLI(t, tc.env, "", "migrate")
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
				t.Fatalf("want one line, got %d:\n%s", n+1, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "hunter2") {
				t.Fatalf("stderr %q, want %q", r.stderr, tc.want)
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	env := dataEnv(t)
	r := runCLI(t, env, "", "migrate")
	if r.code != 0 || !regexp.MustCompile(`schema version [1-9]`).MatchString(r.stdout) {
		t.Fatalf("migrate: %+v", r)
	}
	if r2 := runCLI(t, env, "", "migrate"); r2.code != 0 || r2.stdout != r.stdout {
		t.Fatalf("second migrate: %+v", r2)
	}
}

// TestServe starts the server on a free port, checks /healthz and stops it
// with the context, as a signal would.
func TestServe(t *testing.T) {
	env := serverEnv(t)
	env["FLOWNEXUS_LOG_FORMAT"] = "json"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: pw, Env: config.MapEnv(env)}, []string{"serve"})
		pw.Close()
	}()
	var logs []string
	sc := bufio.NewScanner(pr)
	addr := ""
	for addr == "" && sc.Scan() {
		logs = append(logs, sc.Text())
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if rec["msg"] == "HTTP listening" {
			addr, _ = rec["addr"].(string)
		}
	}
	if addr == "" {
		t.Fatalf("no listening line in logs:\n%s", strings.Join(logs, "\n"))
	}
	go io.Copy(io.Discard, pr)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"database":"ok"`) {
		t.Fatalf("healthz %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
