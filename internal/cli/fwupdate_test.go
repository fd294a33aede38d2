package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/store"
)

// fwRun runs one of the fw update subcommands with the environment env.
func fwRun(env map[string]string, fn func(context.Context, IO, []string) error, args ...string) (string, string, error) {
	var out, errb syncBuffer
	iox := IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Env: config.MapEnv(env)}
	err := fn(context.Background(), iox, args)
	return out.String(), errb.String(), err
}

// TestFwUpdateCommands: fw update writes an update and the job that runs
// it, for the server to carry out; fw updates lists it; fw cancel cancels
// it by endpoint or id; bad requests are clear errors.
func TestFwUpdateCommands(t *testing.T) {
	ctx := context.Background()
	env := dataEnv(t)
	st, err := store.Open(ctx, filepath.Join(env["FLOWNEXUS_DATA_DIR"], "flownexus.db"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const ep, bare = "urn:dev:fw-cli", "urn:dev:no-fw"
	for name, links := range map[string]string{ep: "</1/0>,</3/0>,</5/0>", bare: "</1/0>,</3/0>"} {
		if _, err := st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: name, RegistrationID: "r-" + name, ObjectLinks: links}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateFirmware(ctx, store.Firmware{Version: "1.1.0", Filename: "1.1.0.bin", Size: 3, SHA256: "00"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, stderr, err := fwRun(env, fwUpdate, ep, "--version", "1.1.0", "--method", "pull")
	if err != nil {
		t.Fatalf("fw update: %v (%s)", err, stderr)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || !strings.Contains(stderr, "started (pending)") {
		t.Fatalf("fw update printed %q / %q", out, stderr)
	}
	st = openData(t, env)
	if n, err := st.CountJobs(ctx, fwupdate.KindStep); err != nil || n != 1 {
		t.Errorf("step jobs waiting for the server: %d, %v", n, err)
	}
	up, err := st.GetFirmwareUpdate(ctx, id)
	if err != nil || !up.Active || up.State != fwupdate.StatePending || up.Method != fwupdate.MethodPull || up.Version != "1.1.0" {
		t.Fatalf("stored update: %+v, %v", up, err)
	}

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"again":            {[]string{ep, "--version", "1.1.0"}, "active firmware update"},
		"unknown endpoint": {[]string{"urn:nobody", "--version", "1.1.0"}, `unknown endpoint "urn:nobody"`},
		"unknown image":    {[]string{ep, "--version", "7"}, `unknown firmware image version "7"`},
		"no object 5":      {[]string{bare, "--version", "1.1.0"}, "no Firmware Update object (5)"},
		"bad method":       {[]string{ep, "--version", "1.1.0", "--method", "fax"}, `unknown method "fax"`},
		"no version":       {[]string{ep}, "usage"},
	} {
		_, _, err := fwRun(env, fwUpdate, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
		var fe *fwupdate.Error
		if name != "no version" && !errors.As(err, &fe) {
			t.Errorf("%s: %v is not a *fwupdate.Error", name, err)
		}
	}

	out, _, err = fwRun(env, fwUpdates, "--endpoint", ep)
	if err != nil || !strings.Contains(out, strconv.FormatInt(id, 10)) || !strings.Contains(out, "pending") || !strings.Contains(out, ep) {
		t.Errorf("fw updates: %q, %v", out, err)
	}
	out, _, err = fwRun(env, fwCancel, ep)
	if err != nil || !strings.Contains(out, "cancelled") {
		t.Fatalf("fw cancel: %q, %v", out, err)
	}
	if up, _ := st.GetFirmwareUpdate(ctx, id); up.Active || up.State != fwupdate.StateCancelled {
		t.Errorf("after cancel: %+v", up)
	}
	if _, _, err := fwRun(env, fwCancel, strconv.FormatInt(id, 10)); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("cancel twice: %v", err)
	}
	if _, _, err := fwRun(env, fwCancel, ep); err == nil || !strings.Contains(err.Error(), "no active firmware update") {
		t.Errorf("cancel by endpoint without update: %v", err)
	}
	out, _, err = fwRun(env, fwUpdates, "--active")
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("fw updates --active after cancel: %q, %v", out, err)
	}
}

// TestFwCampaignCommands: fw campaign create writes a campaign and its
// devices for the server to carry out; list, show, pause, resume and
// cancel work on it; bad requests are clear errors.
func TestFwCampaignCommands(t *testing.T) {
	ctx := context.Background()
	env := dataEnv(t)
	st, err := store.Open(ctx, filepath.Join(env["FLOWNEXUS_DATA_DIR"], "flownexus.db"), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"urn:c:1", "urn:c:2", "urn:c:3"} {
		if _, err := st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: name, RegistrationID: "r-" + name, ObjectLinks: "</5/0>"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateFirmware(ctx, store.Firmware{Version: "2.0", Filename: "2.0.bin", Size: 3, SHA256: "00"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, stderr, err := fwRun(env, fwCampaign, "create", "--version", "2.0", "--endpoints", "urn:c:1,urn:c:2", "--concurrency", "1", "--name", "two")
	if err != nil {
		t.Fatalf("create: %v (%s)", err, stderr)
	}
	id := strings.TrimSpace(out)
	if !strings.Contains(stderr, "for 2 devices") {
		t.Errorf("create said %q", stderr)
	}
	st = openData(t, env)
	if n, err := st.CountJobs(ctx, fwupdate.KindCampaign); err != nil || n != 1 {
		t.Errorf("campaign jobs waiting for the server: %d, %v", n, err)
	}
	if out, _, err := fwRun(env, fwCampaign, "list"); err != nil || !strings.Contains(out, "two") || !strings.Contains(out, "running") {
		t.Errorf("list: %q, %v", out, err)
	}
	if out, _, err := fwRun(env, fwCampaign, "show", id, "--devices"); err != nil || !strings.Contains(out, "urn:c:2") ||
		!strings.Contains(out, "waiting") || !strings.Contains(out, "concurrency 1") {
		t.Errorf("show: %q, %v", out, err)
	}
	for _, step := range []struct{ cmd, want string }{{"pause", "paused"}, {"resume", "running"}, {"cancel", "cancelled"}} {
		if out, _, err := fwRun(env, fwCampaign, step.cmd, id); err != nil || !strings.Contains(out, step.want) {
			t.Errorf("%s: %q, %v", step.cmd, out, err)
		}
	}
	if _, _, err := fwRun(env, fwCampaign, "resume", id); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("resume a cancelled campaign: %v", err)
	}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"unknown endpoint": {[]string{"create", "--version", "2.0", "--endpoints", "urn:c:1,urn:x"}, `urn:x`},
		"unknown image":    {[]string{"create", "--version", "3.0"}, `unknown firmware image version "3.0"`},
		"no version":       {[]string{"create"}, "usage"},
		"bad id":           {[]string{"pause", "x"}, "not a number"},
		"unknown campaign": {[]string{"show", "99"}, "unknown firmware campaign 99"},
		"unknown command":  {[]string{"explode", "1"}, "unknown fw campaign command"},
	} {
		if _, _, err := fwRun(env, fwCampaign, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
