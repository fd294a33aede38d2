package web

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
)

// isMultipart reports whether r's body is a multipart form.
func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// multipartCSRF returns the CSRF token of a multipart form whose first
// part is the field CSRFField ("" otherwise), reading at most 64 KiB of
// the body, and puts what it read back in front of the rest, so that the
// handler reads the whole form, its file streamed and never buffered.
// Browsers send a form's fields in document order: the dashboard's
// multipart forms put the token first.
func multipartCSRF(r *http.Request) string {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return ""
	}
	var seen bytes.Buffer
	body := r.Body
	defer func() {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(seen.Bytes()), body), body}
	}()
	mr := multipart.NewReader(io.TeeReader(io.LimitReader(body, 64<<10), &seen), params["boundary"])
	p, err := mr.NextPart()
	if err != nil || p.FormName() != CSRFField {
		return ""
	}
	tok, err := io.ReadAll(io.LimitReader(p, 256))
	if err != nil {
		return ""
	}
	return string(tok)
}
