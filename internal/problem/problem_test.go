package problem

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// TestFrom: each kind of domain error gets its status, code and a message
// free of the layers' prefixes; an unknown error is internal and says
// nothing but the request id.
func TestFrom(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("api: endpoint %q: %w", "urn:x", err) }
	for _, c := range []struct {
		err    error
		status int
		code   string
		detail string
	}{
		{wrap(fmt.Errorf("store: get endpoint %q: %w", "urn:x", store.ErrNotFound)), 404, "not_found", "not found"},
		{wrap(fmt.Errorf("%w: execute /3/0: want a resource", devmgmt.ErrInvalid)), 400, "bad_request", "invalid operation: execute /3/0: want a resource"},
		{wrap(devmgmt.ErrOffline), 409, "offline", "the endpoint is offline (not registered); queue the operation instead"},
		{wrap(fmt.Errorf("%w: read-composite needs LwM2M 1.1", devmgmt.ErrVersion)), 409, "lwm2m_version", "not supported by the device's LwM2M version: read-composite needs LwM2M 1.1"},
		{wrap(context.DeadlineExceeded), 504, "timeout", "the device did not answer in time"},
		{wrap(&devmgmt.CoAPError{Code: codes.NotFound}), 502, "device_error", "the device answered 4.04"},
		{wrap(fmt.Errorf("store: insert credential: %w: UNIQUE constraint failed: credential.endpoint_name", store.ErrConflict)), 409, "conflict", "conflicts with what is stored"},
		{wrap(&lwm2m.DecodeError{Format: lwm2m.FormatTLV, Offset: 3, Field: "length", Msg: "truncated"}), 502, "bad_response", ""},
	} {
		p, unexpected := From(c.err, "r1")
		if unexpected || p.Status != c.status || p.Code != c.code || (c.detail != "" && p.Detail != c.detail) {
			t.Errorf("From(%v) = %d %s %q (unexpected %v), want %d %s %q", c.err, p.Status, p.Code, p.Detail, unexpected, c.status, c.code, c.detail)
		}
		for _, leak := range []string{"store:", "devmgmt:", "api:", "UNIQUE", "urn:x"} {
			if strings.Contains(p.Detail, leak) {
				t.Errorf("From(%v): detail %q shows %q", c.err, p.Detail, leak)
			}
		}
	}
	p, unexpected := From(errors.New("store: list endpoints: sql: database is closed"), "abc123")
	if !unexpected || p.Status != http.StatusInternalServerError || p.Detail != "internal error (request abc123)" || p.RequestID != "abc123" {
		t.Errorf("unknown error: %+v, unexpected %v", p, unexpected)
	}
	own := BadRequest("give value or values")
	if p, _ := From(wrap(own), ""); p != own {
		t.Errorf("a Problem is passed through: %+v", p)
	}
}
