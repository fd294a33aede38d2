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
	v := store.ResourceValue{
		EndpointID: endpointID,
		Path:       p,
		Value:      lwm2m.Time(t),
		DeviceTime: t,
		ReceivedAt: t,
	}
	if r.ingest != nil {
		return r.ingest.WriteValues(ctx, []store.ResourceValue{v})
	}
	return r.st.InsertResources(ctx, []store.ResourceValue{v})
}

func (r *Registry) persistRegister(ctx context.Context, reg Registration, links string) (int64, error) {
	er := store.EndpointRegistration{
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
	}
	if r.ingest != nil {
		t := reg.UpdatedAt
		ep, err := r.ingest.Register(ctx, er, []store.ResourceValue{{
			Path: PathRegistered, Value: lwm2m.Time(t), DeviceTime: t, ReceivedAt: t,
		}})
		return ep.ID, err
	}
	ep, err := r.st.UpsertEndpointRegistration(ctx, er)
	if err != nil {
		return 0, err
	}
	return ep.ID, r.history(ctx, ep.ID, PathRegistered, reg.UpdatedAt)
}

func (r *Registry) persistUpdate(ctx context.Context, reg Registration, hasLinks bool, links string) error {
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
	if _, err := r.st.UpdateEndpointRegistration(ctx, reg.EndpointID, u); err != nil {
		return err
	}
	return r.history(ctx, reg.EndpointID, PathUpdated, reg.UpdatedAt)
}

func (r *Registry) persistEnd(ctx context.Context, reg Registration, t time.Time) error {
	if err := r.st.SetEndpointOffline(ctx, reg.EndpointID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := r.st.DeleteObservations(ctx, reg.ID); err != nil {
		return err
	}
	return r.history(ctx, reg.EndpointID, PathDeregistered, t)
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
