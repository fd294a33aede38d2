package devmgmt

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/codec"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
)

// Check is op.Check with the Manager's types (Config.Types): what Do
// checks before it sends anything. The job queue checks an operation with
// it when it is queued.
func (m *Manager) Check(op Operation) (Operation, error) {
	return op.Check(m.types)
}

// Do performs op on the device of endpoint and returns what it brought
// back. It checks op first (Check; an error matching ErrInvalid, nothing
// sent), looks the endpoint's registration up once (ErrOffline when there
// is none), refuses what the device's LwM2M version lacks (ErrVersion,
// nothing sent), dials the device under ctx and sends one request, or for
// write-attributes, observe and cancel-observe the one request of that
// operation. When ctx has no deadline, Config.Timeout bounds the whole
// call.
//
// The answer of an observe is stored like a notification; an observe of
// paths already observed renews the observation with its token; an
// observation is recorded with the origin WithOrigin put in ctx.
// Cancel-observe forgets the observation whatever the device answers, and
// is ErrNoObservation when none of exactly its paths is held.
func (m *Manager) Do(ctx context.Context, endpoint string, op Operation) (Result, error) {
	op, err := m.Check(op)
	if err != nil {
		return Result{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.timeout)
		defer cancel()
	}
	reg, err := m.registration(ctx, endpoint)
	if err != nil {
		return Result{}, err
	}
	return m.do(ctx, reg, op)
}

// do performs the checked operation op on the device of reg.
func (m *Manager) do(ctx context.Context, reg registry.Registration, op Operation) (Result, error) {
	var res Result
	var err error
	switch op.Kind {
	case KindRead:
		res.Values, err = m.read(ctx, reg, op.Paths[0], op.Format)
	case KindReadComposite:
		res.Values, err = m.readComposite(ctx, reg, op.Paths, op.Format)
	case KindDiscover:
		res.Links, err = m.discover(ctx, reg, op.Paths[0])
	case KindWrite:
		err = m.write(ctx, reg, op.Paths[0], op.Mode, op.Values, op.Format)
	case KindWriteComposite:
		err = m.writeComposite(ctx, reg, op.Values, op.Format)
	case KindWriteAttributes:
		err = m.writeAttributes(ctx, reg, op.Paths[0], op.Attributes)
	case KindExecute:
		err = m.execute(ctx, reg, op.Paths[0], op.Args)
	case KindCreate:
		res.Location, err = m.create(ctx, reg, op.Paths[0], op.Values, op.Format)
	case KindDelete:
		_, err = m.exchange(ctx, reg, request{op: "delete", code: codes.DELETE, path: op.Paths[0], observe: -1})
	case KindObserve:
		res.Observation, res.Values, err = m.observeReg(ctx, reg, false, op.Paths, op.Format, "")
	case KindObserveComposite:
		res.Observation, res.Values, err = m.observeReg(ctx, reg, true, slices.Clone(op.Paths), op.Format, "")
	case KindCancelObserve:
		err = m.cancelReg(ctx, reg, false, op.Paths)
	case KindCancelObserveComposite:
		err = m.cancelReg(ctx, reg, true, op.Paths)
	default:
		err = invalid("unknown kind %q", op.Kind) // Check refused it already
	}
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

func (m *Manager) read(ctx context.Context, reg registry.Registration, p lwm2m.Path, format *lwm2m.MediaType) ([]lwm2m.Record, error) {
	accept := lwm2m.ReadFormat(reg.Version, reg.Objects.ContentFormats, p)
	if format != nil {
		accept = *format
	}
	resp, err := m.exchange(ctx, reg, request{op: "read", code: codes.GET, path: p, observe: -1, accept: accept, hasAcc: true})
	if err != nil {
		return nil, err
	}
	return m.decode("read", reg.Endpoint, p, resp)
}

func (m *Manager) discover(ctx context.Context, reg registry.Registration, p lwm2m.Path) ([]linkformat.DiscoverLink, error) {
	resp, err := m.exchange(ctx, reg, request{op: "discover", code: codes.GET, path: p, observe: -1,
		accept: lwm2m.FormatLinkFormat, hasAcc: true})
	if err != nil {
		return nil, err
	}
	links, err := linkformat.ParseDiscover(resp.body)
	if err != nil {
		return nil, fmt.Errorf("devmgmt: discover %s on %q: %w: %w", p, reg.Endpoint, ErrBadResponse, err)
	}
	return links, nil
}

// write writes rs to p: one resource value, the instances of a
// multiple-instance resource, or several resources of an object instance.
func (m *Manager) write(ctx context.Context, reg registry.Registration, p lwm2m.Path, mode WriteMode, rs []lwm2m.Record, format *lwm2m.MediaType) error {
	f := lwm2m.WriteFormat(reg.Version, reg.Objects.ContentFormats, p, rs)
	if format != nil {
		f = *format
	}
	body, err := codec.Encode(f, p, rs)
	if err != nil {
		return fmt.Errorf("devmgmt: write %s on %q: %w: %w", p, reg.Endpoint, ErrInvalid, err)
	}
	code := codes.PUT
	if mode == Update {
		code = codes.POST
	}
	_, err = m.exchange(ctx, reg, request{op: "write", code: code, path: p, observe: -1, format: f, body: body})
	return err
}

// writeAttributes sets (and, with attrs.Unset, removes) the notification
// attributes of p.
func (m *Manager) writeAttributes(ctx context.Context, reg registry.Registration, p lwm2m.Path, attrs linkformat.Attributes) error {
	_, err := m.exchange(ctx, reg, request{op: "write-attributes", code: codes.PUT, path: p, observe: -1, queries: attrs.Query()})
	return err
}

// execute executes the resource at p with args (LwM2M execute arguments
// such as `0='abc',1`, sent as text/plain; "" sends none).
func (m *Manager) execute(ctx context.Context, reg registry.Registration, p lwm2m.Path, args string) error {
	req := request{op: "execute", code: codes.POST, path: p, observe: -1}
	if args != "" {
		req.format, req.body = lwm2m.FormatText, []byte(args)
	}
	_, err := m.exchange(ctx, reg, req)
	return err
}

// create creates an object instance under the object p with the values
// rs and returns the path of the created instance: the one the device
// reports in Location-Path, else the one the records name.
func (m *Manager) create(ctx context.Context, reg registry.Registration, p lwm2m.Path, rs []lwm2m.Record, format *lwm2m.MediaType) (lwm2m.Path, error) {
	inst := rs[0].Path.Truncate(2)
	f := lwm2m.ReadFormat(reg.Version, reg.Objects.ContentFormats, p)
	if format != nil {
		f = *format
	}
	body, err := codec.Encode(f, p, rs)
	if err != nil {
		return lwm2m.Path{}, fmt.Errorf("devmgmt: create under %s on %q: %w: %w", p, reg.Endpoint, ErrInvalid, err)
	}
	resp, err := m.exchange(ctx, reg, request{op: "create", code: codes.POST, path: p, observe: -1, format: f, body: body})
	if err != nil {
		return lwm2m.Path{}, err
	}
	if loc := strings.TrimPrefix(resp.location, strings.TrimSuffix(reg.Objects.RootPath, "/")); loc != "" {
		if !strings.HasPrefix(loc, "/") {
			loc = "/" + loc
		}
		if lp, err := lwm2m.ParsePath(loc); err == nil && lp.IsInstance() && lp.Object() == p.Object() {
			return lp, nil
		}
	}
	return inst, nil
}

// readComposite reads several paths in one request (LwM2M 1.1+, CoAP
// FETCH on the root path with a SenML list of names).
func (m *Manager) readComposite(ctx context.Context, reg registry.Registration, paths []lwm2m.Path, format *lwm2m.MediaType) ([]lwm2m.Record, error) {
	if err := requireVersion(reg, "read-composite", true); err != nil {
		return nil, err
	}
	f := lwm2m.CompositeFormat(reg.Objects.ContentFormats)
	if format != nil {
		f = *format
	}
	body, err := codec.EncodePaths(f, paths)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	resp, err := m.exchange(ctx, reg, request{op: "read-composite", code: codes.FETCH, composite: true, observe: -1,
		format: f, body: body, accept: f, hasAcc: true})
	if err != nil {
		return nil, err
	}
	return m.decode("read-composite", reg.Endpoint, lwm2m.Root, resp)
}

// writeComposite writes values of several resources in one request (LwM2M
// 1.1+, CoAP iPATCH on the root path with a SenML pack).
func (m *Manager) writeComposite(ctx context.Context, reg registry.Registration, rs []lwm2m.Record, format *lwm2m.MediaType) error {
	if err := requireVersion(reg, "write-composite", true); err != nil {
		return err
	}
	f := lwm2m.CompositeFormat(reg.Objects.ContentFormats)
	if format != nil {
		f = *format
	}
	body, err := codec.Encode(f, lwm2m.Root, rs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	_, err = m.exchange(ctx, reg, request{op: "write-composite", code: codes.IPATCH, composite: true, observe: -1,
		format: f, body: body})
	return err
}
