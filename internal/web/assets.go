package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static templates
var files embed.FS

// asset is one static file, served at /static/<stem>.<sum>.<ext>.
type asset struct {
	url         string
	body        []byte
	contentType string
}

// assets maps a static file's name ("app.css") to its asset; urls maps
// the served URL path back.
type assets struct {
	byName map[string]*asset
	byURL  map[string]*asset
}

// loadAssets reads the embedded static files and names each by the first
// 16 hex digits of its SHA-256, so that a changed file gets a new URL and
// every URL may be cached forever.
func loadAssets() (*assets, error) {
	a := &assets{byName: map[string]*asset{}, byURL: map[string]*asset{}}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha256.Sum256(b)
		ext := path.Ext(name)
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		x := &asset{url: StaticPrefix + strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:8]) + ext, body: b, contentType: ct}
		a.byName[name], a.byURL[x.url] = x, x
		return nil
	})
	return a, err
}

// url is the checksum URL of the static file name; templates call it as
// {{asset "app.css"}}. An unknown name is an error, so that a template
// naming a missing file fails when it renders in the tests.
func (a *assets) url(name string) (string, error) {
	x, ok := a.byName[name]
	if !ok {
		return "", fmt.Errorf("web: no static file %q", name)
	}
	return x.url, nil
}

// serve answers GET /static/...: the file of a current checksum URL with
// immutable caching, 404 for any other.
func (a *assets) serve(w http.ResponseWriter, r *http.Request) error {
	x, ok := a.byURL[r.URL.Path]
	if !ok {
		return notFound("no such file")
	}
	h := w.Header()
	h.Set("Content-Type", x.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	_, err := w.Write(x.body)
	return err
}
