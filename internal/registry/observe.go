package registry

import (
	"fmt"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Observation is one observation the server holds on a device: the token
// it chose, what it observes and how the device was asked to answer.
type Observation struct {
	// Token is the CoAP token of the Observe request, as raw bytes in a
	// string. Tokens are chosen by the server and unique across devices.
	Token          string
	RegistrationID string
	// Paths is the observed path, or the paths of a composite observation.
	Paths     []lwm2m.Path
	Composite bool
	// Format is the content format requested (Accept).
	Format  lwm2m.MediaType
	Created time.Time
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

// AddObservation records o on its registration. It returns an error
// matching ErrNotFound when the registration has ended, and an error when
// the token is already in use.
func (r *Registry) AddObservation(o Observation) error {
	if o.Token == "" {
		return fmt.Errorf("registry: observation without token")
	}
	if o.Created.IsZero() {
		o.Created = r.clock.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byID[o.RegistrationID]
	if e == nil {
		return fmt.Errorf("registry: observe on %q: %w", o.RegistrationID, ErrNotFound)
	}
	if _, taken := r.tokens[o.Token]; taken {
		return fmt.Errorf("registry: observation token %x already in use", o.Token)
	}
	r.tokens[o.Token] = &o
	e.tokens = append(e.tokens, o.Token)
	return nil
}

// Observation returns the observation with the given token and its live
// registration. The lookup does not allocate.
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

// RemoveObservation forgets the observation with the given token and
// reports whether it existed.
func (r *Registry) RemoveObservation(token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.tokens[token]
	if o == nil {
		return false
	}
	delete(r.tokens, token)
	if e := r.byID[o.RegistrationID]; e != nil {
		e.tokens = slices.DeleteFunc(e.tokens, func(t string) bool { return t == token })
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
