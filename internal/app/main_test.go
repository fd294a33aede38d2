package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/config"
)

// The child server: a test that must kill a server (such as
// TestQueuedOperationsSurviveKill) runs the test binary again as a server
// process (childEnv set to its data directory) and kills it with SIGKILL,
// which no clean shutdown code survives.
const childEnv = "FLOWNEXUS_TEST_CHILD_SERVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChildServer(dir))
	}
	os.Exit(m.Run())
}

// runChildServer serves until killed, after printing "ready <http addr>
// <coap addr>".
func runChildServer(dir string) int {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTPListen, cfg.CoAPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CoAPSListen, cfg.FWListen = "", ""
	cfg.SecretKey = config.DevSecretKey
	ctx := context.Background()
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), queueOptions())
	if err == nil {
		err = a.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child server:", err)
		return 1
	}
	fmt.Printf("ready %s %s\n", a.HTTPAddr(), a.CoAPAddr())
	select {}
}

// serverProcess is a server run by startServerProcess.
type serverProcess struct {
	cmd   *exec.Cmd
	http  string // base URL
	coap  string // CoAP/UDP address
	token string // an admin's API token

	killed bool
}

// startServerProcess runs the App in a child process (the test binary
// with childEnv set) on the SQLite database in dir, with an admin and an
// API token made first. It is killed when the test ends, unless the test
// killed it.
func startServerProcess(t testing.TB, dir string) *serverProcess {
	t.Helper()
	ctx := context.Background()
	st, err := OpenStore(ctx, testConfig(t, dir), testLogger(t), true)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword("admin-password", auth.Params{Memory: 1024, Time: 1, Threads: 1})
	u, err := st.CreateUser(ctx, "admin", hash, true)
	if err != nil {
		t.Fatal(err)
	}
	tok, tokHash, prefix := auth.NewToken()
	if _, err := st.CreateAPIToken(ctx, u.ID, "child", tokHash, prefix, time.Time{}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, token: tok}
	t.Cleanup(p.kill)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ready" {
			t.Fatalf("server process said %q", line)
		}
		p.http, p.coap = "http://"+f[1], f[2]
	case <-time.After(60 * time.Second):
		t.Fatal("server process not ready after 60 s")
	}
	return p
}

// kill ends the server process with SIGKILL, which no clean shutdown code
// survives, and waits for it.
func (p *serverProcess) kill() {
	if p.killed {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}
