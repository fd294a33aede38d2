package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"

	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
)

type imageJSON struct {
	Version      string `json:"version"`
	Filename     string `json:"filename"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	DownloadPath string `json:"download_path"`
	URL          string `json:"url"`
	CoAPURL      string `json:"coap_url"`
	CoAPSURL     string `json:"coaps_url"`
}

// postImage uploads body with contentType to /api/v1/firmware + query.
func (s *server) postImage(t *testing.T, query, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.base+"/api/v1/firmware"+query, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func multipartBody(t *testing.T, version string, data []byte) (string, []byte) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if version != "" {
		w.WriteField("version", version)
	}
	fw, _ := w.CreateFormFile("file", "image.bin")
	fw.Write(data)
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

// TestFirmwareImagesEndToEnd uploads images through the API (raw body and
// multipart form), downloads them from the server's HTTPS download server
// (trusting the development CA written to the data directory) and over
// CoAP, refuses bad uploads with clear errors and leaves nothing of them,
// and refuses to remove an image an update uses.
func TestFirmwareImagesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.FWListen = "127.0.0.1:0"
	cfg.FWMaxSize = 100_000
	s := startServer(t, cfg, Tuning{})
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 13)
	}
	code, b := s.postImage(t, "?version=1.0", "application/octet-stream", data)
	if code != http.StatusCreated {
		t.Fatalf("raw upload: %d %s", code, b)
	}
	var img imageJSON
	json.Unmarshal(b, &img)
	sum := sha256.Sum256(data)
	if img.Version != "1.0" || img.Size != int64(len(data)) || img.SHA256 != hex.EncodeToString(sum[:]) ||
		img.DownloadPath != "/binaries/1.0.bin" || img.URL != "https://"+s.FWAddr()+"/binaries/1.0.bin" ||
		img.CoAPURL != "coap://"+s.CoAPAddr().String()+"/fw/1.0.bin" {
		t.Fatalf("image %+v", img)
	}
	ct, mb := multipartBody(t, "2.0", data[:1000])
	if code, b := s.postImage(t, "", ct, mb); code != http.StatusCreated {
		t.Fatalf("multipart upload: %d %s", code, b)
	}

	// Bad uploads: clear errors, nothing left.
	for _, c := range []struct {
		name, query, ct string
		body            []byte
		code            int
		detail          string
	}{
		{"duplicate", "?version=1.0", "application/octet-stream", data, 409, `version exists`},
		{"empty", "?version=3.0", "application/octet-stream", nil, 400, "request body is required"},
		{"oversize", "?version=3.0", "application/octet-stream", make([]byte, 100_001), 413, "larger than 100000 bytes"},
		{"far oversize", "?version=3.0", "application/octet-stream", make([]byte, 300_000), 413, ""},
		{"no version", "", "application/octet-stream", data, 400, "version is required"},
		{"bad version", "?version=../x", "application/octet-stream", data, 400, "version"},
		{"json", "?version=3.0", "application/json", []byte(`{}`), 400, "Content-Type"},
	} {
		code, b := s.postImage(t, c.query, c.ct, c.body)
		if code != c.code || !strings.Contains(string(b), c.detail) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, b, c.code, c.detail)
		}
	}
	ct, mb = multipartBody(t, "", data)
	if code, b := s.postImage(t, "", ct, mb); code != 400 || !strings.Contains(string(b), "no field version") {
		t.Errorf("multipart without version: %d %s", code, b)
	}
	ct, mb = multipartBody(t, "3.0", nil)
	if code, b := s.postImage(t, "", ct, mb); code != 400 || !strings.Contains(string(b), `image \"3.0\" is empty`) {
		t.Errorf("multipart with an empty file: %d %s", code, b)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "firmware"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "1.0.bin,2.0.bin" {
		t.Fatalf("firmware directory holds %v", names)
	}

	var list struct{ Items []imageJSON }
	if code := s.call(t, "GET", "/api/v1/firmware", nil, &list); code != 200 || len(list.Items) != 2 {
		t.Fatalf("list: %d %+v", code, list)
	}
	var one imageJSON
	if code := s.call(t, "GET", "/api/v1/firmware/2.0", nil, &one); code != 200 || one.Size != 1000 {
		t.Fatalf("get: %d %+v", code, one)
	}
	var p problemJSON
	if code := s.call(t, "GET", "/api/v1/firmware/9.9", nil, &p); code != 404 || !strings.Contains(p.Detail, "no such firmware image") {
		t.Fatalf("get unknown: %d %+v", code, p)
	}

	// HTTPS download with the development CA, and over CoAP.
	pem, err := os.ReadFile(filepath.Join(dir, "fw-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(img.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.Header.Get("ETag") != `"`+img.SHA256+`"` {
		t.Fatalf("HTTPS download: %s, %d bytes", resp.Status, len(got))
	}
	cc, err := udp.Dial(s.CoAPAddr().String(), options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cresp, err := cc.Get(ctx, "/fw/1.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cresp.ReadBody(); !bytes.Equal(got, data) {
		t.Fatalf("CoAP download: %v, %d bytes", cresp.Code(), len(got))
	}

	// Removal: refused while an update uses the image.
	ctxb := context.Background()
	if _, err := s.Store.ProvisionEndpoints(ctxb, []string{"urn:imei:fw"}, store.AuditEntry{Actor: "test", Action: "endpoint.create"}); err != nil {
		t.Fatal(err)
	}
	ep, _ := s.Store.GetEndpoint(ctxb, "urn:imei:fw")
	f, _ := s.Store.GetFirmwareByVersion(ctxb, "1.0")
	if _, err := s.Store.CreateFirmwareUpdate(ctxb, store.FirmwareUpdate{EndpointID: ep.ID, FirmwareID: f.ID, State: "downloading"}); err != nil {
		t.Fatal(err)
	}
	if code := s.call(t, "DELETE", "/api/v1/firmware/1.0", nil, &p); code != 409 || p.Code != "in_use" {
		t.Fatalf("delete in use: %d %+v", code, p)
	}
	if code := s.call(t, "DELETE", "/api/v1/firmware/2.0", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := s.call(t, "DELETE", "/api/v1/firmware/2.0", nil, nil); code != 404 {
		t.Fatalf("delete twice: %d", code)
	}
	audit, _ := s.Store.ListAudit(ctxb, store.AuditFilter{})
	var actions []string
	for _, a := range audit {
		if strings.HasPrefix(a.Action, "firmware.") {
			actions = append(actions, a.Action+" "+a.Target+" by "+a.Actor)
		}
	}
	if strings.Join(actions, ";") != "firmware.remove 2.0 by admin;firmware.upload 2.0 by admin;firmware.upload 1.0 by admin" {
		t.Fatalf("audit %v", actions)
	}
}

// TestFirmwareServerCertificates: with debug off the firmware server
// needs --fw-cert/--fw-key or --fw-plain; with a certificate of files it
// serves HTTPS with it, with --fw-plain plain HTTP, at --fw-public-url.
func TestFirmwareServerCertificates(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.FWListen = "127.0.0.1:0"
	cfg.Debug = false
	cfg.SecretKey = "q0O3cM6Lk0t5pY1f0hJ6mX8bR3vW2zA9sD4gF7jK1lZ5xC8vB2nM6"
	if _, err := New(context.Background(), cfg, testLogger(t), Tuning{}); err == nil ||
		!strings.Contains(err.Error(), "--fw-cert and --fw-key (FLOWNEXUS_FW_CERT, FLOWNEXUS_FW_KEY), or --fw-plain") {
		t.Fatalf("no certificate, debug off: %v", err)
	}

	// A certificate of files (made here by the development CA).
	certDir := t.TempDir()
	if _, err := firmware.DevCertificate(certDir, []string{"fw.example.org"}); err != nil {
		t.Fatal(err)
	}
	cfg.FWCert, cfg.FWKey = filepath.Join(certDir, "fw-cert.pem"), filepath.Join(certDir, "fw-key.pem")
	cfg.FWPublicURL = "https://fw.example.org/images"
	s := startServer(t, cfg, Tuning{})
	if code, b := s.postImage(t, "?version=1.0", "application/octet-stream", []byte("image")); code != 201 ||
		!strings.Contains(string(b), `"url":"https://fw.example.org/images/binaries/1.0.bin"`) {
		t.Fatalf("upload: %d %s", code, b)
	}
	pem, _ := os.ReadFile(filepath.Join(certDir, firmware.DevCAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "fw.example.org"}}}
	resp, err := hc.Get("https://" + s.FWAddr() + "/binaries/1.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "image" {
		t.Fatalf("HTTPS with --fw-cert: %s %q", resp.Status, b)
	}
	if _, err := os.Stat(filepath.Join(dir, firmware.DevCAFile)); err == nil {
		t.Fatal("a development CA was made although --fw-cert was given")
	}
	s.stop()

	cfg.FWCert, cfg.FWKey, cfg.FWPublicURL, cfg.FWPlain = "", "", "", true
	s = startServer(t, cfg, Tuning{})
	resp, err = http.Get("http://" + s.FWAddr() + "/binaries/1.0.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "image" {
		t.Fatalf("plain HTTP: %s %q", resp.Status, b)
	}
	var img imageJSON
	if code := s.call(t, "GET", "/api/v1/firmware/1.0", nil, &img); code != 200 || img.URL != "http://"+s.FWAddr()+"/binaries/1.0.bin" {
		t.Fatalf("plain URL: %d %+v", code, img)
	}
}
