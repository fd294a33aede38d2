package firmware_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
)

func TestUploadListGetRemove(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		im := newImages(t, st, 4096)
		data := pattern(3000)
		f := upload(t, im, "1.2.3+b-4_x", data)
		sum := sha256.Sum256(data)
		if f.Size != 3000 || f.SHA256 != hex.EncodeToString(sum[:]) || f.Filename != "1.2.3+b-4_x.bin" {
			t.Fatalf("uploaded %+v", f)
		}
		got, err := os.ReadFile(filepath.Join(im.Dir(), f.Filename))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("file: %d bytes, %v", len(got), err)
		}
		if files := join(dirFiles(t, im.Dir())); files != "1.2.3+b-4_x.bin" {
			t.Fatalf("directory holds %s", files)
		}
		upload(t, im, "2.0", pattern(10))
		list, err := im.List(ctx)
		if err != nil || len(list) != 2 || list[0].Version != "2.0" {
			t.Fatalf("list %+v %v", list, err)
		}
		if g, err := im.Get(ctx, "1.2.3+b-4_x"); err != nil || g.ID != f.ID {
			t.Fatalf("get %+v %v", g, err)
		}
		file, img, err := im.Open(ctx, "2.0.bin")
		if err != nil || img.Version != "2.0" {
			t.Fatalf("open: %+v %v", img, err)
		}
		file.Close()

		// An active update keeps the image; a finished one does not (it
		// keeps the version in its history).
		if _, err := st.ProvisionEndpoints(ctx, []string{"urn:imei:1"}, store.AuditEntry{Actor: "test", Action: "endpoint.create"}); err != nil {
			t.Fatal(err)
		}
		ep, err := st.GetEndpoint(ctx, "urn:imei:1")
		if err != nil {
			t.Fatal(err)
		}
		u, err := st.CreateFirmwareUpdate(ctx, store.FirmwareUpdate{EndpointID: ep.ID, FirmwareID: f.ID, State: "downloading"})
		if err != nil {
			t.Fatal(err)
		}
		if err := im.Remove(ctx, tester, f.Version); !errors.Is(err, firmware.ErrInUse) || !strings.Contains(err.Error(), "unfinished") {
			t.Fatalf("remove while updating: %v, want ErrInUse", err)
		}
		u.Active, u.State = false, "done"
		if _, err := st.UpdateFirmwareUpdate(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := im.Remove(ctx, tester, f.Version); err != nil {
			t.Fatalf("remove with a finished update: %v", err)
		}
		if got, err := st.GetFirmwareUpdate(ctx, u.ID); err != nil || got.FirmwareID != 0 || got.Version != f.Version {
			t.Fatalf("finished update after its image was removed: %+v %v", got, err)
		}
		if files := join(dirFiles(t, im.Dir())); files != "2.0.bin" {
			t.Fatalf("after remove the directory holds %s", files)
		}
		if _, err := im.Get(ctx, f.Version); !errors.Is(err, firmware.ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get removed: %v", err)
		}
		if err := im.Remove(ctx, tester, f.Version); !errors.Is(err, firmware.ErrNotFound) {
			t.Fatalf("remove twice: %v", err)
		}
		audit, err := st.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, a := range audit {
			actions = append(actions, a.Action+" "+a.Target)
		}
		for _, want := range []string{"firmware.upload 2.0", "firmware.upload 1.2.3+b-4_x", "firmware.remove 1.2.3+b-4_x"} {
			if !strings.Contains(join(actions), want) {
				t.Errorf("audit log %v lacks %q", actions, want)
			}
		}
	})
}

// failingReader returns n bytes, then an error: an upload cut off.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

// TestUploadBadInput: each bad upload is a clear error and leaves no
// file, no temporary file and no row.
func TestUploadBadInput(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		im := newImages(t, st, 1000)
		upload(t, im, "1.0", pattern(100))
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		for _, c := range []struct {
			name, version string
			ctx           context.Context
			r             io.Reader
			want          error
			msg           string
		}{
			{"empty", "2.0", ctx, bytes.NewReader(nil), firmware.ErrInvalid, "empty"},
			{"oversize", "2.0", ctx, bytes.NewReader(pattern(1001)), firmware.ErrTooLarge, "larger than 1000 bytes"},
			{"duplicate", "1.0", ctx, bytes.NewReader(pattern(10)), firmware.ErrExists, `"1.0"`},
			{"bad version", "../x", ctx, bytes.NewReader(pattern(10)), firmware.ErrInvalid, "version"},
			{"empty version", "", ctx, bytes.NewReader(pattern(10)), firmware.ErrInvalid, "version"},
			{"leading dot", ".x", ctx, bytes.NewReader(pattern(10)), firmware.ErrInvalid, "version"},
			{"long version", strings.Repeat("a", 65), ctx, bytes.NewReader(pattern(10)), firmware.ErrInvalid, "version"},
			{"cut off", "2.0", ctx, &failingReader{n: 500}, nil, "connection reset"},
			{"cancelled", "2.0", cancelled, bytes.NewReader(pattern(10)), context.Canceled, ""},
		} {
			_, err := im.Upload(c.ctx, tester, c.version, c.r)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: %v, want %v mentioning %q", c.name, err, c.want, c.msg)
			}
		}
		if files := join(dirFiles(t, im.Dir())); files != "1.0.bin" {
			t.Fatalf("directory holds %s, want 1.0.bin alone", files)
		}
		if list, _ := im.List(ctx); len(list) != 1 {
			t.Fatalf("%d rows, want 1", len(list))
		}
		// Exactly the maximum is fine.
		upload(t, im, "2.0", pattern(1000))
	})
}

// TestUploadReplacesOrphan: a file left by an upload that died before
// its row was inserted does not block the version.
func TestUploadReplacesOrphan(t *testing.T) {
	st := openStore(t, false)
	im := newImages(t, st, 1000)
	if err := os.WriteFile(filepath.Join(im.Dir(), "3.0.bin"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := pattern(50)
	upload(t, im, "3.0", data)
	got, _ := os.ReadFile(filepath.Join(im.Dir(), "3.0.bin"))
	if !bytes.Equal(got, data) {
		t.Fatalf("file holds %q", got)
	}
}

func TestOpenRefusesNames(t *testing.T) {
	st := openStore(t, false)
	im := newImages(t, st, 1000)
	upload(t, im, "1.0", pattern(10))
	// A file in the directory without a row is not served either.
	os.WriteFile(filepath.Join(im.Dir(), "9.9.bin"), []byte("x"), 0o644)
	for _, name := range []string{"", "1.0", "1.0.bin/", "../1.0.bin", "..%2f1.0.bin", "x/../1.0.bin", `..\1.0.bin`,
		"/etc/passwd", "1.0.bin\x00", ".bin", "9.9.bin", "2.0.bin", "1.0.BIN"} {
		if f, _, err := im.Open(context.Background(), name); !errors.Is(err, firmware.ErrNotFound) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q): %v, want ErrNotFound", name, err)
		}
	}
}
