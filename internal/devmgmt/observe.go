package devmgmt

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/registry"
)

// Observe starts observing p on the endpoint's device and returns the
// observation and the current value(s), which are stored like a
// notification. Observing a path already observed renews the observation
// with its token.
func (m *Manager) Observe(ctx context.Context, endpoint string, p lwm2m.Path) (registry.Observation, []lwm2m.Record, error) {
	if p.IsRoot() {
		return registry.Observation{}, nil, fmt.Errorf("%w: observe of the root path", ErrInvalid)
	}
	return m.observe(ctx, endpoint, false, []lwm2m.Path{p})
}

// ObserveComposite starts one observation of several paths (LwM2M 1.1+,
// CoAP FETCH with Observe on the root path).
func (m *Manager) ObserveComposite(ctx context.Context, endpoint string, paths []lwm2m.Path) (registry.Observation, []lwm2m.Record, error) {
	if len(paths) == 0 {
		return registry.Observation{}, nil, fmt.Errorf("%w: observe-composite of no paths", ErrInvalid)
	}
	return m.observe(ctx, endpoint, true, slices.Clone(paths))
}

func (m *Manager) observe(ctx context.Context, endpoint string, composite bool, paths []lwm2m.Path) (registry.Observation, []lwm2m.Record, error) {
	reg, err := m.registration(ctx, endpoint)
	if err != nil {
		return registry.Observation{}, nil, err
	}
	return m.observeReg(ctx, reg, composite, paths, "")
}

// observeReg observes paths on the device of reg and records the
// observation with the origin in ctx (WithOrigin) and attrs, the
// attributes the caller wrote before.
func (m *Manager) observeReg(ctx context.Context, reg registry.Registration, composite bool, paths []lwm2m.Path, attrs string) (registry.Observation, []lwm2m.Record, error) {
	endpoint := reg.Endpoint
	op := "observe"
	if composite {
		op = "observe-composite"
	}
	if err := requireVersion(reg, op, composite, paths...); err != nil {
		return registry.Observation{}, nil, err
	}
	req := request{op: "observe", code: codes.GET, observe: 0}
	base := lwm2m.Root
	var f lwm2m.MediaType
	if composite {
		req.op, req.code, req.composite = "observe-composite", codes.FETCH, true
		f = lwm2m.CompositeFormat(reg.Objects.ContentFormats)
		body, err := codec.EncodePaths(f, paths)
		if err != nil {
			return registry.Observation{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		req.format, req.body = f, body
	} else {
		base = paths[0]
		req.path = base
		f = lwm2m.ReadFormat(reg.Version, reg.Objects.ContentFormats, base)
	}
	req.accept, req.hasAcc = f, true

	obs, renew := m.reg.FindObservation(reg.ID, composite, paths)
	if !renew {
		tok, err := message.GetToken()
		if err != nil {
			return registry.Observation{}, nil, err
		}
		obs = registry.Observation{Token: string(tok), RegistrationID: reg.ID, Paths: paths, Composite: composite, Format: f,
			Origin: originFrom(ctx), Attributes: attrs}
		// The token is known before the request leaves, so a
		// notification racing the response is routed too.
		if err := m.reg.AddObservation(ctx, obs); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return registry.Observation{}, nil, fmt.Errorf("%w: %q", ErrOffline, endpoint)
			}
			return registry.Observation{}, nil, err
		}
	}
	req.token = message.Token(obs.Token)
	resp, err := m.exchangeReg(ctx, reg, req)
	if err == nil && !resp.observed {
		err = fmt.Errorf("devmgmt: %s %s on %q: %w: the device answered without Observe and does not notify",
			req.op, base, endpoint, ErrBadResponse)
	}
	var recs []lwm2m.Record
	if err == nil {
		recs, err = m.decode(req.op, endpoint, base, resp)
	}
	if err != nil {
		m.reg.RemoveObservation(obs.Token)
		return registry.Observation{}, nil, err
	}
	if m.ingest != nil && len(recs) > 0 {
		item := ingest.Report(reg.EndpointID, ingest.KindNotify, recs, m.reg.Now())
		if err := m.ingest.Write(ctx, item); err != nil {
			return obs, recs, fmt.Errorf("devmgmt: %s %s on %q: storing the values: %w", req.op, base, endpoint, err)
		}
	}
	return obs, recs, nil
}

// Cancel ends the observation of p: it sends the Observe deregistration
// with the observation's token and forgets the token whatever the device
// answers. It returns an error matching ErrNoObservation when p is not
// observed.
func (m *Manager) Cancel(ctx context.Context, endpoint string, p lwm2m.Path) error {
	return m.cancel(ctx, endpoint, false, []lwm2m.Path{p})
}

// CancelComposite ends a composite observation of exactly paths.
func (m *Manager) CancelComposite(ctx context.Context, endpoint string, paths []lwm2m.Path) error {
	return m.cancel(ctx, endpoint, true, paths)
}

func (m *Manager) cancel(ctx context.Context, endpoint string, composite bool, paths []lwm2m.Path) error {
	reg, err := m.registration(ctx, endpoint)
	if err != nil {
		return err
	}
	op := "cancel"
	if composite {
		op = "cancel-composite"
	}
	if err := requireVersion(reg, op, composite, paths...); err != nil {
		return err
	}
	obs, ok := m.reg.FindObservation(reg.ID, composite, paths)
	if !ok {
		return fmt.Errorf("%w: %v on %q", ErrNoObservation, paths, endpoint)
	}
	m.reg.RemoveObservation(obs.Token)
	req := request{op: "cancel", code: codes.GET, observe: 1, token: message.Token(obs.Token),
		accept: obs.Format, hasAcc: true}
	if composite {
		body, err := codec.EncodePaths(obs.Format, paths)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		req.op, req.code, req.composite, req.format, req.body = "cancel-composite", codes.FETCH, true, obs.Format, body
	} else {
		req.path = paths[0]
	}
	_, err = m.exchangeReg(ctx, reg, req)
	return err
}

// Observations returns the observations held on the endpoint's device,
// from memory only: none for a registration not looked up since a restart
// (ListObservations restores it).
func (m *Manager) Observations(endpoint string) []registry.Observation {
	reg, ok := m.reg.ByEndpoint(endpoint)
	if !ok {
		return nil
	}
	return m.reg.Observations(reg.ID)
}

// ListObservations returns the observations held on the endpoint's
// device, oldest first, restoring its registration from the store when
// the server restarted since the device last talked. It returns an error
// matching ErrOffline when the endpoint has no live registration (and so
// no observations).
func (m *Manager) ListObservations(ctx context.Context, endpoint string) ([]registry.Observation, error) {
	reg, err := m.registration(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	return m.reg.Observations(reg.ID), nil
}
