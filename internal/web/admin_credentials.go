package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/store"
)

type adminCredentialsData struct {
	Credentials []credential.Info
	Error       string
	Endpoint    string
	Identity    string
}

// adminCredentials is GET /admin/credentials: each device's credential
// by endpoint, its kind and identity, never its key.
func (w *Web) adminCredentials(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.adminCredentialsPage(rw, r, s, http.StatusOK, adminCredentialsData{})
}

func (w *Web) adminCredentialsPage(rw http.ResponseWriter, r *http.Request, s *session, status int, d adminCredentialsData) error {
	list, err := w.cfg.Credentials.List(r.Context())
	if err != nil {
		return err
	}
	d.Credentials = list
	rw.Header().Set("Cache-Control", "no-store")
	w.render(rw, r, status, "admin_credentials", s, d)
	return nil
}

// adminAddCredential is POST /admin/credentials: a PSK (endpoint,
// identity, key in hex) added through credential.Service, as the API
// does; the service audits it.
func (w *Web) adminAddCredential(rw http.ResponseWriter, r *http.Request, s *session) error {
	d := adminCredentialsData{Endpoint: strings.TrimSpace(r.PostFormValue("endpoint")),
		Identity: strings.TrimSpace(r.PostFormValue("identity"))}
	again := func(msg string) error {
		d.Error = msg
		return w.adminCredentialsPage(rw, r, s, http.StatusUnprocessableEntity, d)
	}
	if d.Endpoint == "" || len(d.Endpoint) > 255 || d.Identity == "" || len(d.Identity) > 128 {
		return again("Give the endpoint name (at most 255 characters) and the PSK identity (at most 128).")
	}
	key, err := credential.ParseKey(strings.TrimSpace(r.PostFormValue("key")))
	if err != nil {
		return again(fmt.Sprintf("The key: %v.", err))
	}
	_, err = w.cfg.Credentials.Add(r.Context(), actor(r, s), credential.AddRequest{Endpoint: d.Endpoint, PSKIdentity: d.Identity, PSKKey: key})
	if errors.Is(err, store.ErrConflict) {
		return again(fmt.Sprintf("Endpoint %q already has a credential, or the PSK identity is in use.", d.Endpoint))
	}
	if errors.Is(err, credential.ErrInvalid) {
		return again(err.Error())
	}
	if err != nil {
		return err
	}
	http.Redirect(rw, r, "/admin/credentials", http.StatusSeeOther)
	return nil
}

// adminRemoveCredential is POST /admin/credentials/{endpoint}/delete.
func (w *Web) adminRemoveCredential(rw http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("endpoint")
	err := w.cfg.Credentials.Remove(r.Context(), actor(r, s), name)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(fmt.Sprintf("endpoint %q has no credential", name))
	}
	if err != nil {
		return err
	}
	http.Redirect(rw, r, "/admin/credentials", http.StatusSeeOther)
	return nil
}
