package devmgmt

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
)

// DefaultPMin is the pmin, in seconds, the default policy writes before
// it observes: a device in queue mode whose value changes all the time
// then wakes to notify at most once a minute.
const DefaultPMin = 60

// ObserveSpec is one entry of an auto-observe policy: a single path, or
// several paths observed together with Observe-Composite, and the
// notification attributes written to its paths before they are observed.
type ObserveSpec struct {
	Paths     []lwm2m.Path
	Composite bool
	// OwnAttrs says the entry has attributes of its own (Attrs, maybe
	// none), written in place of the policy's Attrs.
	OwnAttrs bool
	Attrs    linkformat.Attributes
}

// String formats the spec as ParseObserveSpecs reads it.
func (s ObserveSpec) String() string {
	parts := make([]string, len(s.Paths))
	for i, p := range s.Paths {
		parts[i] = p.String()
	}
	out := strings.Join(parts, "+")
	if s.OwnAttrs {
		out += "?" + strings.Join(s.Attrs.Query(), "&")
	}
	return out
}

// Policy is what the server observes on every device after it registers
// (Manager.AutoObserve).
type Policy struct {
	// Entries are observed in order; an empty list observes nothing.
	Entries []ObserveSpec
	// Attrs are written (Write-Attributes) to every path of an entry
	// without attributes of its own before the entry is observed; zero
	// Attrs write nothing.
	Attrs linkformat.Attributes
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

// DefaultPolicy is DefaultAutoObserve with pmin DefaultPMin written first.
func DefaultPolicy() Policy {
	pmin := int64(DefaultPMin)
	return Policy{Entries: DefaultAutoObserve(), Attrs: linkformat.Attributes{PMin: &pmin}}
}

// ParsePolicy parses an auto-observe list (ParseObserveSpecs) and the
// attributes written before each entry without its own
// (ParseObserveAttributes). Errors name the setting: --auto-observe or
// --auto-observe-attrs.
func ParsePolicy(list, attrs string) (Policy, error) {
	var p Policy
	var errs []error
	var err error
	if p.Entries, err = ParseObserveSpecs(list); err != nil {
		errs = append(errs, fmt.Errorf("auto-observe list (--auto-observe, FLOWNEXUS_AUTO_OBSERVE): %w", err))
	}
	if p.Attrs, err = ParseObserveAttributes(attrs); err != nil {
		errs = append(errs, fmt.Errorf("auto-observe attributes (--auto-observe-attrs, FLOWNEXUS_AUTO_OBSERVE_ATTRS): %w", err))
	}
	return p, errors.Join(errs...)
}

// ParseObserveSpecs parses an auto-observe list: entries separated by
// commas, each a path ("/3303/0/5700") or paths joined by "+" for one
// composite observation ("/3/0/9+/3/0/10"), optionally followed by the
// entry's own attributes as a query ("/3303/0/5700?pmin=300&pmax=3600";
// a bare "?" writes none). Spaces around entries are ignored; an empty
// string is an empty list.
func ParseObserveSpecs(s string) ([]ObserveSpec, error) {
	out := []ObserveSpec{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var spec ObserveSpec
		paths, query, hasQuery := strings.Cut(entry, "?")
		for ps := range strings.SplitSeq(paths, "+") {
			p, err := lwm2m.ParsePath(strings.TrimSpace(ps))
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", entry, err)
			}
			if p.IsRoot() {
				return nil, fmt.Errorf("entry %q: the root path cannot be observed", entry)
			}
			spec.Paths = append(spec.Paths, p)
		}
		if hasQuery {
			a, err := parseAttrs(query, "&")
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", entry, err)
			}
			spec.OwnAttrs, spec.Attrs = true, a
		}
		spec.Composite = len(spec.Paths) > 1
		out = append(out, spec)
	}
	return out, nil
}

// ParseObserveAttributes parses the notification attributes written
// before auto-observing: name=value pairs separated by commas or "&"
// ("pmin=60,pmax=3600"), as Write-Attributes takes them (a bare name
// removes that attribute); "" is none.
func ParseObserveAttributes(s string) (linkformat.Attributes, error) {
	return parseAttrs(strings.ReplaceAll(s, ",", "&"), "&")
}

func parseAttrs(s, sep string) (linkformat.Attributes, error) {
	var q []string
	for part := range strings.SplitSeq(s, sep) {
		if part = strings.TrimSpace(part); part != "" {
			q = append(q, part)
		}
	}
	a, err := linkformat.ParseQuery(q)
	if err != nil {
		return linkformat.Attributes{}, fmt.Errorf("attributes %q: %w", s, err)
	}
	if err := a.Validate(); err != nil {
		return linkformat.Attributes{}, fmt.Errorf("attributes %q: %w", s, err)
	}
	return a, nil
}

// step is one entry of the policy as it applies to one registration.
type step struct {
	paths     []lwm2m.Path
	composite bool
	attrs     linkformat.Attributes
}

func (s step) String() string {
	return ObserveSpec{Paths: s.paths, Composite: s.composite}.String()
}

// plan returns the steps of the policy that apply to reg, logging at
// Debug level what it leaves out: paths whose object (or instance, for
// deeper paths) the device did not register, composite entries and
// resource-instance paths on a LwM2M 1.0 device. A composite entry keeps
// those of its paths that apply.
func (m *Manager) plan(reg registry.Registration) []step {
	var steps []step
	for _, s := range m.auto.Entries {
		if s.Composite && !reg.Version.AtLeast(lwm2m.V1_1) {
			m.log.Debug("auto-observe entry skipped: composite observation needs LwM2M 1.1",
				"endpoint", reg.Endpoint, "path", s.String(), "lwm2m_version", string(reg.Version))
			continue
		}
		var ps []lwm2m.Path
		for _, p := range s.Paths {
			switch {
			case !applies(reg, p):
				m.log.Debug("auto-observe path skipped: not in the device's registration",
					"endpoint", reg.Endpoint, "path", p.String())
			case requireVersion(reg, "observe", false, p) != nil:
				m.log.Debug("auto-observe path skipped: resource instances need LwM2M 1.1",
					"endpoint", reg.Endpoint, "path", p.String(), "lwm2m_version", string(reg.Version))
			default:
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			continue
		}
		attrs := m.auto.Attrs
		if s.OwnAttrs {
			attrs = s.Attrs
		}
		steps = append(steps, step{paths: ps, composite: s.Composite, attrs: attrs})
	}
	return steps
}

// applies reports whether the device registered the object of p (and its
// instance, for a path below the object).
func applies(reg registry.Registration, p lwm2m.Path) bool {
	if p.Depth() >= 2 {
		return reg.HasInstance(p.Object(), p.Instance())
	}
	return reg.HasObject(p.Object())
}

// AutoObserve applies the policy to the device of reg, in the background,
// and returns at once; call it after the device has its Register answer.
//
// For each entry that applies (see plan) it writes the attributes to the
// entry's paths, then observes them; an entry whose Write-Attributes the
// device refuses is not observed, since observing without the attributes
// could keep a sleeping device awake. Requests go one at a time, and the
// first must be answered before the next is sent: when the device does
// not answer one (a timeout or a transport error) the rest of the policy
// is dropped. A Register from a forged source address therefore draws a
// single confirmable request (with its retransmissions) to that address.
// The run also ends when the registration ends or is replaced, and on
// Close. At most Config.AutoObserveRuns devices' runs go at once; the
// others wait their turn. Failures are logged once per entry, at Warn
// level.
func (m *Manager) AutoObserve(reg registry.Registration) {
	steps := m.plan(reg)
	if len(steps) == 0 {
		return
	}
	m.goBackground(func(base context.Context) {
		select {
		case m.autoRuns <- struct{}{}:
			defer func() { <-m.autoRuns }()
		case <-base.Done():
			return
		}
		origin := registry.Origin{Kind: registry.OriginAutoObserve}
		for i, s := range steps {
			cur, ok := m.reg.Get(reg.ID)
			if !ok {
				m.log.Debug("auto-observe ended: the registration ended or was replaced", "endpoint", reg.Endpoint)
				return
			}
			ctx, cancel := context.WithTimeout(WithOrigin(base, origin), m.timeout)
			err := m.applyStep(ctx, cur, s)
			cancel()
			switch {
			case err == nil:
			case base.Err() != nil:
				return // closing
			case errors.Is(err, ErrOffline):
				return
			case !answered(err):
				m.log.Warn("auto-observe stopped: the device did not answer, the rest of the policy is not sent",
					"endpoint", reg.Endpoint, "remote_addr", cur.Addr.String(), "path", s.String(),
					"not_sent", len(steps)-i-1, "err", err)
				return
			default:
				m.log.Warn("auto-observe failed", "endpoint", reg.Endpoint, "path", s.String(), "err", err)
			}
		}
	})
}

// applyStep writes the step's attributes to each of its paths and then
// observes them.
func (m *Manager) applyStep(ctx context.Context, reg registry.Registration, s step) error {
	var written string
	if !s.attrs.IsZero() {
		for _, p := range s.paths {
			if err := m.writeAttributes(ctx, reg, p, s.attrs); err != nil {
				return fmt.Errorf("%w (not observed: the attributes could not be set)", err)
			}
		}
		written = strings.Join(s.attrs.Query(), "&")
	}
	_, _, err := m.observeReg(ctx, reg, s.composite, s.paths, nil, written)
	return err
}

// answered reports whether err, from a request to a device, shows that
// the device received the request and answered it, or that nothing was
// sent: the address is then not in doubt.
func answered(err error) bool {
	var ce *CoAPError
	return err == nil || errors.As(err, &ce) || errors.Is(err, ErrBadResponse) ||
		errors.Is(err, ErrInvalid) || errors.Is(err, ErrVersion)
}

type originKey struct{}

// WithOrigin returns a context under which the observations a Manager
// makes are recorded with origin o (registry.Observation.Origin): the API
// passes the operator, the job queue the queued operation.
func WithOrigin(ctx context.Context, o registry.Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// originFrom returns the origin WithOrigin put in ctx, or the zero Origin.
func originFrom(ctx context.Context) registry.Origin {
	o, _ := ctx.Value(originKey{}).(registry.Origin)
	return o
}
