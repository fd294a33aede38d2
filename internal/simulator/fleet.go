package simulator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"

	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// runnerTick is how often go-coap's housekeeping (retransmissions, expiry
// of caches) runs for the devices' sockets.
const runnerTick = 250 * time.Millisecond

// Fleet runs Config.Devices devices. Create it with NewFleet; Start, then
// Stop (or Run, which does both). A Fleet is safe for concurrent use.
type Fleet struct {
	cfg        Config
	devices    []*Device
	byEndpoint map[string]*Device
	runnerStop chan struct{}

	runnerOnce   sync.Once
	sharedRunner periodic.Func

	mu    sync.Mutex
	state runState
}

// NewFleet validates cfg and creates its devices, not yet started.
func NewFleet(cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	f := &Fleet{cfg: cfg, byEndpoint: make(map[string]*Device, cfg.Devices), runnerStop: make(chan struct{})}
	reg := objects.Default()
	var runner periodic.Func = func(fn func(time.Time) bool) { f.runner()(fn) }
	for i := range cfg.Devices {
		d, err := newDevice(cfg, i, reg, runner)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byEndpoint[d.endpoint]; dup {
			return nil, fmt.Errorf("simulator: endpoint %q used twice", d.endpoint)
		}
		f.devices = append(f.devices, d)
		f.byEndpoint[d.endpoint] = d
	}
	return f, nil
}

// runner returns the fleet's shared go-coap housekeeping runner, started
// on first use and ended by Stop.
func (f *Fleet) runner() periodic.Func {
	f.runnerOnce.Do(func() { f.sharedRunner = periodic.New(f.runnerStop, runnerTick) })
	return f.sharedRunner
}

// Devices returns the fleet's devices, by index.
func (f *Fleet) Devices() []*Device { return f.devices }

// Device returns device i.
func (f *Fleet) Device(i int) *Device { return f.devices[i] }

// Lookup returns the device with the given endpoint name, or nil.
func (f *Fleet) Lookup(endpoint string) *Device { return f.byEndpoint[endpoint] }

// Stats sums the devices' Stats.
func (f *Fleet) Stats() Stats {
	var s Stats
	for _, d := range f.devices {
		s = s.Add(d.Stats())
	}
	return s
}

// forEach runs fn for every device, at most StartConcurrency at a time,
// stopping to hand out devices once ctx ends.
func (f *Fleet) forEach(ctx context.Context, fn func(*Device)) {
	sem := make(chan struct{}, f.cfg.StartConcurrency)
	var wg sync.WaitGroup
	for _, d := range f.devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(d)
		})
	}
	wg.Wait()
}

// Start starts the devices, at most StartConcurrency registering at a
// time, and returns once each has finished its first Register. Devices
// whose registration failed keep retrying (see Stats.Errors); Start fails
// only when sockets cannot be opened or ctx ends. Call Stop afterwards in
// every case.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	if f.state != stateNew {
		f.mu.Unlock()
		return errors.New("simulator: fleet already started")
	}
	f.state = stateRunning
	f.mu.Unlock()
	var mu sync.Mutex
	var errs []error
	f.forEach(ctx, func(d *Device) {
		err := d.Start(ctx)
		if err != nil && !errors.Is(err, ErrRegistration) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("simulator: %d of %d devices did not start: %w", len(errs), len(f.devices), errs[0])
	}
	return nil
}

// Stop stops every device (de-registering those registered) with bounded
// concurrency and releases the fleet's resources. It reports how many
// De-registers failed. Stop may be called once; later calls do nothing.
func (f *Fleet) Stop(ctx context.Context) error {
	f.mu.Lock()
	if f.state == stateStopped {
		f.mu.Unlock()
		return nil
	}
	f.state = stateStopped
	f.mu.Unlock()
	var mu sync.Mutex
	var errs []error
	f.forEach(context.Background(), func(d *Device) {
		if err := d.Stop(ctx); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	close(f.runnerStop)
	if len(errs) > 0 {
		return fmt.Errorf("simulator: %d of %d devices failed to de-register: %w", len(errs), len(f.devices), errs[0])
	}
	return nil
}

// Run starts the fleet, calls Config.Progress every ProgressInterval until
// ctx ends, then stops the fleet, allowing stopTimeout for the
// De-registers. It returns Start's or Stop's error.
func (f *Fleet) Run(ctx context.Context, stopTimeout time.Duration) error {
	progressDone := make(chan struct{})
	progressStop := make(chan struct{})
	go func() {
		defer close(progressDone)
		if f.cfg.Progress == nil {
			<-progressStop
			return
		}
		t := time.NewTicker(f.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-progressStop:
				f.cfg.Progress(f.Stats())
				return
			case <-t.C:
				f.cfg.Progress(f.Stats())
			}
		}
	}()
	err := f.Start(ctx)
	if err == nil {
		<-ctx.Done()
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	stopErr := f.Stop(sctx)
	close(progressStop)
	<-progressDone
	if err != nil && !errors.Is(err, ctx.Err()) {
		return err
	}
	return stopErr
}
