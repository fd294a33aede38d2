package app

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// coapClientResult runs coap-client-openssl and returns its log and
// whether it exited successfully, for exchanges expected to fail.
func coapClientResult(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Skip("coap-client-openssl not installed (Debian package libcoap3-bin; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-v", "6", "-B", "5"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestInteropLibcoapDTLS registers with libcoap's client over DTLS-PSK
// (the key as libcoap takes it, text), and checks that a wrong key, an
// unknown identity (alert unknown_psk_identity) and a plain-CoAP
// registration of the same endpoint are refused.
func TestInteropLibcoapDTLS(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPSListen = "127.0.0.1:0"
	s := startServer(t, cfg, Tuning{})
	const ep, identity, key = "urn:imei:490154203237519", "libcoap-dev", "libcoap-secret-key"
	if _, err := s.Credentials.Add(context.Background(), store.Actor{Name: "test"}, credential.AddRequest{
		Endpoint: ep, PSKIdentity: identity, PSKKey: []byte(key),
	}); err != nil {
		t.Fatal(err)
	}
	rd := fmt.Sprintf("coaps://%s/rd", s.CoAPSAddr())
	out := coapClient(t, "-u", identity, "-k", key, "-m", "post", "-t", "40", "-e", `</1/0>,</3/0>`,
		rd+"?ep="+ep+"&lt=60&lwm2m=1.1&b=U")
	if code := responseCode(t, out); code != "2.01" {
		t.Fatalf("register over DTLS: %s\n%s", code, out)
	}
	reg, ok := s.Registry.ByEndpoint(ep)
	if !ok || reg.Transport != registry.TransportDTLS {
		t.Fatalf("registration %+v %v, want one over DTLS", reg, ok)
	}

	out, err := coapClientResult(t, "-u", identity, "-k", "not-the-key-at-all", "-m", "post", "-t", "40",
		"-e", `</1/0>`, rd+"?ep="+ep+"&lt=60")
	if strings.Contains(out, "c:2.01") || respRE.MatchString(out) {
		t.Fatalf("wrong key got an answer (exit %v):\n%s", err, out)
	}
	// libcoap gives up on the session: the server answered the wrong
	// key's Finished with an alert or not at all.
	if !strings.Contains(out, "cannot send CoAP pdu") && !strings.Contains(strings.ToLower(out), "alert") {
		t.Fatalf("wrong key: no handshake failure in the log (exit %v):\n%s", err, out)
	}

	// OpenSSL names the alert: unknown_psk_identity (RFC 4279 §2).
	out, err = coapClientResult(t, "-u", "nobody-knows-me", "-k", key, "-m", "post", "-t", "40",
		"-e", `</1/0>`, rd+"?ep="+ep+"&lt=60")
	if !strings.Contains(strings.ToLower(out), "unknown psk identity") {
		t.Fatalf("unknown identity: no unknown_psk_identity alert in the log (exit %v):\n%s", err, out)
	}

	out = coapClient(t, "-m", "post", "-t", "40", "-e", `</1/0>`,
		fmt.Sprintf("coap://%s/rd?ep=%s&lt=60", s.CoAPAddr(), ep))
	if code := responseCode(t, out); code != "4.03" {
		t.Fatalf("plain-CoAP register of an endpoint with credentials: %s\n%s", code, out)
	}
}
