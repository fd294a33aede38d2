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

// historyValue is the registration history value of path p at t.
func historyValue(endpointID int64, p lwm2m.Path, t time.Time) store.ResourceValue {
	return store.ResourceValue{EndpointID: endpointID, Path: p, Value: lwm2m.Time(t), DeviceTime: t, ReceivedAt: t}
}

// write stores it, batched with the server's other writes through the
// ingest writer when the registry has one, else in a transaction of its
// own. An item its NoCredential refuses is an error matching
// store.ErrCredentialRequired, one whose registration is gone
// (store.IngestItem.Gone) an error matching store.ErrRegistrationGone.
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
	if items[0].Gone {
		return store.ErrRegistrationGone
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

// persistUpdate records an Update of cur and /10240/0/2 in one write: the
// fields req names, and only while cur is the endpoint's live
// registration (else an error matching store.ErrRegistrationGone). It
// returns the endpoint as the Update left it.
func (r *Registry) persistUpdate(ctx context.Context, cur Registration, req UpdateRequest, now time.Time) (store.Endpoint, error) {
	u := store.EndpointUpdate{Time: now}
	if req.Lifetime != 0 {
		lt := time.Duration(req.Lifetime) * time.Second
		u.Lifetime = &lt
	}
	if req.Binding != "" {
		u.Binding = &req.Binding
	}
	if req.Queue {
		u.QueueMode = &req.Queue
	}
	if req.HasSMS {
		u.SMSNumber = &req.SMS
	}
	if req.HasObjects {
		u.ObjectLinks = &req.ObjectLinks
	}
	if req.Addr.IsValid() {
		tr := req.Transport.storeTransport()
		u.Address, u.Transport = addrString(req.Addr), &tr
	}
	var ep store.Endpoint
	err := r.write(ctx, store.IngestItem{
		NoCredential: noCredential(req.CheckCredentials, cur.Endpoint),
		Update:       &store.RegistrationUpdate{EndpointID: cur.EndpointID, RegistrationID: cur.ID, EndpointUpdate: u},
		Updated:      &ep,
		Values:       []store.ResourceValue{historyValue(cur.EndpointID, PathUpdated, now)},
	})
	return ep, err
}

// persistEnd records the end of a registration: the endpoint offline, the
// registration's observations deleted and /10240/0/1, in one write, while
// it is the endpoint's live registration (else an error matching
// store.ErrRegistrationGone).
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

// restore brings back a registration this node does not hold from its
// record: one made before a restart, or on another node. It comes with
// the address and transport its device last talked from and over and the
// observations held on it. A record past its lifetime is not brought
// back (the next Sweep expires it).
func (r *Registry) restore(ctx context.Context, id string) (Registration, error) {
	ep, err := r.liveRecord(ctx, id)
	if err != nil {
		return Registration{}, err
	}
	if !r.clock.Now().Before(ep.Expiry().Add(r.grace)) {
		return Registration{}, fmt.Errorf("registry: registration %q expired: %w", id, ErrNotFound)
	}
	mu := r.stripe(ep.Name)
	mu.Lock()
	defer mu.Unlock()
	if reg, ok := r.Get(id); ok {
		return reg, nil // restored concurrently
	}
	if _, ok := r.ByEndpoint(ep.Name); ok {
		// This node holds another registration of the endpoint, older
		// (another node took the device's new Register) or newer (a
		// Register here since the read): the record decides, read again
		// under the endpoint's lock.
		if ep, err = r.liveRecord(ctx, id); err != nil {
			return Registration{}, err
		}
	}
	return r.adopt(ctx, ep)
}

// liveRecord returns the record of the live registration id, or an error
// matching ErrNotFound when it is not the live one of any endpoint.
func (r *Registry) liveRecord(ctx context.Context, id string) (store.RegistrationRecord, error) {
	rec, err := r.st.GetRegistrationRecordByID(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !rec.Online):
		return store.RegistrationRecord{}, fmt.Errorf("registry: registration %q: %w", id, ErrNotFound)
	case err != nil:
		return store.RegistrationRecord{}, fmt.Errorf("registry: registration %q: %w", id, err)
	}
	return rec, nil
}

// registrationOf is the registration an online endpoint's record holds,
// with the address and transport its device last talked from and over;
// objs, when not nil, are its object links already parsed.
func registrationOf(ep store.RegistrationRecord, objs *linkformat.Registration) Registration {
	reg := Registration{
		ID:           ep.RegistrationID,
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
		LastSeen:     ep.LastHeard(),
	}
	if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
		reg.Addr = ap
	}
	var err error
	if objs != nil {
		reg.Objects = *objs
	} else if reg.Objects, err = linkformat.ParseRegistration([]byte(ep.ObjectLinks)); err != nil {
		// The links were accepted when stored; a parser that has become
		// stricter must not lock the device out.
		reg.Objects = linkformat.Registration{RootPath: "/"}
	}
	return reg
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
