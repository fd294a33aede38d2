package coapd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// TestDeviceTextRefusedAlike: endpoint names and other text a device sends
// that an engine could not store as text (NUL, invalid UTF-8, control
// characters) get 4.00 with a diagnostic on SQLite and
// PostgreSQL alike, nothing is stored and nothing is logged as a server
// error.
func TestDeviceTextRefusedAlike(t *testing.T) {
	for engine, db := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return t.TempDir() + "/db.sqlite" },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	} {
		t.Run(engine, func(t *testing.T) {
			s := newStack(t, db(t), newClock())
			cc := dial(t, s.addr)
			for name, qs := range map[string][]string{
				"NUL in ep":          {"ep=urn:dev:\x00a"},
				"invalid UTF-8 ep":   {"ep=urn:dev:\xff\xfe"},
				"control char in ep": {"ep=urn:dev:\x1b[31m"},
				"NUL in sms":         {"ep=urn:dev:sms", "sms=+1\x00"},
			} {
				if r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), append(qs, "lwm2m=1.1")...); r.code != codes.BadRequest || r.body == "" {
					t.Errorf("%s: %v %q, want 4.00 with a diagnostic", name, r.code, r.body)
				}
			}
			if r := post(t, cc, "/rd", message.AppLinkFormat, []byte("</3/0>,</\xff>"), "ep=urn:dev:links", "lwm2m=1.1"); r.code != codes.BadRequest {
				t.Errorf("invalid UTF-8 object links: %v %q, want 4.00", r.code, r.body)
			}
			if _, total, err := s.st.ListEndpoints(context.Background(), store.EndpointFilter{}); err != nil || total != 0 {
				t.Errorf("%d endpoints stored, %v", total, err)
			}
			if logs := s.logs.String(); strings.Contains(logs, "level=ERROR") {
				t.Errorf("server errors logged:\n%s", logs)
			}
		})
	}
}

// TestLifetimeCapped: a lifetime longer than Config.MaxLifetime is taken
// as the maximum, in Register and Update.
func TestLifetimeCapped(t *testing.T) {
	s := newStackWith(t, t.TempDir()+"/db.sqlite", newClock(), 0, false, func(c *coapd.Config) { c.MaxLifetime = 3600 })
	cc := dial(t, s.addr)
	loc := register(t, cc, "urn:dev:long", "lt=4294967295", "lwm2m=1.1")
	reg, _ := s.reg.ByEndpoint("urn:dev:long")
	if reg.Lifetime != 3600 {
		t.Fatalf("lifetime after Register %d, want 3600", reg.Lifetime)
	}
	if r := post(t, cc, loc, message.TextPlain, nil, "lt=99999999"); r.code != codes.Changed {
		t.Fatalf("update: %v", r.code)
	}
	if reg, _ = s.reg.ByEndpoint("urn:dev:long"); reg.Lifetime != 3600 {
		t.Fatalf("lifetime after Update %d, want 3600", reg.Lifetime)
	}
	if r := post(t, cc, loc, message.TextPlain, nil, "lt=60"); r.code != codes.Changed {
		t.Fatalf("update: %v", r.code)
	}
	if reg, _ = s.reg.ByEndpoint("urn:dev:long"); reg.Lifetime != 60 {
		t.Fatalf("lifetime after a short Update %d, want 60", reg.Lifetime)
	}
}

// TestRegisterPolicyKnown: with a Known function only the endpoints it
// knows register; a stranger gets 4.03 and nothing is stored for it.
func TestRegisterPolicyKnown(t *testing.T) {
	s := newStackWith(t, t.TempDir()+"/db.sqlite", newClock(), 0, false, func(c *coapd.Config) {
		c.Known = func(_ context.Context, ep string) (bool, error) { return ep == "urn:dev:friend", nil }
	})
	cc := dial(t, s.addr)
	register(t, cc, "urn:dev:friend", "lwm2m=1.1")
	if r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), "ep=urn:dev:stranger", "lwm2m=1.1"); r.code != codes.Forbidden {
		t.Fatalf("stranger: %v %q, want 4.03", r.code, r.body)
	}
	if _, err := s.st.GetEndpoint(context.Background(), "urn:dev:stranger"); err == nil {
		t.Error("the stranger was stored")
	}
}
