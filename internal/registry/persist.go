package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// The registration history resources (object 10240, instance 0, type time).
var (
	PathRegistered   = lwm2m.NewPath(10240, 0, 0)
	PathDeregistered = lwm2m.NewPath(10240, 0, 1)
	PathUpdated      = lwm2m.NewPath(10240, 0, 2)
)

// history writes one registration history value.
func (r *Registry) history(ctx context.Context, endpointID int64, p lwm2m.Path, t time.Time) error {
	return r.write(ctx, store.IngestItem{Values: []store.ResourceValue{historyValue(endpointID, p, t)}})
}

// historyValue is the registration history value of path p at t.
func historyValue(endpointID int64, p lwm2m.Path, t time.Time) store.ResourceValue {
	return store.ResourceValue{EndpointID: endpointID, Path: p, Value: lwm2m.Time(t), DeviceTime: t, ReceivedAt: t}
}

// write stores it, batched with the server's other writes through the
// ingest writer when the registry has one, else in a transaction of its
// own. An item its NoCredential refuses is an error matching
// store.ErrCredentialRequired.
func (r *Registry) write(ctx context.Context, it store.IngestItem) error {
	if r.ingest != nil {
		return r.ingest.Write(ctx, it)
	}
	items := []store.IngestItem{it}
	if err := r.st.IngestBatch(ctx, items); err != nil {
		return err
	}
	if items[0].Refused {
		return fmt.Errorf("endpoint %q: %w", it.NoCredential, store.ErrCredentialRequired)
	}
	return nil
}

// noCredential is the NoCredential of a request for endpoint: the
// endpoint when check is set.
func noCredential(check bool, endpoint string) string {
	if check {
		return endpoint
	}
	return ""
}

// persistRegister records a Register: the endpoint row, the deletion of
// the observations of the registration it replaces and /10240/0/0, in
// one write.
func (r *Registry) persistRegister(ctx context.Context, reg Registration, links string, checkCredentials bool) (int64, error) {
	var ep store.Endpoint
	err := r.write(ctx, store.IngestItem{
		NoCredential: noCredential(checkCredentials, reg.Endpoint),
		Register: &store.EndpointRegistration{
			Name:           reg.Endpoint,
			RegistrationID: reg.ID,
			Address:        addrString(reg.Addr),
			Lifetime:       time.Duration(reg.Lifetime) * time.Second,
			Binding:        reg.Binding,
			LwM2MVersion:   string(reg.Version),
			SMSNumber:      reg.SMS,
			QueueMode:      reg.Queue,
			ObjectLinks:    links,
			Transport:      reg.Transport.storeTransport(),
			Time:           reg.UpdatedAt,
		},
		Registered: &ep,
		Values:     []store.ResourceValue{historyValue(0, PathRegistered, reg.UpdatedAt)},
	})
	return ep.ID, err
}

// persistUpdate records an Update and /10240/0/2 in one write.
func (r *Registry) persistUpdate(ctx context.Context, reg Registration, hasLinks bool, links string, checkCredentials bool) error {
	lt := time.Duration(reg.Lifetime) * time.Second
	tr := reg.Transport.storeTransport()
	u := store.EndpointUpdate{
		Address:   addrString(reg.Addr),
		Lifetime:  &lt,
		Binding:   &reg.Binding,
		SMSNumber: &reg.SMS,
		QueueMode: &reg.Queue,
		Transport: &tr,
		Time:      reg.UpdatedAt,
	}
	if hasLinks {
		u.ObjectLinks = &links
	}
	return r.write(ctx, store.IngestItem{
		NoCredential: noCredential(checkCredentials, reg.Endpoint),
		Update:       &store.RegistrationUpdate{EndpointID: reg.EndpointID, EndpointUpdate: u},
		Values:       []store.ResourceValue{historyValue(reg.EndpointID, PathUpdated, reg.UpdatedAt)},
	})
}

// persistEnd records the end of a registration: the endpoint offline, the
// registration's observations deleted and /10240/0/1, in one write.
func (r *Registry) persistEnd(ctx context.Context, reg Registration, t time.Time, checkCredentials bool) error {
	return r.write(ctx, store.IngestItem{
		NoCredential: noCredential(checkCredentials, reg.Endpoint),
		End:          &store.RegistrationEnd{EndpointID: reg.EndpointID, RegistrationID: reg.ID},
		Values:       []store.ResourceValue{historyValue(reg.EndpointID, PathDeregistered, t)},
	})
}

// persistObservation stores an observation.
func (r *Registry) persistObservation(ctx context.Context, o store.Observation) error {
	return r.write(ctx, store.IngestItem{Observe: &o})
}

// deleteObservation deletes the stored observation with the given token;
// one not stored is no error.
func (r *Registry) deleteObservation(ctx context.Context, token []byte) error {
	return r.write(ctx, store.IngestItem{Unobserve: token})
}

// sweepStore expires online endpoints of the store that have no live
// registration in memory (registrations made before a restart whose
// devices never came back), deleting their observations and recording
// /10240/0/1 for each.
func (r *Registry) sweepStore(ctx context.Context, now time.Time) error {
	eps, err := r.st.ExpireEndpoints(ctx, now.Add(-r.grace))
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range eps {
		r.log.Info("registration expired", "endpoint", ep.Name, "registration", ep.RegistrationID,
			"lifetime", int64(ep.Lifetime/time.Second), "last_update", ep.LastSeen)
		// Stale only: the endpoint may have registered anew meanwhile.
		if _, err := r.st.DeleteStaleObservations(ctx, ep.ID); err != nil {
			errs = append(errs, err)
		}
		if err := r.history(ctx, ep.ID, PathDeregistered, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restore brings back a registration made before a restart from the store,
// with the address and transport its device last talked from and over and
// the observations held on it.
func (r *Registry) restore(ctx context.Context, id string) (Registration, error) {
	ep, err := r.st.GetEndpointByRegistrationID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Registration{}, fmt.Errorf("registry: registration %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("registry: registration %q: %w", id, err)
	}
	if !ep.Online {
		return Registration{}, fmt.Errorf("registry: registration %q: %w", id, ErrNotFound)
	}
	reg := Registration{
		ID:           id,
		Endpoint:     ep.Name,
		EndpointID:   ep.ID,
		Transport:    transportOf(ep.Transport),
		Lifetime:     uint32(ep.Lifetime / time.Second),
		Version:      lwm2m.Version(ep.LwM2MVersion),
		Binding:      ep.Binding,
		Queue:        ep.QueueMode,
		SMS:          ep.SMSNumber,
		RegisteredAt: ep.RegisteredAt,
		UpdatedAt:    ep.LastSeen,
		LastSeen:     ep.LastSeen,
	}
	if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
		reg.Addr = ap
	}
	if reg.Objects, err = linkformat.ParseRegistration([]byte(ep.ObjectLinks)); err != nil {
		// The links were accepted when stored; a parser that has become
		// stricter must not lock the device out.
		reg.Objects = linkformat.Registration{RootPath: "/"}
	}
	if !r.clock.Now().Before(reg.ExpiresAt(r.grace)) {
		return Registration{}, fmt.Errorf("registry: registration %q expired: %w", id, ErrNotFound)
	}
	// Read before the locks: no observation is added to or removed from a
	// registration that is not in memory.
	rows, err := r.st.ListObservations(ctx, id)
	if err != nil {
		return Registration{}, fmt.Errorf("registry: registration %q: %w", id, err)
	}

	mu := r.stripe(reg.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byID[id]; e != nil {
		return e.reg, nil // restored concurrently
	}
	if e := r.byName[reg.Endpoint]; e != nil {
		// The endpoint registered anew in this process; the stored row
		// already names the new registration, so this ID is stale.
		return Registration{}, fmt.Errorf("registry: registration %q: %w", id, ErrNotFound)
	}
	e := &entry{reg: reg}
	r.byID[id] = e
	r.byName[reg.Endpoint] = e
	r.setAddrLocked(e, reg.Addr, reg.Transport)
	for _, row := range rows {
		tok := string(row.Token)
		if _, taken := r.tokens[tok]; taken {
			continue // tokens are unique in the store; memory wins
		}
		o := observationFromStore(id, row)
		r.tokens[tok] = &o
		e.tokens = append(e.tokens, tok)
	}
	return reg, nil
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
