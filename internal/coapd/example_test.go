package coapd_test

import (
	"context"
	"log"
	"time"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// Example shows the wiring of the device-facing server and its shutdown
// order: store, ingest writer, registry, CoAP server, Manager; stop the
// CoAP server first, then the sweeper, then the writer, the store last.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, "data/flownexus.db", store.Config{})
	if err != nil {
		log.Fatal(err)
	}
	w := ingest.New(st, ingest.Config{})
	w.Start()
	reg := registry.New(st, registry.Config{Ingest: w, Grace: 10 * time.Second})
	types := objects.Default().TypeOf

	srv := coapd.New(coapd.Config{Registry: reg, Ingest: w, Types: types})
	mgr := devmgmt.New(devmgmt.Config{Registry: reg, Dial: srv.Dial, Types: types, Ingest: w})
	srv.Subscribe(func(a coapd.Activity) {
		if a.Kind == coapd.ActivityRegister {
			mgr.AutoObserve(a.Registration)
		}
	})
	if err := srv.Start(":5683"); err != nil {
		log.Fatal(err)
	}
	go reg.Run(ctx, time.Second)

	// ... serve until asked to stop, then:
	srv.Stop()
	cancel() // ends reg.Run
	w.Close()
	_ = st.Close()
}
