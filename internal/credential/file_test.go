package credential

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/store"
)

const hexKey = "000102030405060708090a0b0c0d0e0f"

func TestReadPSKFile(t *testing.T) {
	in := "endpoint, psk_identity, psk_key\n" +
		"# a comment\n" +
		"\n" +
		"urn:imei:1 , dev-1, " + hexKey + "\n" +
		`"urn:dev:a,b",dev-2,00:01:02:03:04:05:06:07` + "\n"
	got, err := ReadPSKFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []PSKEntry{
		{Line: 4, Endpoint: "urn:imei:1", Identity: "dev-1", Key: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
		{Line: 5, Endpoint: "urn:dev:a,b", Identity: "dev-2", Key: []byte{0, 1, 2, 3, 4, 5, 6, 7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v\nwant %+v", got, want)
	}
	// What WritePSKFile writes reads back the same.
	var buf bytes.Buffer
	if err := WritePSKFile(&buf, got); err != nil {
		t.Fatal(err)
	}
	again, err := ReadPSKFile(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		again[i].Line = want[i].Line
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip %+v", again)
	}
	if _, err := ReadPSKFile(strings.NewReader("# nothing\n")); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("empty file: %v", err)
	}
}

// badFile has one good line and a bad one for every check; the bad keys
// are distinctive so that a message repeating them is caught.
const badFile = "urn:imei:1,dev-1," + hexKey + "\n" + // 1 good
	"urn:imei:2,dev-2\n" + // 2 too few fields
	"urn:imei:3,dev-3,zz11223344556677\n" + // 3 not hex
	"urn:imei:4,dev-4,aabbccdd\n" + // 4 short key
	",dev-5," + hexKey + "\n" + // 5 no endpoint
	"urn:imei:1,dev-6," + hexKey + "\n" + // 6 endpoint of line 1
	"urn:imei:7,dev-1," + hexKey + "\n" + // 7 identity of line 1
	"urn:imei:8,\"dev\"8," + hexKey + "\n" + // 8 broken quoting
	"urn:imei:9,dev-9," + hexKey + ",extra\n" // 9 too many fields

func TestReadPSKFileReportsEveryBadLine(t *testing.T) {
	_, err := ReadPSKFile(strings.NewReader(badFile))
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("err %v, want a *FileError", err)
	}
	wantLines := map[int]string{
		2: "2 fields, want 3", 3: "not hex", 4: "PSK key is 4 bytes", 5: "empty endpoint",
		6: "also on line 1", 7: `PSK identity "dev-1" is also on line 1`, 8: `"`, 9: "4 fields",
	}
	if len(fe.Lines) != len(wantLines) {
		t.Fatalf("%d bad lines, want %d:\n%v", len(fe.Lines), len(wantLines), err)
	}
	for _, l := range fe.Lines {
		if !strings.Contains(l.Error(), wantLines[l.Line]) {
			t.Errorf("line %d: %q, want %q", l.Line, l.Error(), wantLines[l.Line])
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "8 bad lines\nline 2: ") {
		t.Errorf("message starts %q", msg[:min(len(msg), 40)])
	}
	for _, secret := range []string{hexKey, "zz1122", "aabbccdd"} {
		if strings.Contains(msg, secret) {
			t.Errorf("the message shows key material %q:\n%s", secret, msg)
		}
	}
}

func TestImportPSK(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s := newService(t, st, "a secret key of sufficient length!!")
	by := store.Actor{Name: "cli"}
	if _, err := s.Add(ctx, by, AddRequest{Endpoint: "urn:imei:1", PSKIdentity: "dev-1", PSKKey: key16}); err != nil {
		t.Fatal(err)
	}

	// A bad line, an endpoint and an identity already stored: all three
	// reported, nothing added.
	in := "urn:imei:2,dev-2," + hexKey + "\n" +
		"urn:imei:1,dev-x," + hexKey + "\n" +
		"urn:imei:3,dev-3,0102\n" +
		"urn:imei:4,dev-1," + hexKey + "\n"
	n, err := s.ImportPSK(ctx, by, strings.NewReader(in))
	var fe *FileError
	if !errors.As(err, &fe) || n != 0 || len(fe.Lines) != 3 ||
		fe.Lines[0].Line != 2 || !strings.Contains(fe.Lines[0].Error(), "already has a credential") ||
		fe.Lines[1].Line != 3 ||
		fe.Lines[2].Line != 4 || !strings.Contains(fe.Lines[2].Error(), "in use") {
		t.Fatalf("ImportPSK = %d, %v", n, err)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Fatalf("a failed import added credentials: %+v", list)
	}

	in = "urn:imei:2,dev-2," + hexKey + "\nurn:imei:3,dev-3," + hexKey + "\n"
	if n, err := s.ImportPSK(ctx, by, strings.NewReader(in)); err != nil || n != 2 {
		t.Fatalf("ImportPSK = %d, %v", n, err)
	}
	ep, key, err := s.LookupPSK(ctx, "dev-3")
	if err != nil || ep != "urn:imei:3" || !bytes.Equal(key, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}) {
		t.Fatalf("LookupPSK(dev-3) = %q, %x, %v", ep, key, err)
	}
	audit, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(audit) != 3 || audit[0].Action != "credential.add" || audit[0].Target != "urn:imei:3" ||
		!strings.Contains(string(audit[0].Detail), `"via":"import"`) || strings.Contains(string(audit[0].Detail), hexKey) {
		t.Fatalf("audit %+v, %v", audit, err)
	}
	if _, err := s.ImportPSK(ctx, by, strings.NewReader("")); err == nil {
		t.Fatal("an empty import succeeded")
	}
}
