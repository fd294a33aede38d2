package coapd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/store"
)

// A device that registered over plain CoAP before its endpoint got
// credentials may no longer Send, update or de-register over plain CoAP:
// the check is made where each request is stored. Each refusal is
// audited.
func TestPlainRequestsOfEndpointGivenCredentials(t *testing.T) {
	s := newSecureStack(t)
	ctx := context.Background()
	pc := dial(t, s.udp)
	loc := register(t, pc, "urn:imei:late")
	senml := []byte(`[{"bn":"/3303/0/","n":"5700","v":1}]`)
	if r := post(t, pc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Changed {
		t.Fatalf("send before credentials: %v", r.code)
	}
	s.addPSK(t, "urn:imei:late", "late", pskKey)
	if r := post(t, pc, "/dp", message.AppSenmlJSON, senml); r.code != codes.Forbidden {
		t.Errorf("send after credentials: %v", r.code)
	}
	if r := post(t, pc, loc, message.TextPlain, nil, "lt=60"); r.code != codes.Forbidden {
		t.Errorf("update after credentials: %v", r.code)
	}
	if r := del(t, pc, loc); r.code != codes.Forbidden {
		t.Errorf("de-register after credentials: %v", r.code)
	}
	ep, err := s.st.GetEndpoint(ctx, "urn:imei:late")
	if err != nil || !ep.Online {
		t.Fatalf("endpoint after refused requests: %+v, %v", ep, err)
	}
	if evs, _ := s.st.ListEvents(ctx, ep.ID, 10); len(evs) != 1 {
		t.Errorf("%d Sends stored, want the one before credentials", len(evs))
	}
	audit, err := s.st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range audit {
		if a.Action == "device.refused" && a.Target == "urn:imei:late" &&
			strings.Contains(string(a.Detail), "endpoint has credentials: plain CoAP refused") {
			n++
		}
	}
	// The same refusal is audited at most once a minute.
	if n != 1 {
		t.Errorf("%d audit entries of the refusals, want 1", n)
	}
}
