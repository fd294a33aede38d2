package app

import (
	"context"
	"errors"
	"log/slog"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/fwupdate"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// errNoDevices is what an OfflineUpdater's parts answer a request to a
// device with: they never send one.
var errNoDevices = errors.New("this process does not talk to devices: the server does")

// OfflineUpdater returns a firmware Updater for commands that run beside
// the server, on its database: Start, Cancel and Get write and read the
// updates, their step jobs and their queued operations, which the
// server's job engine runs (on SQLite within its poll interval,
// jobs.DefaultPollInterval; on PostgreSQL at once). Its engine is never
// started and nothing it holds talks to a device.
func OfflineUpdater(st *store.Store, cfg config.Config, log *slog.Logger) (*fwupdate.Updater, error) {
	reg := registry.New(st, registry.Config{Logger: log})
	devices := devmgmt.New(devmgmt.Config{
		Registry: reg,
		Dial: func(context.Context, registry.Registration) (*udpclient.Conn, error) {
			return nil, errNoDevices
		},
		Types:  objects.Default().TypeOf,
		Logger: log,
	})
	engine, err := jobs.NewEngine(jobs.EngineConfig{Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	queue, err := jobs.New(jobs.Config{Engine: engine, Store: st, Registry: reg, Devices: devices, Logger: log})
	if err != nil {
		return nil, err
	}
	// Bases are the server's: left out here, a protocol asked for is
	// checked by the server's step.
	return fwupdate.New(fwupdate.Config{Store: st, Engine: engine, Queue: queue, Registry: reg, Devices: devices,
		Logger: log, FirmwareDir: cfg.Firmware()})
}
