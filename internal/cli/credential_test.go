package cli

import (
	"strings"
	"testing"
)

func TestCredential(t *testing.T) {
	env := dataEnv(t)
	const key = "000102030405060708090a0b0c0d0e0f"
	if r := runCLI(t, env, "", "credential", "add", "urn:imei:1", "--psk-identity", "dev-1", "--psk-key", key); r.code != 0 ||
		!strings.Contains(r.stdout, `added psk credential for "urn:imei:1"`) {
		t.Fatalf("add psk: %+v", r)
	}
	if r := runCLI(t, env, key+"\n", "credential", "add", "urn:imei:2", "--psk-identity", "dev-2", "--psk-key-stdin"); r.code != 0 {
		t.Fatalf("add psk from stdin: %+v", r)
	}
	if r := runCLI(t, env, "", "credential", "add", "urn:imei:3", "--cert-cn", "urn:imei:3"); r.code != 0 {
		t.Fatalf("add cert: %+v", r)
	}
	r := runCLI(t, env, "", "credential", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 4 || !strings.Contains(r.stdout, "dev-1") ||
		!strings.Contains(r.stdout, "x509") {
		t.Fatalf("list: %+v", r)
	}
	if strings.Contains(r.stdout, key) || strings.Contains(r.stdout, "0102030405") {
		t.Fatalf("list shows the key:\n%s", r.stdout)
	}
	for name, c := range map[string]struct {
		args []string
		code int
		want string
	}{
		"same endpoint":  {[]string{"add", "urn:imei:1", "--cert-cn", "x"}, 1, "already has a credential"},
		"same identity":  {[]string{"add", "urn:imei:9", "--psk-identity", "dev-1", "--psk-key", key}, 1, "in use"},
		"bad hex":        {[]string{"add", "urn:imei:9", "--psk-identity", "x", "--psk-key", "xyz"}, 1, "not hex"},
		"short key":      {[]string{"add", "urn:imei:9", "--psk-identity", "x", "--psk-key", "0102"}, 1, "PSK key is 2 bytes"},
		"no binding":     {[]string{"add", "urn:imei:9"}, 1, "give a PSK identity"},
		"no endpoint":    {[]string{"add", "--cert-cn", "x"}, 2, "credential add ENDPOINT"},
		"unknown":        {[]string{"rotate"}, 2, "unknown credential command"},
		"remove missing": {[]string{"remove", "urn:imei:9"}, 1, "has no credential"},
	} {
		r := runCLI(t, env, "", append([]string{"credential"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: %+v, want code %d and %q", name, r, c.code, c.want)
		}
	}
	if r := runCLI(t, env, "", "credential", "remove", "urn:imei:1"); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
	if r := runCLI(t, env, "", "credential", "list"); strings.Contains(r.stdout, "urn:imei:1") {
		t.Fatalf("removed credential still listed:\n%s", r.stdout)
	}
}
