package app

import (
	"context"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// TestRegisterPolicyKnown: with --register-policy known a provisioned
// endpoint registers and a stranger is refused, and nothing is stored for
// the stranger.
func TestRegisterPolicyKnown(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.RegisterPolicy = config.RegisterKnown
	s := startServer(t, cfg, Tuning{})
	f := newFleet(t, s, 2, func(c *simulator.Config) { c.RequestTimeout = 2 * time.Second })
	known, stranger := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	ctx := context.Background()
	if _, err := s.Store.ProvisionEndpoints(ctx, []string{known}, store.AuditEntry{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = f.Start(sctx) // the stranger's Register fails
	eventually(t, 5*time.Second, "the provisioned device registered", func() bool { return f.Device(0).Registered() })
	if f.Device(1).Registered() {
		t.Fatal("the stranger registered")
	}
	ep, err := s.Store.GetEndpoint(ctx, known)
	if err != nil || !ep.Online {
		t.Fatalf("provisioned endpoint: %+v, %v", ep, err)
	}
	if _, err := s.Store.GetEndpoint(ctx, stranger); err == nil {
		t.Fatal("the stranger was stored")
	}
}
