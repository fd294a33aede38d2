package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/app"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// loadReport is the part of "load run --json" the tests read.
type loadReport struct {
	Register   struct{ Requests, OK int }
	Send       struct{ Requests, OK int }
	Deregister struct{ Requests, OK int }
	// ServerRequests counts the auto-observe requests the devices answered.
	ServerRequests struct{ Observe int } `json:"server_requests"`
}

func loadRun(t *testing.T, args ...string) loadReport {
	t.Helper()
	r := runCLI(t, nil, "", append([]string{"load", "run", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("load run: %+v", r)
	}
	var rep loadReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("load run output: %v\n%s", err, r.stdout)
	}
	return rep
}

func TestLoadAgainstEcho(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: config.MapEnv(nil)},
			[]string{"load", "echo", "--listen", "127.0.0.1:0"})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "echo server on ") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	addr := strings.Fields(strings.TrimPrefix(out.String(), "echo server on "))[0]
	rep := loadRun(t, "--server", addr, "--devices", "20", "--send", "300ms", "--deregister")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("load echo exited %d: %s", code, errb.String())
	}
	if rep.Register.OK != 20 || rep.Send.OK < 20 || rep.Send.OK != rep.Send.Requests || rep.Deregister.OK != 20 {
		t.Errorf("report %+v", rep)
	}
}

// The load generator against the real server: every device registers,
// every acknowledged Send is in the store, and every device is offline
// after de-registering.
func TestLoadAgainstServer(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testLoadAgainstServer(t, "") })
	t.Run("postgres", func(t *testing.T) { testLoadAgainstServer(t, storetest.PostgresURL(t)) })
}

func testLoadAgainstServer(t *testing.T, dbURL string) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DatabaseURL = dbURL
	cfg.HTTPListen, cfg.CoAPListen, cfg.CoAPSListen, cfg.FWListen = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.SecretKey = config.DevSecretKey
	ctx := context.Background()
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler), app.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Stop(ctx)
	}()
	const devices = 40
	rep := loadRun(t, "--server", a.CoAPAddr().String(), "--devices", "40", "--send", "500ms", "--deregister")
	if rep.Register.OK != devices || rep.Send.OK == 0 || rep.Send.OK != rep.Send.Requests || rep.Deregister.OK != devices {
		t.Fatalf("report %+v", rep)
	}
	// The server auto-observes temperature, humidity, firmware state and
	// result in the background; some of it may still be under way when
	// the devices de-register.
	if rep.ServerRequests.Observe == 0 || rep.ServerRequests.Observe > 4*devices {
		t.Errorf("devices answered %d Observe requests, want 1 to %d", rep.ServerRequests.Observe, 4*devices)
	}
	eps, total, err := a.Store.ListEndpoints(ctx, store.EndpointFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if total != devices {
		t.Fatalf("%d endpoints stored, want %d", total, devices)
	}
	var sends int
	for _, ep := range eps {
		if ep.Online {
			t.Errorf("%s is online after de-registering", ep.Name)
		}
		var n int
		if err := a.Store.DB().QueryRowContext(ctx,
			"SELECT count(*) FROM event WHERE endpoint_id = $1 AND kind = 'send'", ep.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		sends += n
	}
	// Every acknowledged Send is stored.
	if sends != rep.Send.OK {
		t.Errorf("%d Sends stored, %d acknowledged", sends, rep.Send.OK)
	}
}
