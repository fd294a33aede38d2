package cli

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flownexus/flownexus/internal/simulator"
)

// fleetStopTimeout bounds the De-registers when fleets stop.
const fleetStopTimeout = 15 * time.Second

// pskKeyLen is the size of the keys simulate and demo make: 128 bits, as
// TLS_PSK_WITH_AES_128_CCM_8 uses and nRF91 and Zephyr take.
const pskKeyLen = 16

// derivePSKKey returns the PSK key of endpoint under secret: the first 16
// bytes of HMAC-SHA256 with secret as the key and the endpoint name as
// the message. An operator computes the same key with
//
//	printf %s "$ENDPOINT" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/.*= //' | cut -c1-32
func derivePSKKey(secret, endpoint string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(endpoint))
	return m.Sum(nil)[:pskKeyLen]
}

// randomPSKKey returns a new random PSK key.
func randomPSKKey() []byte {
	k := make([]byte, pskKeyLen)
	rand.Read(k)
	return k
}

// fleetRun runs fleets side by side: it starts them, prints progress and
// moves devices to new source ports until ctx ends, then stops them all.
// Rebinding happens only between the end of Start and the beginning of
// Stop.
type fleetRun struct {
	fleets []*simulator.Fleet
	// progress, when set, is called every progressEvery and once more
	// after the fleets stopped.
	progress      func(w io.Writer, r *fleetRun)
	progressEvery time.Duration
	out           io.Writer
	// rebindEvery, when positive, moves every registered device to a new
	// source port at this interval, as a NAT that forgot its mappings.
	rebindEvery time.Duration

	rebinds atomic.Uint64
}

// stats sums the Stats of the fleets.
func (r *fleetRun) stats() simulator.Stats {
	var s simulator.Stats
	for _, f := range r.fleets {
		s = s.Add(f.Stats())
	}
	return s
}

// run runs the fleets until ctx ends and returns the first error of
// their Start (after stopping them all) or of their Stop.
func (r *fleetRun) run(ctx context.Context) error {
	var progress <-chan time.Time
	if r.progress != nil && r.progressEvery > 0 {
		t := time.NewTicker(r.progressEvery)
		defer t.Stop()
		progress = t.C
	}
	started := make(chan error, 1)
	go func() {
		errs := make([]error, len(r.fleets))
		var wg sync.WaitGroup
		for i, f := range r.fleets {
			wg.Go(func() {
				if err := f.Start(ctx); err != nil && !errors.Is(err, ctx.Err()) {
					errs[i] = err
				}
			})
		}
		wg.Wait()
		started <- errors.Join(errs...)
	}()
	var err error
starting:
	for {
		select {
		case err = <-started:
			break starting
		case <-progress:
			r.progress(r.out, r)
		}
	}
	if err == nil {
		var rebind <-chan time.Time
		if r.rebindEvery > 0 {
			t := time.NewTicker(r.rebindEvery)
			defer t.Stop()
			rebind = t.C
		}
	running:
		for {
			select {
			case <-ctx.Done():
				break running
			case <-progress:
				r.progress(r.out, r)
			case <-rebind:
				r.rebindAll()
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fleetStopTimeout)
	defer cancel()
	stopErrs := make([]error, len(r.fleets))
	var wg sync.WaitGroup
	for i, f := range r.fleets {
		wg.Go(func() { stopErrs[i] = f.Stop(sctx) })
	}
	wg.Wait()
	if r.progress != nil {
		r.progress(r.out, r)
	}
	if err != nil {
		return err
	}
	return errors.Join(stopErrs...)
}

// rebindAll moves every registered device to a new source port.
func (r *fleetRun) rebindAll() {
	for _, f := range r.fleets {
		for _, d := range f.Devices() {
			if d.Registered() && d.Rebind() == nil {
				r.rebinds.Add(1)
			}
		}
	}
}

// progressLine prints the fleets' state on one line; dtlsFleet, when not
// nil, is the part of them that talks DTLS.
func progressLine(dtlsFleet *simulator.Fleet) func(io.Writer, *fleetRun) {
	return func(w io.Writer, r *fleetRun) {
		s := r.stats()
		line := fmt.Sprintf("registered %d/%d", s.Registered, s.Devices)
		if dtlsFleet != nil {
			if d := dtlsFleet.Stats(); d.Devices < s.Devices {
				line += fmt.Sprintf(" (%d/%d over DTLS)", d.Registered, d.Devices)
			}
		}
		line += fmt.Sprintf(", updates %d, notifications %d, sends %d/%d acked, requests %d, errors %d",
			s.Updates, s.Notifications, s.SendsAcked, s.Sends, s.Requests, s.Errors)
		if dtlsFleet != nil {
			line += fmt.Sprintf(", handshakes %d", s.Handshakes)
		}
		if r.rebindEvery > 0 {
			line += fmt.Sprintf(", rebinds %d", r.rebinds.Load())
		}
		fmt.Fprintln(w, line)
	}
}
