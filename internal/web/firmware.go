package web

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/firmware"
	"github.com/flownexus/flownexus/internal/problem"
	"github.com/flownexus/flownexus/internal/store"
)

// The firmware pages: images (/firmware), updates (/firmware/updates) and
// campaigns (/firmware/campaigns), on the same firmware.Images and
// fwupdate.Updater methods as the API's.
//
// Who may do what: images are global, seen by anyone with ViewFirmware in
// some site. Uploading needs ManageFirmware in some site, so a Site Admin
// may upload: an image does nothing until an update uses it, and every
// update is limited to the devices of the starter's ManageFirmware scope
// (versions are global names, first come first served). Removing an image
// needs ManageFirmware over every device (global administrators): an
// image may be meant for other sites' devices. Updates and campaign
// devices are listed within the ViewFirmware scope; starting or
// cancelling an update needs ManageFirmware on the device's site (404
// outside it); changing a campaign needs ManageFirmware on the sites of
// all its devices.

// uploadSlack is what an upload body may carry beyond the image: the
// multipart framing, the CSRF token and the version.
const uploadSlack = 64 << 10

func (w *Web) firmwareRoutes() {
	if w.cfg.Firmware == nil || w.cfg.Updates == nil {
		return
	}
	w.route("GET /firmware", auth.ViewFirmware, w.firmwarePage)
	w.route("POST /firmware", auth.ManageFirmware, w.uploadImage)
	w.route("POST /firmware/images/{version}/delete", auth.ManageFirmware, w.deleteImage)
	w.route("GET /firmware/updates", auth.ViewFirmware, w.updatesPage)
	w.route("POST /firmware/updates", auth.ManageFirmware, w.startUpdate)
	w.route("POST /firmware/updates/{id}/cancel", auth.ManageFirmware, w.cancelUpdate)
	w.route("GET /firmware/campaigns", auth.ViewFirmware, w.campaignsPage)
	w.route("POST /firmware/campaigns", auth.ManageFirmware, w.createCampaign)
	w.route("GET /firmware/campaigns/{id}", auth.ViewFirmware, w.campaignPage)
	w.route("POST /firmware/campaigns/{id}/{action}", auth.ManageFirmware, w.moveCampaign)
}

type imageRow struct {
	store.Firmware
	store.ImageFacts
	URL string // the HTTP(S) download URL, if the server offers one
}

type firmwareData struct {
	Images    []imageRow
	CanManage bool // may upload
	CanRemove bool // may remove images
	MaxSize   int64
	Version   string // the upload form's
	Error     string // why the upload or removal was refused
}

// may reports whether the session's user has permission p in some site.
func may(s *session, p auth.Permission) bool { return auth.Authorize(s.subj, p) == nil }

// firmwarePage is GET /firmware: the images and the upload form.
func (w *Web) firmwarePage(rw http.ResponseWriter, r *http.Request, s *session) error {
	return w.renderFirmware(rw, r, s, http.StatusOK, firmwareData{})
}

func (w *Web) renderFirmware(rw http.ResponseWriter, r *http.Request, s *session, status int, d firmwareData) error {
	list, err := w.cfg.Firmware.List(r.Context())
	if err != nil {
		return err
	}
	facts, err := w.cfg.Store.FirmwareImageFacts(r.Context())
	if err != nil {
		return err
	}
	for _, f := range list {
		d.Images = append(d.Images, imageRow{Firmware: f, ImageFacts: facts[f.ID], URL: w.cfg.Firmware.ImageURLs(f.Filename).HTTP})
	}
	d.CanManage, d.CanRemove = may(s, auth.ManageFirmware), s.subj.Scope(auth.ManageFirmware).All
	d.MaxSize = w.cfg.Firmware.MaxSize()
	w.render(rw, r, status, "firmware", s, d)
	return nil
}

// formProblem returns the status and message a form shows for err when
// it is the user's to fix (a 4xx problem: 409 and 413 answered as 422),
// and false for any other error.
func formProblem(err error) (int, string, bool) {
	p, unexpected := problem.From(err, "")
	if unexpected || p.Status < 400 || p.Status >= 500 {
		return 0, "", false
	}
	status := p.Status
	if status != http.StatusBadRequest && status != http.StatusNotFound {
		status = http.StatusUnprocessableEntity
	}
	return status, p.Detail, true
}

// uploadImage is POST /firmware: a multipart form with the fields
// csrf_token, version and file, in that order; the file is streamed into
// the image store. Bad input answers the page with the message.
func (w *Web) uploadImage(rw http.ResponseWriter, r *http.Request, s *session) error {
	again := func(status int, msg, version string) error {
		return w.renderFirmware(rw, r, s, status, firmwareData{Version: version, Error: msg})
	}
	r.Body = http.MaxBytesReader(rw, r.Body, w.cfg.Firmware.MaxSize()+uploadSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return again(http.StatusBadRequest, "the upload must be a multipart form (enctype multipart/form-data)", "")
	}
	var version string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return again(http.StatusBadRequest, "the form has no file", version)
		}
		if err != nil {
			return again(http.StatusBadRequest, "malformed form: "+err.Error(), version)
		}
		switch p.FormName() {
		case "version":
			b, err := io.ReadAll(io.LimitReader(p, 256))
			if err != nil {
				return again(http.StatusBadRequest, "malformed form: "+err.Error(), "")
			}
			version = strings.TrimSpace(string(b))
		case "file":
			if version == "" {
				return again(http.StatusBadRequest, "a version is required", "")
			}
			_, err := w.cfg.Firmware.Upload(r.Context(), actor(r, s), version, p)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return again(http.StatusUnprocessableEntity, "the image is larger than the limit of "+
					byteSize(w.cfg.Firmware.MaxSize()), version)
			}
			if err != nil {
				if status, msg, ok := formProblem(err); ok {
					return again(status, msg, version)
				}
				return err
			}
			http.Redirect(rw, r, "/firmware", http.StatusSeeOther)
			return nil
		}
	}
}

// deleteImage is POST /firmware/images/{version}/delete; an image in use
// is refused with the message.
func (w *Web) deleteImage(rw http.ResponseWriter, r *http.Request, s *session) error {
	if !s.subj.Scope(auth.ManageFirmware).All {
		return forbidden("only global administrators may remove firmware images")
	}
	err := w.cfg.Firmware.Remove(r.Context(), actor(r, s), r.PathValue("version"))
	if errors.Is(err, firmware.ErrInUse) {
		status, msg, _ := formProblem(err)
		return w.renderFirmware(rw, r, s, status, firmwareData{Error: msg})
	}
	if err != nil {
		return err
	}
	http.Redirect(rw, r, "/firmware", http.StatusSeeOther)
	return nil
}

// byteSize writes n bytes for people: "512 B", "1.5 KiB", "8 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	v := strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64)
	return strings.TrimSuffix(v, ".0") + " " + string("KMGT"[exp]) + "iB"
}
