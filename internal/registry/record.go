package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"

	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/store"
)

// Current returns the live registration of the named endpoint as its
// record in the store has it now, and makes that this node's copy: what a
// request the server starts (a read, a write, a queued operation) must go
// by, as another node may have served the device since this node last did
// (an Update from a new address, a new Register, a De-register). This
// node's copy of the same registration keeps its observations and, when
// later than the record's, the time it last heard from the device. It
// costs one query of the store by endpoint name (plus one of the
// observations when the registration is new to this node). It returns an
// error matching ErrNotFound when the endpoint has no live registration;
// this node's copy is then dropped.
func (r *Registry) Current(ctx context.Context, name string) (Registration, error) {
	mu := r.stripe(name)
	mu.Lock()
	defer mu.Unlock()
	ep, err := r.st.GetRegistrationRecord(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && (!ep.Online || ep.RegistrationID == "")):
		if cur, ok := r.ByEndpoint(name); ok {
			r.forget(cur.ID)
		}
		return Registration{}, fmt.Errorf("registry: endpoint %q: %w", name, ErrNotFound)
	case err != nil:
		return Registration{}, fmt.Errorf("registry: endpoint %q: %w", name, err)
	}
	return r.adopt(ctx, ep)
}

// adopt makes the record ep of an online endpoint this node's copy of its
// registration (cache), with the stored observations of the registration
// when this node does not hold it yet. The caller holds the endpoint's
// stripe.
func (r *Registry) adopt(ctx context.Context, ep store.RegistrationRecord) (Registration, error) {
	var obs []store.Observation
	if cur, ok := r.ByEndpoint(ep.Name); !ok || cur.ID != ep.RegistrationID {
		var err error
		if obs, err = r.st.ListObservations(ctx, ep.RegistrationID); err != nil {
			return Registration{}, fmt.Errorf("registry: registration %q: %w", ep.RegistrationID, err)
		}
	}
	return r.cache(ep, obs), nil
}

// cache makes the record ep of an online endpoint this node's copy of its
// registration and returns it. A copy of the same registration keeps what
// only this node has: its observations and a later LastSeen. A copy of
// another registration of the endpoint is dropped with its observations,
// and the new copy takes obs, the stored observations of ep's
// registration. The caller holds the endpoint's stripe.
func (r *Registry) cache(ep store.RegistrationRecord, obs []store.Observation) Registration {
	// The object links are parsed again only when they changed.
	links := maphash.String(r.seed, ep.ObjectLinks)
	var objs *linkformat.Registration
	r.mu.RLock()
	if e := r.byName[ep.Name]; e != nil && e.reg.ID == ep.RegistrationID && e.links == links {
		o := e.reg.Objects
		objs = &o
	}
	r.mu.RUnlock()
	reg := registrationOf(ep, objs)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byName[reg.Endpoint]
	if e != nil && e.reg.ID == reg.ID {
		if e.reg.LastSeen.After(reg.LastSeen) {
			reg.LastSeen = e.reg.LastSeen
		}
		r.setAddrLocked(e, reg.Addr, reg.Transport)
		e.reg, e.links = reg, links
		return reg
	}
	if e != nil {
		r.removeLocked(e)
	}
	e = &entry{reg: reg, links: links}
	r.byID[reg.ID] = e
	r.byName[reg.Endpoint] = e
	r.setAddrLocked(e, reg.Addr, reg.Transport)
	for _, row := range obs {
		tok := string(row.Token)
		if _, taken := r.tokens[tok]; taken {
			continue // tokens are unique in the store; memory wins
		}
		o := observationFromStore(reg.ID, row)
		r.tokens[tok] = &o
		e.tokens = append(e.tokens, tok)
	}
	return reg
}

// forget drops this node's copy of registration id with its observations
// and returns it. The caller holds the endpoint's stripe.
func (r *Registry) forget(id string) (Registration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byID[id]
	if e == nil {
		return Registration{}, false
	}
	r.removeLocked(e)
	return e.reg, true
}

// revalidate checks this node's copy of reg, whose lifetime has passed by
// this node's reading, against its record: a registration another node
// renewed is refreshed, one that ended (or was replaced) anywhere is
// dropped without an event: the node that ended it reported it.
func (r *Registry) revalidate(ctx context.Context, reg Registration) error {
	mu := r.stripe(reg.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	if _, ok := r.Get(reg.ID); !ok {
		return nil
	}
	ep, err := r.liveRecord(ctx, reg.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		r.forget(reg.ID)
		return nil
	case err != nil:
		return err
	}
	r.cache(ep, nil)
	return nil
}
