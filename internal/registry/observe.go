package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store"
)

// maxTokenLen is the longest CoAP token (RFC 7252, 5.3.1).
const maxTokenLen = 8

// removeTimeout bounds RemoveObservation's store delete.
const removeTimeout = 10 * time.Second

// Observation is one observation the server holds on a device: the token
// it chose, what it observes and how the device was asked to answer.
type Observation struct {
	// Token is the CoAP token of the Observe request, 1 to 8 raw bytes in
	// a string. Tokens are chosen by the server and unique across devices.
	Token          string
	RegistrationID string
	// Paths is the observed path, or the paths of a composite observation.
	Paths     []lwm2m.Path
	Composite bool
	// Format is the content format requested (Accept).
	Format  lwm2m.MediaType
	Created time.Time
	// Origin says why the server holds the observation.
	Origin Origin
	// Attributes are the notification attributes written to the observed
	// paths before the Observe, as a Write-Attributes query
	// ("pmin=60&pmax=900"); "" when none were written.
	Attributes string
}

// The kinds of Origin.
const (
	// OriginAutoObserve: the server's auto-observe policy, after the
	// device registered.
	OriginAutoObserve = "auto-observe"
	// OriginAPI: an operator's observe call through the API.
	OriginAPI = "api"
	// OriginQueue: a queued observe operation.
	OriginQueue = "queue"
)

// Origin is who made an observation and why. The zero Origin means not
// recorded.
type Origin struct {
	Kind      string // OriginAutoObserve, OriginAPI, OriginQueue or ""
	UserID    int64  // the operator who asked; 0 when none
	Operation int64  // the queued operation that made it; 0 when none
}

// observationFromStore is the observation of a stored row, made on the
// registration with the given ID.
func observationFromStore(registrationID string, row store.Observation) Observation {
	return Observation{
		Token:          string(row.Token),
		RegistrationID: registrationID,
		Paths:          row.Paths,
		Composite:      row.Composite,
		Format:         row.Format,
		Created:        row.CreatedAt,
		Origin:         Origin{Kind: row.Origin, UserID: row.OriginUserID, Operation: row.OriginOperationID},
		Attributes:     row.Attributes,
	}
}

// Path returns the observed path of a single observation, or the root for
// a composite one.
func (o Observation) Path() lwm2m.Path {
	if o.Composite || len(o.Paths) != 1 {
		return lwm2m.Root
	}
	return o.Paths[0]
}

// SamePaths reports whether o observes exactly paths (composite as given).
func (o Observation) SamePaths(composite bool, paths []lwm2m.Path) bool {
	return o.Composite == composite && slices.Equal(o.Paths, paths)
}

// AddObservation records o on its registration, in memory and in the
// store, before it returns: a notification for o's token is routed from
// then on, also after a restart. It returns an error matching ErrNotFound
// when the registration is not live in memory (it has ended, or was made
// before a restart and not looked up since), and an error when the token
// is not 1 to 8 bytes or already in use.
func (r *Registry) AddObservation(ctx context.Context, o Observation) error {
	if len(o.Token) == 0 || len(o.Token) > maxTokenLen {
		return fmt.Errorf("registry: observation token of %d bytes, want 1 to %d", len(o.Token), maxTokenLen)
	}
	if o.Created.IsZero() {
		o.Created = r.clock.Now()
	}
	cur, ok := r.Get(o.RegistrationID)
	if !ok {
		return fmt.Errorf("registry: observe on %q: %w", o.RegistrationID, ErrNotFound)
	}
	// Under the endpoint's lock the registration cannot end, or be
	// replaced, between the check and the change.
	mu := r.stripe(cur.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	r.mu.RLock()
	e := r.byID[o.RegistrationID]
	_, taken := r.tokens[o.Token]
	r.mu.RUnlock()
	if e == nil {
		return fmt.Errorf("registry: observe on %q: %w", o.RegistrationID, ErrNotFound)
	}
	if taken {
		return fmt.Errorf("registry: observation token %x already in use", o.Token)
	}
	err := r.persistObservation(ctx, store.Observation{
		Token:             []byte(o.Token),
		EndpointID:        cur.EndpointID,
		RegistrationID:    o.RegistrationID,
		Paths:             o.Paths,
		Composite:         o.Composite,
		Format:            o.Format,
		CreatedAt:         o.Created,
		Origin:            o.Origin.Kind,
		OriginUserID:      o.Origin.UserID,
		OriginOperationID: o.Origin.Operation,
		Attributes:        o.Attributes,
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("registry: observation token %x already in use: %w", o.Token, err)
	}
	if err != nil {
		return fmt.Errorf("registry: observe on %q: %w", o.RegistrationID, err)
	}
	r.mu.Lock()
	r.tokens[o.Token] = &o
	e.tokens = append(e.tokens, o.Token)
	r.mu.Unlock()
	return nil
}

// Observation returns the observation with the given token and its live
// registration, from memory only. The lookup does not allocate.
func (r *Registry) Observation(token []byte) (Observation, Registration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	o := r.tokens[string(token)]
	if o == nil {
		return Observation{}, Registration{}, false
	}
	e := r.byID[o.RegistrationID]
	if e == nil {
		return Observation{}, Registration{}, false
	}
	return *o, e.reg, true
}

// LookupObservation returns the observation with the given token and its
// live registration. A token not in memory is looked up in the store: an
// observation made before a restart brings its registration back (as
// Lookup does), with all the observations held on it. It returns an error
// matching ErrNotFound when no live observation has the token; the stored
// row of an observation whose registration has ended is then deleted.
//
// A token found in memory costs what Observation costs; any other token,
// including every token of a flood of made-up ones, costs one query of
// the store by primary key.
func (r *Registry) LookupObservation(ctx context.Context, token []byte) (Observation, Registration, error) {
	if o, reg, ok := r.Observation(token); ok {
		return o, reg, nil
	}
	if len(token) == 0 || len(token) > maxTokenLen {
		return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, ErrNotFound)
	}
	row, err := r.st.GetObservation(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, ErrNotFound)
	}
	if err != nil {
		return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, err)
	}
	reg, err := r.Lookup(ctx, row.RegistrationID)
	if errors.Is(err, ErrNotFound) {
		r.deleteStale(ctx, token)
		return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, ErrNotFound)
	}
	if err != nil {
		return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, err)
	}
	if o, reg, ok := r.Observation(token); ok {
		return o, reg, nil
	}
	// The registration is live without the token: the observation was
	// removed from memory and its row is left over. Under the endpoint's
	// lock, so that an AddObservation of the token is not half done.
	mu := r.stripe(reg.Endpoint)
	mu.Lock()
	defer mu.Unlock()
	if o, reg, ok := r.Observation(token); ok {
		return o, reg, nil
	}
	r.deleteStale(ctx, token)
	return Observation{}, Registration{}, fmt.Errorf("registry: observation %x: %w", token, ErrNotFound)
}

// deleteStale deletes the stored row of an observation that is not live.
func (r *Registry) deleteStale(ctx context.Context, token []byte) {
	if err := r.deleteObservation(ctx, token); err != nil {
		r.log.Error("deleting a stale observation failed", "token", fmt.Sprintf("%x", token), "err", err)
	}
}

// RemoveObservation forgets the observation with the given token, in
// memory and in the store, and reports whether it was live in memory. A
// token not in memory is left alone. The store delete runs under a
// deadline of its own (removeTimeout), not under a caller's context, as a
// removal often follows a request that has failed or timed out; a failed
// delete is logged, and the row is deleted as stale when its token is next
// looked up (LookupObservation) or its registration ends.
func (r *Registry) RemoveObservation(token string) bool {
	r.mu.Lock()
	o := r.tokens[token]
	if o == nil {
		r.mu.Unlock()
		return false
	}
	delete(r.tokens, token)
	if e := r.byID[o.RegistrationID]; e != nil {
		e.tokens = slices.DeleteFunc(e.tokens, func(t string) bool { return t == token })
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := r.deleteObservation(ctx, []byte(token)); err != nil {
		r.log.Error("deleting an observation from the store failed", "registration", o.RegistrationID,
			"token", fmt.Sprintf("%x", token), "err", err)
	}
	return true
}

// Observations returns the observations held on a registration, oldest
// first.
func (r *Registry) Observations(registrationID string) []Observation {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.byID[registrationID]
	if e == nil {
		return nil
	}
	out := make([]Observation, 0, len(e.tokens))
	for _, t := range e.tokens {
		if o := r.tokens[t]; o != nil {
			out = append(out, *o)
		}
	}
	return out
}

// FindObservation returns the observation of exactly paths on a
// registration.
func (r *Registry) FindObservation(registrationID string, composite bool, paths []lwm2m.Path) (Observation, bool) {
	for _, o := range r.Observations(registrationID) {
		if o.SamePaths(composite, paths) {
			return o, true
		}
	}
	return Observation{}, false
}
