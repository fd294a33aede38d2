package firmware

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestTimedFileReopens: a CoAP download body whose file was closed for
// idleness opens it again and reads on where it was; it never reads past
// the image's size.
func TestTimedFileReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "1.0.bin")
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// The file is longer than the image: only size bytes are served.
	if err := os.WriteFile(path, append(data, "trailing"...), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tf := newTimedFile(f, int64(len(data)))
	defer tf.close()
	first := make([]byte, 1024)
	if _, err := io.ReadFull(tf, first); err != nil {
		t.Fatal(err)
	}
	tf.close() // as the timer does
	if tf.f != nil {
		t.Fatal("file still open after close")
	}
	rest, err := io.ReadAll(tf)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); string(got) != string(data) {
		t.Fatalf("read %d bytes, want the %d of the image", len(got), len(data))
	}
	if _, err := tf.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	if n, _ := tf.Read(b); n != 10 || string(b) != string(data[1000:1010]) {
		t.Fatalf("after Seek: %d bytes %x", n, b)
	}
	if n, err := tf.Seek(0, io.SeekEnd); n != int64(len(data)) || err != nil {
		t.Fatalf("size %d %v", n, err)
	}
}
