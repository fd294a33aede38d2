package app

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// coapClient runs libcoap's coap-client-openssl (Debian libcoap3-bin), a
// CoAP implementation the project did not write, and returns its exchange
// log (-v 6 prints each message sent and received).
func coapClient(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("coap-client-openssl")
	if err != nil {
		t.Skip("coap-client-openssl not installed (Debian package libcoap3-bin; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-v", "6", "-B", "10"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("coap-client %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// responseCode extracts the code of the response ("2.01") from the log.
var respRE = regexp.MustCompile(`t:ACK c:(\d\.\d\d)`)

func responseCode(t *testing.T, log string) string {
	t.Helper()
	m := respRE.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no response in coap-client output:\n%s", log)
	}
	return m[1]
}

func TestInteropLibcoapRegistration(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	rd := fmt.Sprintf("coap://%s/rd", s.CoAPAddr())
	ctx := context.Background()

	out := coapClient(t, "-m", "post", "-t", "40", "-e", `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>`,
		rd+"?ep=urn:imei:490154203237518&lt=60&lwm2m=1.1&b=U")
	if code := responseCode(t, out); code != "2.01" {
		t.Fatalf("register: %s\n%s", code, out)
	}
	m := regexp.MustCompile(`Location-Path:rd, Location-Path:([^ ,\]]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("register answer has no Location-Path rd/<id>:\n%s", out)
	}
	id := m[1]
	e, err := s.Store.GetEndpoint(ctx, "urn:imei:490154203237518")
	if err != nil || !e.Online || e.Lifetime != time.Minute || e.RegistrationID != id {
		t.Fatalf("stored endpoint after register: %+v %v", e, err)
	}

	if code := responseCode(t, coapClient(t, "-m", "post", rd+"/"+id+"?lt=120")); code != "2.04" {
		t.Fatalf("update: %s", code)
	}
	if e, _ = s.Store.GetEndpoint(ctx, e.Name); e.Lifetime != 2*time.Minute {
		t.Fatalf("lifetime after update: %v", e.Lifetime)
	}
	if code := responseCode(t, coapClient(t, "-m", "delete", rd+"/"+id)); code != "2.02" {
		t.Fatalf("de-register: %s", code)
	}
	if e, _ = s.Store.GetEndpoint(ctx, e.Name); e.Online {
		t.Fatal("endpoint still online after de-register")
	}
	if code := responseCode(t, coapClient(t, "-m", "post", rd+"/"+id+"?lt=120")); code != "4.04" {
		t.Fatalf("update of a removed registration: %s, want 4.04", code)
	}

	for _, bad := range []struct{ query, want string }{
		{"?lt=60&lwm2m=1.1", "4.00"},        // no ep
		{"?ep=x&lt=-5&lwm2m=1.1", "4.00"},   // negative lifetime
		{"?ep=x&lt=soon&lwm2m=1.1", "4.00"}, // lifetime not a number
		{"?ep=x&lt=60&lwm2m=9.9", "4.12"},   // version the server cannot serve
	} {
		out := coapClient(t, "-m", "post", "-t", "40", "-e", "</1/0>", rd+bad.query)
		if code := responseCode(t, out); code != bad.want {
			t.Errorf("register %s: %s, want %s\n%s", bad.query, code, bad.want, out)
		}
		if strings.Contains(out, "Location-Path") {
			t.Errorf("register %s created a registration", bad.query)
		}
	}
}
