package registry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// With CheckCredentials, a Register, Update or De-register of an endpoint
// that has credentials is refused where it is stored, with or without the
// ingest writer, and changes nothing; without it, it goes through.
func TestCheckCredentials(t *testing.T) {
	for _, batched := range []bool{false, true} {
		name := "direct"
		if batched {
			name = "ingest"
		}
		t.Run(name, func(t *testing.T) {
			_, st, c, _ := setup(t, 0)
			opts := registry.Config{Clock: c}
			if batched {
				w := ingest.New(st, ingest.Config{})
				w.Start()
				t.Cleanup(w.Close)
				opts.Ingest = w
			}
			r := registry.New(st, opts)
			ctx := context.Background()
			plain, err := r.Register(ctx, req("plain", 1000))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateCredential(ctx, store.Credential{EndpointName: "secure", Kind: store.CredentialX509, CertCN: "secure"}); err != nil {
				t.Fatal(err)
			}
			checked := req("secure", 1001)
			checked.CheckCredentials = true
			if _, err := r.Register(ctx, checked); !errors.Is(err, store.ErrCredentialRequired) {
				t.Fatalf("checked Register of an endpoint with credentials: %v", err)
			}
			if _, ok := r.ByEndpoint("secure"); ok {
				t.Error("refused Register is live")
			}
			if _, err := st.GetEndpoint(ctx, "secure"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("refused Register stored: %v", err)
			}
			// The endpoint that registered before it had credentials.
			if _, err := st.CreateCredential(ctx, store.Credential{EndpointName: "plain", Kind: store.CredentialX509, CertCN: "plain"}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Update(ctx, plain.ID, registry.UpdateRequest{Lifetime: 99, CheckCredentials: true}); !errors.Is(err, store.ErrCredentialRequired) {
				t.Errorf("checked Update: %v", err)
			}
			if _, err := r.DeregisterChecked(ctx, plain.ID); !errors.Is(err, store.ErrCredentialRequired) {
				t.Errorf("checked De-register: %v", err)
			}
			if got, ok := r.Get(plain.ID); !ok || got.Lifetime != plain.Lifetime {
				t.Errorf("after refused requests: %+v, %v", got, ok)
			}
			if ep, _ := st.GetEndpoint(ctx, "plain"); !ep.Online || ep.Lifetime != time.Duration(plain.Lifetime)*time.Second {
				t.Errorf("stored after refused requests: %+v", ep)
			}
			// Unchecked, as over DTLS.
			if _, err := r.Update(ctx, plain.ID, registry.UpdateRequest{Lifetime: 99}); err != nil {
				t.Errorf("unchecked Update: %v", err)
			}
			if _, err := r.Deregister(ctx, plain.ID); err != nil {
				t.Errorf("unchecked De-register: %v", err)
			}
			if _, err := r.Register(ctx, req("secure", 1001)); err != nil {
				t.Errorf("unchecked Register: %v", err)
			}
		})
	}
}

// Registers of many devices at once share the ingest writer's batches:
// the per-endpoint locks held while a write waits for its batch must not
// cap a batch at a few dozen registrations.
func TestConcurrentRegistersShareBatches(t *testing.T) {
	_, st, c, _ := setup(t, 0)
	w := ingest.New(st, ingest.Config{MaxDelay: 500 * time.Millisecond, MaxValues: 10000})
	w.Start()
	t.Cleanup(w.Close)
	r := registry.New(st, registry.Config{Clock: c, Ingest: w})
	const n = 256
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := r.Register(context.Background(), req(fmt.Sprintf("urn:dev:%d", i), uint16(1000+i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := w.Stats()
	if s.Registrations != n || s.Batches*64 >= s.Registrations {
		t.Errorf("%d registrations in %d batches, want more than 64 a batch", s.Registrations, s.Batches)
	}
}
