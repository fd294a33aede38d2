package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/credential"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// Credential is a device's DTLS credential as the API shows it: never with
// its key.
type Credential struct {
	Endpoint        string    `json:"endpoint" example:"urn:imei:356938035643809"`
	Kind            string    `json:"kind" enum:"psk,x509"`
	PSKIdentity     string    `json:"psk_identity,omitempty"`
	CertCN          string    `json:"cert_cn,omitempty"`
	CertFingerprint string    `json:"cert_fingerprint,omitempty" doc:"SHA-256 of the device certificate, lower-case hex"`
	CreatedAt       time.Time `json:"created_at"`
}

func toCredential(c credential.Info) Credential {
	return Credential{Endpoint: c.Endpoint, Kind: string(c.Kind), PSKIdentity: c.PSKIdentity,
		CertCN: c.CertCN, CertFingerprint: c.CertFingerprint, CreatedAt: c.CreatedAt.UTC()}
}

type listCredentialsOutput struct {
	Body struct {
		Items []Credential `json:"items"`
	}
}

type createCredentialInput struct {
	Body struct {
		Endpoint        string `json:"endpoint" minLength:"1" maxLength:"255"`
		PSKIdentity     string `json:"psk_identity,omitempty" maxLength:"128" doc:"With psk_key: a PSK credential"`
		PSKKey          string `json:"psk_key,omitempty" doc:"PSK key in hex; stored encrypted and never returned"`
		CertCN          string `json:"cert_cn,omitempty" doc:"Certificate common name: an X.509 credential"`
		CertFingerprint string `json:"cert_fingerprint,omitempty" doc:"SHA-256 of the device certificate in hex"`
	}
}

type credentialOutput struct {
	Body Credential
}

type deleteCredentialInput struct {
	Endpoint string `path:"endpoint" doc:"Endpoint name"`
}

func (a *API) credentialRoutes(h huma.API) {
	register(h, auth.ManageCredentials, huma.Operation{
		OperationID: "list-credentials", Method: http.MethodGet, Path: Prefix + "/credentials",
		Summary: "List device credentials (without keys)", Tags: []string{"credentials"},
	}, a.listCredentials)
	register(h, auth.ManageCredentials, huma.Operation{
		OperationID: "create-credential", Method: http.MethodPost, Path: Prefix + "/credentials",
		Summary: "Bind a PSK or a certificate to an endpoint", Tags: []string{"credentials"},
		DefaultStatus: http.StatusCreated,
	}, a.createCredential)
	register(h, auth.ManageCredentials, huma.Operation{
		OperationID: "delete-credential", Method: http.MethodDelete, Path: Prefix + "/credentials/{endpoint}",
		Summary: "Remove the credential of an endpoint", Tags: []string{"credentials"},
		DefaultStatus: http.StatusNoContent,
	}, a.deleteCredential)
}

func (a *API) listCredentials(ctx context.Context, _ *struct{}) (*listCredentialsOutput, error) {
	list, err := a.opts.Credentials.List(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listCredentialsOutput{}
	out.Body.Items = make([]Credential, 0, len(list))
	for _, c := range list {
		out.Body.Items = append(out.Body.Items, toCredential(c))
	}
	return out, nil
}

func (a *API) createCredential(ctx context.Context, in *createCredentialInput) (*credentialOutput, error) {
	b := in.Body
	req := credential.AddRequest{Endpoint: b.Endpoint, PSKIdentity: b.PSKIdentity, CertCN: b.CertCN,
		CertFingerprint: b.CertFingerprint}
	if b.PSKKey != "" {
		key, err := credential.ParseKey(b.PSKKey)
		if err != nil {
			return nil, a.fail(ctx, err)
		}
		req.PSKKey = key
	}
	info, err := a.opts.Credentials.Add(ctx, actorOf(ctx), req)
	if errors.Is(err, store.ErrConflict) {
		return nil, problem.New(http.StatusConflict, "conflict",
			fmt.Sprintf("endpoint %q already has a credential, or the PSK identity is in use", b.Endpoint))
	}
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &credentialOutput{Body: toCredential(info)}, nil
}

func (a *API) deleteCredential(ctx context.Context, in *deleteCredentialInput) (*struct{}, error) {
	err := a.opts.Credentials.Remove(ctx, actorOf(ctx), in.Endpoint)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("endpoint %q has no credential", in.Endpoint))
	}
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return nil, nil
}
