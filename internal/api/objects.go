package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/problem"
)

// ObjectSummary is an LwM2M object definition without its resources.
type ObjectSummary struct {
	ID          uint16 `json:"id" example:"3303"`
	Name        string `json:"name" example:"Temperature"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version" example:"1.1"`
	URN         string `json:"urn,omitempty"`
	Multiple    bool   `json:"multiple" doc:"The object may have several instances"`
	Mandatory   bool   `json:"mandatory" doc:"Clients must implement it"`
}

// ObjectDefinition is an LwM2M object definition with its resources:
// built in, or loaded from the server's models directory (--models).
type ObjectDefinition struct {
	ObjectSummary
	Resources []ResourceDefinition `json:"resources" doc:"Ordered by id"`
}

// ResourceDefinition is one resource of an object definition.
type ResourceDefinition struct {
	ID          uint16 `json:"id" example:"5700"`
	Name        string `json:"name" example:"Sensor Value"`
	Operations  string `json:"operations" enum:"R,W,RW,E," doc:"R read (and observe), W write, E execute"`
	Type        string `json:"type" example:"float" doc:"The data type; none for an executable"`
	Units       string `json:"units,omitempty" example:"Cel"`
	Range       string `json:"range,omitempty" doc:"Range or enumeration, as the definition writes it"`
	Multiple    bool   `json:"multiple" doc:"A multiple-instance resource"`
	Mandatory   bool   `json:"mandatory"`
	Description string `json:"description,omitempty"`
}

func toObjectSummary(d *objects.ObjectDef) ObjectSummary {
	return ObjectSummary{ID: d.ID, Name: d.Name, Description: d.Description, Version: d.Version, URN: d.URN,
		Multiple: d.Multiple, Mandatory: d.Mandatory}
}

type listObjectsOutput struct {
	Body struct {
		Items []ObjectSummary `json:"items" doc:"Ordered by id"`
	}
}

type objectIDInput struct {
	ID uint16 `path:"id" doc:"The object's id"`
}

type objectOutput struct{ Body ObjectDefinition }

func (a *API) objectRoutes(h huma.API) {
	tags := []string{"objects"}
	register(h, auth.ViewData, huma.Operation{OperationID: "list-objects", Method: http.MethodGet, Path: Prefix + "/objects",
		Tags: tags, Summary: "The LwM2M object definitions the server knows"}, a.listObjects)
	register(h, auth.ViewData, huma.Operation{OperationID: "get-object", Method: http.MethodGet, Path: Prefix + "/objects/{id}",
		Tags: tags, Summary: "One object definition with its resources"}, a.getObject)
}

func (a *API) listObjects(_ context.Context, _ *struct{}) (*listObjectsOutput, error) {
	defs := a.opts.Objects.Objects()
	out := &listObjectsOutput{}
	out.Body.Items = make([]ObjectSummary, 0, len(defs))
	for _, d := range defs {
		out.Body.Items = append(out.Body.Items, toObjectSummary(d))
	}
	return out, nil
}

func (a *API) getObject(_ context.Context, in *objectIDInput) (*objectOutput, error) {
	d, ok := a.opts.Objects.Object(in.ID)
	if !ok {
		return nil, problem.New(http.StatusNotFound, "not_found", fmt.Sprintf("no such object: %d", in.ID))
	}
	out := &objectOutput{Body: ObjectDefinition{ObjectSummary: toObjectSummary(d), Resources: make([]ResourceDefinition, 0, len(d.Resources))}}
	for _, r := range d.Resources {
		out.Body.Resources = append(out.Body.Resources, ResourceDefinition{ID: r.ID, Name: r.Name, Operations: r.Operations.String(),
			Type: r.Type.String(), Units: r.Units, Range: r.RangeEnumeration, Multiple: r.Multiple, Mandatory: r.Mandatory,
			Description: r.Description})
	}
	return out, nil
}
