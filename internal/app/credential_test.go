package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/flownexus/flownexus/internal/store"
)

func TestCredentialAPI(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	const key = "000102030405060708090a0b0c0d0e0f"
	var created map[string]any
	if code := s.call(t, "POST", "/api/v1/credentials", map[string]string{
		"endpoint": "urn:imei:1", "psk_identity": "dev-1", "psk_key": key,
	}, &created); code != http.StatusCreated || created["kind"] != "psk" || created["psk_identity"] != "dev-1" {
		t.Fatalf("create: %d %v", code, created)
	}
	if _, ok := created["psk_key"]; ok {
		t.Fatalf("create answer holds the key: %v", created)
	}
	if code := s.call(t, "POST", "/api/v1/credentials", map[string]string{
		"endpoint": "urn:imei:2", "cert_cn": "urn:imei:2",
	}, nil); code != http.StatusCreated {
		t.Fatalf("create x509: %d", code)
	}
	for name, c := range map[string]struct {
		body map[string]string
		want int
	}{
		"duplicate endpoint": {map[string]string{"endpoint": "urn:imei:1", "cert_cn": "x"}, http.StatusConflict},
		"key not hex":        {map[string]string{"endpoint": "urn:imei:3", "psk_identity": "i", "psk_key": "zz"}, http.StatusBadRequest},
		"no binding":         {map[string]string{"endpoint": "urn:imei:3"}, http.StatusBadRequest},
		"no endpoint":        {map[string]string{"cert_cn": "x"}, http.StatusBadRequest},
	} {
		var p map[string]any
		if code := s.call(t, "POST", "/api/v1/credentials", c.body, &p); code != c.want {
			t.Errorf("%s: %d %v, want %d", name, code, p, c.want)
		}
	}
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if code := s.call(t, "GET", "/api/v1/credentials", nil, &list); code != http.StatusOK || len(list.Items) != 2 {
		t.Fatalf("list: %d %v", code, list)
	}
	for _, it := range list.Items {
		for k, v := range it {
			if s, ok := v.(string); ok && strings.Contains(s, "0102030405") || k == "psk_key" {
				t.Fatalf("list shows key material: %v", it)
			}
		}
	}
	if code := s.call(t, "DELETE", "/api/v1/credentials/urn:imei:1", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := s.call(t, "DELETE", "/api/v1/credentials/urn:imei:1", nil, nil); code != http.StatusNotFound {
		t.Fatalf("delete twice: %d", code)
	}
	audit, err := s.Store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range audit {
		got = append(got, a.Action+" "+a.Target+" by "+a.Actor)
	}
	want := "credential.remove urn:imei:1 by admin,credential.add urn:imei:2 by admin,credential.add urn:imei:1 by admin"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit: %v", got)
	}
}
