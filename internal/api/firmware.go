package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/store"
)

// Image is a firmware image as the API shows it.
type Image struct {
	Version      string    `json:"version" example:"1.2.3"`
	Filename     string    `json:"filename" example:"1.2.3.bin"`
	Size         int64     `json:"size" doc:"Bytes"`
	SHA256       string    `json:"sha256" doc:"SHA-256 of the image, lower-case hex"`
	CreatedAt    time.Time `json:"created_at"`
	DownloadPath string    `json:"download_path" example:"/binaries/1.2.3.bin" doc:"Path on the firmware download server"`
	URL          string    `json:"url,omitempty" example:"https://fw.example.org/binaries/1.2.3.bin" doc:"HTTPS (or HTTP) download URL, for Package URI /5/0/1"`
	CoAPURL      string    `json:"coap_url,omitempty" example:"coap://lwm2m.example.org:5683/fw/1.2.3.bin"`
	CoAPSURL     string    `json:"coaps_url,omitempty" example:"coaps://lwm2m.example.org:5684/fw/1.2.3.bin"`
}

func (a *API) toImage(f store.Firmware) Image {
	u := a.opts.Firmware.ImageURLs(f.Filename)
	return Image{Version: f.Version, Filename: f.Filename, Size: f.Size, SHA256: f.SHA256, CreatedAt: f.CreatedAt.UTC(),
		DownloadPath: firmware.DownloadPath(f.Filename), URL: u.HTTP, CoAPURL: u.CoAP, CoAPSURL: u.CoAPS}
}

type listImagesOutput struct {
	Body struct {
		Items []Image `json:"items"`
	}
}

type imageOutput struct {
	Body Image
}

type imageInput struct {
	Version string `path:"version" doc:"Image version"`
}

type uploadImageInput struct {
	ContentType string `header:"Content-Type"`
	Version     string `query:"version" doc:"Image version, for a raw application/octet-stream body; a multipart form gives it in its field version"`
	RawBody     []byte `contentType:"application/octet-stream"`
}

// uploadSlack is what an upload body may carry beyond the image: the
// multipart framing and the version field.
const uploadSlack = 64 << 10

func (a *API) firmwareRoutes(h huma.API) {
	register(h, auth.ManageFirmware, huma.Operation{
		OperationID: "upload-firmware", Method: http.MethodPost, Path: Prefix + "/firmware",
		Summary: "Upload a firmware image",
		Description: "The body is the image (application/octet-stream, with ?version=V) or a multipart/form-data " +
			"form with the fields `file` and `version`. Versions are unique: 1 to 64 letters, digits and `._+-`. " +
			"An empty image is 400, one over the size limit 413, an existing version 409.",
		Tags: []string{"firmware"}, DefaultStatus: http.StatusCreated,
		MaxBodyBytes: a.opts.Firmware.MaxSize() + uploadSlack,
		Errors:       []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge},
	}, a.uploadImage)
	register(h, auth.ViewFirmware, huma.Operation{
		OperationID: "list-firmware", Method: http.MethodGet, Path: Prefix + "/firmware",
		Summary: "List firmware images, newest first", Tags: []string{"firmware"},
	}, a.listImages)
	register(h, auth.ViewFirmware, huma.Operation{
		OperationID: "get-firmware", Method: http.MethodGet, Path: Prefix + "/firmware/{version}",
		Summary: "Get a firmware image", Tags: []string{"firmware"}, Errors: []int{http.StatusNotFound},
	}, a.getImage)
	register(h, auth.ManageFirmware, huma.Operation{
		OperationID: "delete-firmware", Method: http.MethodDelete, Path: Prefix + "/firmware/{version}",
		Summary:     "Remove a firmware image",
		Description: "Refused (409) while an unfinished update or campaign uses the image; finished updates keep its version.",
		Tags:        []string{"firmware"}, DefaultStatus: http.StatusNoContent,
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, a.deleteImage)
}

func (a *API) uploadImage(ctx context.Context, in *uploadImageInput) (*imageOutput, error) {
	version, body := in.Version, io.Reader(bytes.NewReader(in.RawBody))
	mt, params, _ := mime.ParseMediaType(in.ContentType)
	switch mt {
	case "multipart/form-data":
		if in.Version != "" {
			return nil, badRequest("give the version in the form's field version, not in the query")
		}
		var err error
		if version, body, err = readUploadForm(in.RawBody, params["boundary"]); err != nil {
			return nil, badRequest(err.Error())
		}
	case "application/octet-stream", "":
		if version == "" {
			return nil, badRequest("version is required: ?version=V with an application/octet-stream body")
		}
	default:
		return nil, badRequest(fmt.Sprintf("Content-Type %q: want application/octet-stream or multipart/form-data", in.ContentType))
	}
	f, err := a.opts.Firmware.Upload(ctx, actorOf(ctx), version, body)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &imageOutput{Body: a.toImage(f)}, nil
}

// readUploadForm returns the version field and the file part of a
// multipart form.
func readUploadForm(raw []byte, boundary string) (string, io.Reader, error) {
	if boundary == "" {
		return "", nil, errors.New("multipart form without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(raw), boundary)
	var version string
	var file io.Reader
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("malformed multipart form: %v", err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return "", nil, fmt.Errorf("malformed multipart form: %v", err)
		}
		switch p.FormName() {
		case "version":
			version = string(data)
		case "file":
			file = bytes.NewReader(data)
		}
	}
	switch {
	case file == nil:
		return "", nil, errors.New("the form has no field file")
	case version == "":
		return "", nil, errors.New("the form has no field version")
	}
	return version, file, nil
}

func (a *API) listImages(ctx context.Context, _ *struct{}) (*listImagesOutput, error) {
	list, err := a.opts.Firmware.List(ctx)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	out := &listImagesOutput{}
	out.Body.Items = make([]Image, 0, len(list))
	for _, f := range list {
		out.Body.Items = append(out.Body.Items, a.toImage(f))
	}
	return out, nil
}

func (a *API) getImage(ctx context.Context, in *imageInput) (*imageOutput, error) {
	f, err := a.opts.Firmware.Get(ctx, in.Version)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return &imageOutput{Body: a.toImage(f)}, nil
}

func (a *API) deleteImage(ctx context.Context, in *imageInput) (*struct{}, error) {
	if err := a.opts.Firmware.Remove(ctx, actorOf(ctx), in.Version); err != nil {
		return nil, a.fail(ctx, err)
	}
	return nil, nil
}
