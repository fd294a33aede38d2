package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/api"
	"github.com/flownexus/flownexus/internal/version"
)

// TestOpenAPICommand: `flownexus openapi` prints the server's document
// without a server or a database, as JSON, YAML or the reference page.
func TestOpenAPICommand(t *testing.T) {
	run := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), IO{Stdout: &out, Stderr: &errOut, Env: func(string) (string, bool) { return "", false }},
			append([]string{"openapi"}, args...))
		return out.String(), errOut.String(), code
	}
	out, errOut, code := run()
	if code != 0 {
		t.Fatalf("openapi: %d %s", code, errOut)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Info    struct{ Version string }  `json:"info"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") || doc.Info.Version != version.Version || doc.Paths["/api/v1/events/stream"]["get"] == nil {
		t.Fatalf("document: openapi %q, version %q, %d paths", doc.OpenAPI, doc.Info.Version, len(doc.Paths))
	}
	want, _ := json.Marshal(api.Document(version.Version))
	var a, b any
	_ = json.Unmarshal(want, &a)
	_ = json.Unmarshal([]byte(out), &b)
	if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
		t.Error("the printed document is not the API's")
	}

	if out, _, code := run("--yaml"); code != 0 || !strings.Contains(out, "\nopenapi: 3.1") || !strings.Contains(out, "/api/v1/events/stream:") {
		t.Errorf("--yaml: %d %.80q", code, out)
	}
	if out, _, code := run("--html"); code != 0 || !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "<style>") ||
		!strings.Contains(out, `id="stream-events"`) || strings.Contains(out, "<script") {
		t.Errorf("--html: %d %.80q", code, out)
	}
	if _, _, code := run("--yaml", "--html"); code != 2 {
		t.Errorf("--yaml --html: exit %d, want 2", code)
	}
	if _, _, code := run("extra"); code != 2 {
		t.Errorf("an argument: exit %d, want 2", code)
	}
}
