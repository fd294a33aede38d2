package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// page is one parsed page: the layout with the page's own template.
type page struct {
	t *template.Template
}

// pageNames are the templates under templates/ that are pages (each
// defines "title" and "content" for layout.html).
var pageNames = []string{"login", "error", "overview", "devices", "device"}

func (w *Web) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": w.assets.url,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			d := w.cfg.Now().Sub(t).Round(time.Second)
			if d < 0 {
				d = 0
			}
			return d.String() + " ago"
		},
		// pathEscape escapes an endpoint name as one URL path segment.
		"pathEscape": url.PathEscape,
		"value": func(v any) string {
			if v == nil {
				return ""
			}
			return fmt.Sprint(v)
		},
	}
}

// parsePages parses every page with the layout; a page missing from
// templates/ or a template naming an unknown function fails here.
func (w *Web) parsePages() (map[string]*page, error) {
	out := map[string]*page{}
	layout, err := fs.ReadFile(files, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	for _, name := range slices.Concat(pageNames, accessPages) {
		t, err := template.New("layout").Funcs(w.funcs()).Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("web: template layout: %w", err)
		}
		if t, err = t.ParseFS(files, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		out[name] = &page{t: t}
	}
	return out, nil
}

// view is what the layout sees: the page's data, and the user and its
// CSRF token when logged in.
type view struct {
	User string
	CSRF string
	Path string
	Data any
	// Admin: the user is a global administrator (the Admin link).
	Admin bool
	// Sites is the site switcher; nil shows none.
	Sites *switcher
	// Assign: a site member who may assign devices (the link to it).
	Assign bool
}

// render writes the page name with status. It renders into a buffer
// first, so that a template error becomes a 500 and not half a page.
func (w *Web) render(rw http.ResponseWriter, r *http.Request, status int, name string, s *session, data any) {
	v := view{Path: r.URL.Path, Data: data}
	if s != nil {
		v.User, v.CSRF = s.user.Username, s.CSRFToken
		v.Admin, v.Sites = s.subj.Admin, w.switcherOf(r.Context(), s, r.URL.RequestURI())
		v.Assign = !s.subj.Admin && auth.Authorize(s.subj, auth.ManageDevices) == nil
	}
	var buf bytes.Buffer
	p := w.pages[name]
	if p == nil {
		w.log.Error("dashboard page missing", "page", name)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	if err := p.t.ExecuteTemplate(&buf, "layout", v); err != nil {
		w.log.Error("dashboard template failed", "page", name, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	rw.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = rw.Write(buf.Bytes())
	}
}
