package devmgmt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/registry"
)

// ObserveSpec is one entry of an auto-observe list: a single path, or
// several paths observed together with Observe-Composite.
type ObserveSpec struct {
	Paths     []lwm2m.Path
	Composite bool
}

// String formats the spec as ParseObserveSpecs reads it.
func (s ObserveSpec) String() string {
	parts := make([]string, len(s.Paths))
	for i, p := range s.Paths {
		parts[i] = p.String()
	}
	return strings.Join(parts, "+")
}

// DefaultAutoObserve is the default auto-observe list: temperature and
// humidity sensor values, firmware update state and result.
func DefaultAutoObserve() []ObserveSpec {
	return []ObserveSpec{
		{Paths: []lwm2m.Path{lwm2m.NewPath(3303, 0, 5700)}},
		{Paths: []lwm2m.Path{lwm2m.NewPath(3304, 0, 5700)}},
		{Paths: []lwm2m.Path{lwm2m.NewPath(5, 0, 3)}},
		{Paths: []lwm2m.Path{lwm2m.NewPath(5, 0, 5)}},
	}
}

// ParseObserveSpecs parses an auto-observe list: entries separated by
// commas, each a path ("/3303/0/5700") or paths joined by "+" for one
// composite observation ("/3/0/9+/3/0/10"). Spaces around entries are
// ignored; an empty string is an empty list.
func ParseObserveSpecs(s string) ([]ObserveSpec, error) {
	out := []ObserveSpec{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var spec ObserveSpec
		for ps := range strings.SplitSeq(entry, "+") {
			p, err := lwm2m.ParsePath(strings.TrimSpace(ps))
			if err != nil {
				return nil, fmt.Errorf("auto-observe entry %q: %w", entry, err)
			}
			if p.IsRoot() {
				return nil, fmt.Errorf("auto-observe entry %q: the root path cannot be observed", entry)
			}
			spec.Paths = append(spec.Paths, p)
		}
		spec.Composite = len(spec.Paths) > 1
		out = append(out, spec)
	}
	return out, nil
}

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
		obs = registry.Observation{Token: string(tok), RegistrationID: reg.ID, Paths: paths, Composite: composite, Format: f}
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

// Observations returns the observations held on the endpoint's device.
func (m *Manager) Observations(endpoint string) []registry.Observation {
	reg, ok := m.reg.ByEndpoint(endpoint)
	if !ok {
		return nil
	}
	return m.reg.Observations(reg.ID)
}

// AutoObserve starts, in the background, the configured observations that
// apply to reg: a path is observed when the device announced its object
// (and its instance, for deeper paths); a composite entry observes those of
// its paths that apply; composite entries need LwM2M 1.1 or later. Failures
// are logged once per entry. It returns at once; call it after the
// device has its Register answer.
func (m *Manager) AutoObserve(reg registry.Registration) {
	var todo []ObserveSpec
	for _, s := range m.auto {
		var ps []lwm2m.Path
		for _, p := range s.Paths {
			if applies(reg, p) {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 || (s.Composite && !reg.Version.AtLeast(lwm2m.V1_1)) {
			continue
		}
		todo = append(todo, ObserveSpec{Paths: ps, Composite: s.Composite})
	}
	if len(todo) == 0 {
		return
	}
	m.goBackground(func(base context.Context) {
		for _, s := range todo {
			ctx, cancel := context.WithTimeout(base, m.timeout)
			var err error
			if s.Composite {
				_, _, err = m.ObserveComposite(ctx, reg.Endpoint, s.Paths)
			} else {
				_, _, err = m.Observe(ctx, reg.Endpoint, s.Paths[0])
			}
			cancel()
			if errors.Is(err, ErrOffline) {
				return
			}
			if err != nil {
				m.log.Warn("auto-observe failed", "endpoint", reg.Endpoint, "path", s.String(), "err", err)
			}
			if base.Err() != nil {
				return // closing
			}
		}
	})
}

func applies(reg registry.Registration, p lwm2m.Path) bool {
	if p.Depth() >= 2 {
		return reg.HasInstance(p.Object(), p.Instance())
	}
	return reg.HasObject(p.Object())
}
