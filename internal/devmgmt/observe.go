package devmgmt

import (
	"context"
	"errors"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/registry"
)

// observeReg observes paths on the device of reg, asking for format (nil:
// the one the registration suggests), and records the observation with the
// origin in ctx (WithOrigin) and attrs, the attributes the caller wrote
// before. Observing paths already observed renews the observation with its
// token. The values of the answer are stored like a notification.
func (m *Manager) observeReg(ctx context.Context, reg registry.Registration, composite bool, paths []lwm2m.Path, format *lwm2m.MediaType, attrs string) (registry.Observation, []lwm2m.Record, error) {
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
		if format != nil {
			f = *format
		}
		body, err := codec.EncodePaths(f, paths)
		if err != nil {
			return registry.Observation{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		req.format, req.body = f, body
	} else {
		base = paths[0]
		req.path = base
		f = lwm2m.ReadFormat(reg.Version, reg.Objects.ContentFormats, base)
		if format != nil {
			f = *format
		}
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
	resp, err := m.exchange(ctx, reg, req)
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

// cancelReg ends the observation of exactly paths (composite or not) on
// the device of reg: it sends the Observe deregistration with the
// observation's token and forgets the token whatever the device answers.
// It returns an error matching ErrNoObservation when the server holds no
// such observation.
func (m *Manager) cancelReg(ctx context.Context, reg registry.Registration, composite bool, paths []lwm2m.Path) error {
	endpoint := reg.Endpoint
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
	_, err := m.exchange(ctx, reg, req)
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
