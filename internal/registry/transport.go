package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flownexus/flownexus/internal/store"
)

// Transport is how a device reaches the server.
type Transport uint8

// The transports. The zero value is plain CoAP over UDP. A registration's
// transport is written to the store with every Register, Update and
// SetAddr, and a registration restored from the store after a restart has
// the transport its device last talked over.
const (
	TransportUDP  Transport = iota // CoAP over UDP (coap://)
	TransportDTLS                  // CoAP over DTLS (coaps://)
)

// storeTransport is t as the store records it.
func (t Transport) storeTransport() store.Transport {
	if t == TransportDTLS {
		return store.TransportDTLS
	}
	return store.TransportUDP
}

// transportOf is the Transport the store's t names.
func transportOf(t store.Transport) Transport {
	if t == store.TransportDTLS {
		return TransportDTLS
	}
	return TransportUDP
}

func (t Transport) String() string {
	switch t {
	case TransportUDP:
		return "udp"
	case TransportDTLS:
		return "dtls"
	}
	return "transport(?)"
}

// SetAddr records that the device of registration id now talks from addr
// over t without having sent an Update: a DTLS session kept across a NAT
// rebinding by its Connection ID. The address and transport are written to
// the registration's record (store.SetEndpointAddress) before this node's
// copy changes; the lifetime still runs from the last Register or Update.
// It returns an error matching ErrNotFound when the registration has
// ended, here or on another node.
func (r *Registry) SetAddr(ctx context.Context, id string, addr netip.AddrPort, t Transport) error {
	cur, ok := r.Get(id)
	if !ok {
		return fmt.Errorf("registry: set address of %q: %w", id, ErrNotFound)
	}
	mu := r.stripe(cur.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	if cur, ok = r.Get(id); !ok {
		return fmt.Errorf("registry: set address of %q: %w", id, ErrNotFound)
	}
	if cur.Addr == addr && cur.Transport == t {
		return nil
	}
	now := r.clock.Now()
	err := r.st.SetEndpointAddress(ctx, cur.EndpointID, id, addrString(addr), t.storeTransport())
	if errors.Is(err, store.ErrRegistrationGone) {
		r.forget(id)
		return fmt.Errorf("registry: set address of %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("registry: set address of %q: %w", id, err)
	}
	r.mu.Lock()
	if e := r.byID[id]; e != nil {
		r.setAddrLocked(e, addr, t)
		e.reg.Addr, e.reg.Transport = addr, t
		e.reg.LastSeen = now
		r.heard[e.reg.EndpointID] = now
	}
	r.mu.Unlock()
	return nil
}

// LookupEndpoint returns the live registration of the named endpoint. One
// not in memory is restored from the store, as Lookup does by ID: a DTLS
// device whose session outlived a restart names its endpoint by its
// credentials, not by a registration ID.
func (r *Registry) LookupEndpoint(ctx context.Context, name string) (Registration, error) {
	if reg, ok := r.ByEndpoint(name); ok {
		return reg, nil
	}
	ep, err := r.st.GetEndpoint(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!ep.Online || ep.RegistrationID == "")) {
		return Registration{}, fmt.Errorf("registry: endpoint %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("registry: endpoint %q: %w", name, err)
	}
	return r.restore(ctx, ep.RegistrationID)
}

// LookupAddr returns the live plain-CoAP registration whose device last
// registered, updated or was restored from addr. One not in memory is
// restored from the store, as Lookup does by ID: a Send names no
// registration, so after a restart its device is found by the address in
// its stored registration. It returns an error matching ErrNotFound when
// no online plain-CoAP registration has that address.
func (r *Registry) LookupAddr(ctx context.Context, addr netip.AddrPort) (Registration, error) {
	if reg, ok := r.ByAddr(addr); ok {
		return reg, nil
	}
	ep, err := r.st.GetOnlineEndpointByAddress(ctx, addrString(addr))
	if errors.Is(err, store.ErrNotFound) || (err == nil && ep.RegistrationID == "") {
		return Registration{}, fmt.Errorf("registry: address %s: %w", addr, ErrNotFound)
	}
	if err != nil {
		return Registration{}, fmt.Errorf("registry: address %s: %w", addr, err)
	}
	return r.restore(ctx, ep.RegistrationID)
}
